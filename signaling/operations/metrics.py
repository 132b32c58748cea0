"""Prometheus metrics of one node (prometheus-client), served at GET /metrics.

Counters and the relay histogram are this node's; `signaling_rooms` and `signaling_peers` are read
from the store when scraped, so with Redis they are cluster-wide.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

RELAY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class RelayCollector(Collector):
    """Counts relays and their hand-off times in plain integers, turned into metrics when scraped.

    Relaying is the hot path: prometheus-client's Counter and Histogram take a lock and a few
    calls per update (three updates per relay), about a tenth of a relay's Python time. The
    server is one thread, so plain counters are exact; the exposition has the same series (without
    the `_created` timestamps).
    """

    def __init__(self) -> None:
        self._by_kind: dict[str, int] = {}
        self._buckets = [0] * (len(RELAY_BUCKETS) + 1)  # the last one is +Inf
        self._sum = 0.0

    def record(self, kind: str, seconds: float) -> None:
        self._by_kind[kind] = self._by_kind.get(kind, 0) + 1
        self._buckets[bisect_left(RELAY_BUCKETS, seconds)] += 1
        self._sum += seconds

    def collect(self) -> Iterator[Metric]:
        relayed = CounterMetricFamily(
            "signaling_messages_relayed", "Messages relayed to a peer", labels=["kind"]
        )
        for kind, count in sorted(self._by_kind.items()):
            relayed.add_metric([kind], count)
        yield relayed
        cumulative, buckets = 0, []
        for bound, count in zip((*map(str, RELAY_BUCKETS), "+Inf"), self._buckets, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "signaling_relay_seconds",
            "From the core taking a validated relay to its hand-off to the recipient's connection or node",
            buckets=buckets,
            sum_value=self._sum,
        )


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
        self._relays = RelayCollector()
        r.register(self._relays)
        self.errors = Counter(
            "signaling_errors", "Requests refused, by error code", ["code", "transport"], registry=r
        )
        self.rooms = Gauge("signaling_rooms", "Rooms with at least one peer", registry=r)
        self.peers = Gauge("signaling_peers", "Peers in at least one room or stream", registry=r)
        self.redis_up = Gauge(
            "signaling_redis_up", "1 while the shared Redis answers (1 without Redis)", registry=r
        )
        self.redis_up.set(1)
        self.view_synced = Gauge(
            "signaling_cluster_view_synced",
            "With Redis: 1 while this node routes relays from its own view, 0 while it asks Redis",
            registry=r,
        )
        self.envelopes_skipped = Counter(
            "signaling_cluster_envelopes_skipped",
            "Messages on this node's Redis channel it could not read and skipped, by why",
            ["why"],
            registry=r,
        )

    def relayed_message(self, kind: str, seconds: float) -> None:
        self._relays.record(kind, seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
