"""Prometheus metrics of one node (prometheus-client), served at GET /metrics.

Counters and the relay histogram are this node's; `signaling_rooms` and `signaling_peers` are read
from the store when scraped, so with Redis they are cluster-wide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

RELAY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self) -> None:
        # A registry per app, so that several apps (tests, workers) never share counters.
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge(
            "signaling_connections", "Open client connections", ["transport"], registry=r
        )
        self.connections_opened = Counter(
            "signaling_connections_opened", "Client connections accepted", ["transport"], registry=r
        )
        self.relayed = Counter(
            "signaling_messages_relayed", "Messages relayed to a peer", ["kind"], registry=r
        )
        self.errors = Counter(
            "signaling_errors", "Requests refused, by error code", ["code", "transport"], registry=r
        )
        self.relay_seconds = Histogram(
            "signaling_relay_seconds",
            "From the core taking a validated relay to its hand-off to the recipient's connection or node",
            buckets=RELAY_BUCKETS,
            registry=r,
        )
        self.rooms = Gauge("signaling_rooms", "Rooms with at least one peer", registry=r)
        self.peers = Gauge("signaling_peers", "Peers in at least one room or stream", registry=r)
        self.redis_up = Gauge(
            "signaling_redis_up", "1 while the shared Redis answers (1 without Redis)", registry=r
        )
        self.redis_up.set(1)
        self._relayed_by_kind: dict[str, Counter] = {}

    def relayed_message(self, kind: str, seconds: float) -> None:
        # On every relay: the labelled child is looked up once per kind, not per message.
        counter = self._relayed_by_kind.get(kind)
        if counter is None:
            counter = self._relayed_by_kind[kind] = self.relayed.labels(kind)
        counter.inc()
        self.relay_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
