"""Server settings: defaults, overridden by environment variables, overridden by CLI flags.

Every setting is declared once in `OPTIONS`; the CLI flag is derived from the variable name
(`MAX_ROOM_SIZE` -> `--max-room-size`), so the two can never drift apart.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from signaling.core.limits import Limits
from signaling.core.store import PeerLimits
from signaling.security.auth import TokenVerifier
from signaling.security.ratelimit import Rate, RateLimits
from signaling.security.turn import IceServers

ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")
# Log lines one client address may cause: enough for any honest client's connect, joins, leaves.
LOG_RATE_PER_IP = Rate(2, 20)


class SettingsError(ValueError):
    """A setting has a value the server cannot use; the message names the setting."""


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError("must be a number, 0 or more")
    return value


def _rate(raw: str) -> Rate:
    per_second, _, burst = raw.partition("/")
    rate = Rate(float(per_second), int(burst or per_second))
    if rate.per_second <= 0 or rate.burst < 1:
        raise ValueError("must be RATE/BURST with both positive, e.g. 100/400")
    return rate


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("must be between 0 and 65535")
    return value


def _origins(raw: str) -> str | list[str]:
    raw = raw.strip()
    if raw == "*":
        return "*"
    return [origin.strip() for origin in raw.split(",") if origin.strip()]


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in logging.getLevelNamesMapping():
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
    return level


def _log_format(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("text", "json"):
        raise ValueError("must be text or json")
    return value


def _turn_urls(raw: str) -> tuple[str, ...]:
    urls = tuple(url.strip() for url in raw.split(",") if url.strip())
    for url in urls:
        if not url.startswith(("turn:", "turns:")):
            raise ValueError(f"{url!r} is not a turn: or turns: URL")
    return urls


def _secrets(raw: str) -> tuple[str, ...]:
    return tuple(secret.strip() for secret in raw.split(",") if secret.strip())


def parse_ice_servers(raw: str) -> list[dict[str, Any]]:
    """A JSON array of RTCIceServer objects, or a comma-separated list of STUN/TURN URLs."""
    raw = raw.strip()
    if not raw:
        return []
    if raw.startswith("["):
        servers = json.loads(raw)
    else:
        servers = [{"urls": url.strip()} for url in raw.split(",") if url.strip()]
    if not isinstance(servers, list):
        raise ValueError("must be a JSON array")
    for server in servers:
        if not isinstance(server, dict) or "urls" not in server:
            raise ValueError('each server must be an object with "urls"')
        urls = server["urls"] if isinstance(server["urls"], list) else [server["urls"]]
        for url in urls:
            if not isinstance(url, str) or not url.startswith(ICE_SCHEMES):
                raise ValueError(f"{url!r} is not a stun:, stuns:, turn: or turns: URL")
        unknown = set(server) - {"urls", "username", "credential"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
    return servers


@dataclass(frozen=True)
class Option:
    attribute: str
    env: str
    cast: Callable[[str], Any]
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.env.lower().replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option("host", "HOST", str, "interface to listen on"),
    Option("port", "PORT", _port, "TCP port to listen on (0 picks a free one)"),
    Option(
        "cors_allowed_origins",
        "CORS_ALLOWED_ORIGINS",
        _origins,
        "browser origins allowed to connect: '*' or a comma-separated list",
    ),
    Option("room_capacity", "MAX_ROOM_SIZE", _positive_int, "peers a room holds at most"),
    Option(
        "max_message_bytes",
        "MAX_MESSAGE_BYTES",
        _positive_int,
        "largest socket.io message accepted; larger ones close the connection",
    ),
    Option("max_sdp_chars", "MAX_SDP_CHARS", _positive_int, "longest SDP accepted"),
    Option("max_candidate_chars", "MAX_CANDIDATE_CHARS", _positive_int, "longest ICE candidate accepted"),
    Option("max_metadata_bytes", "MAX_METADATA_BYTES", _positive_int, "largest join metadata, as JSON"),
    Option(
        "max_peer_message_bytes",
        "MAX_PEER_MESSAGE_BYTES",
        _positive_int,
        "largest peer-message data, as JSON",
    ),
    Option("max_rooms_per_peer", "MAX_ROOMS_PER_PEER", _positive_int, "rooms one connection may be in"),
    Option(
        "max_streams_per_peer",
        "MAX_STREAMS_PER_PEER",
        _positive_int,
        "streams one connection may publish and play",
    ),
    Option(
        "max_unread_bytes",
        "MAX_PEER_UNREAD_BYTES",
        _positive_int,
        "bytes waiting in the send buffer of a client that does not read, before it is disconnected",
    ),
    Option(
        "rate_relay",
        "RATE_RELAY",
        _rate,
        "offers, answers, candidates per second per connection, as RATE/BURST",
    ),
    Option(
        "rate_control",
        "RATE_CONTROL",
        _rate,
        "joins, leaves, publishes... per second per connection, RATE/BURST",
    ),
    Option(
        "rate_query", "RATE_QUERY", _rate, "pings and info requests per second per connection, RATE/BURST"
    ),
    Option(
        "rate_limit_strikes",
        "RATE_LIMIT_STRIKES",
        _positive_int,
        "rate_limited refusals after which a connection is closed as a flooder",
    ),
    Option(
        "flood_cooldown",
        "FLOOD_COOLDOWN",
        _non_negative_float,
        "seconds an address may not connect after one of its connections was closed for flooding (0: off)",
    ),
    Option(
        "max_connections_per_ip",
        "MAX_CONNECTIONS_PER_IP",
        _positive_int,
        "live connections from one client address, both protocols together",
    ),
    Option(
        "header_timeout",
        "HEADER_TIMEOUT",
        _positive_float,
        "seconds a connection has to send a complete HTTP request head, and idles at most between requests",
    ),
    Option("ping_interval", "PING_INTERVAL", _positive_float, "seconds between heartbeats"),
    Option(
        "antmedia_idle_timeout",
        "ANTMEDIA_IDLE_TIMEOUT",
        _positive_float,
        "seconds an Ant Media connection may send nothing before it counts as gone (the SDK pings every 3 s)",
    ),
    Option(
        "drain_timeout",
        "DRAIN_TIMEOUT",
        _positive_float,
        "on SIGTERM/SIGINT: seconds to tell every client to reconnect elsewhere and let go, then exit",
    ),
    Option(
        "session_grace",
        "SESSION_GRACE",
        _non_negative_float,
        "seconds a session outlives its dropped connection, resumable with its messages kept (0: off)",
    ),
    Option(
        "session_buffer_bytes",
        "SESSION_BUFFER_BYTES",
        _positive_int,
        "bytes of messages kept for a session while its connection is gone; beyond, the session ends",
    ),
    Option(
        "session_secret",
        "SESSION_SECRET",
        str,
        "key that signs session secrets; unset: a key generated once and kept in SESSION_KEY_FILE",
    ),
    Option(
        "session_key_file",
        "SESSION_KEY_FILE",
        str,
        "where the generated session key is kept when SESSION_SECRET is unset",
    ),
    Option(
        "ping_timeout", "PING_TIMEOUT", _positive_float, "seconds without a pong before a client is dropped"
    ),
    Option(
        "log_level", "LOG_LEVEL", _log_level, "DEBUG, INFO, WARNING or ERROR (SDP is logged only at DEBUG)"
    ),
    Option("log_format", "LOG_FORMAT", _log_format, "text, or json: one JSON object per line"),
    Option(
        "log_rate_per_ip",
        "LOG_RATE_PER_IP",
        _rate,
        "log lines one client address can cause, RATE/BURST; beyond it, periodic summary lines",
    ),
    Option(
        "log_summary_interval",
        "LOG_SUMMARY_INTERVAL",
        _positive_float,
        "seconds between the summary lines of an address over its LOG_RATE_PER_IP",
    ),
    Option("jwt_secret", "AUTH_JWT_SECRET", str, "HS256 secret: set it (or the public key) to require JWTs"),
    Option("jwt_public_key", "AUTH_JWT_PUBLIC_KEY", str, "PEM public key for RS256/ES256 JWTs"),
    Option(
        "jwt_audience",
        "AUTH_JWT_AUDIENCE",
        str,
        "audience (aud) JWTs must name; unset: tokens carrying an aud are refused",
    ),
    Option("admin_token", "ADMIN_TOKEN", str, "bearer token of the admin API; unset: the admin API is off"),
    Option(
        "redis_url",
        "REDIS_URL",
        str,
        "Redis for running several nodes (processes, dynos) as one server; unset: one process, in memory",
    ),
    Option(
        "node_lease",
        "NODE_LEASE_SECONDS",
        _positive_float,
        "with Redis: how long a node may go silent before others free its peers (reason node_lost)",
    ),
    Option("workers", "WORKERS", _positive_int, "processes serving one port (more than 1 needs REDIS_URL)"),
    Option(
        "turn_urls",
        "TURN_URLS",
        _turn_urls,
        "comma-separated turn:/turns: URLs given time-limited credentials",
    ),
    Option(
        "turn_secrets",
        "TURN_SECRET",
        _secrets,
        "coturn's static-auth-secret; several, comma-separated: first signs",
    ),
    Option(
        "turn_ttl",
        "TURN_TTL",
        _positive_float,
        "seconds TURN credentials stay valid; refreshed before they expire",
    ),
    Option(
        "ice_servers",
        "ICE_SERVERS",
        parse_ice_servers,
        "ICE servers for clients: JSON array of RTCIceServer, or comma-separated stun:/turn: URLs",
    ),
)


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 5080
    cors_allowed_origins: str | list[str] = "*"
    room_capacity: int = 50
    max_message_bytes: int = 262144
    max_sdp_chars: int = Limits.sdp_chars
    max_candidate_chars: int = Limits.candidate_chars
    max_metadata_bytes: int = Limits.metadata_bytes
    max_peer_message_bytes: int = Limits.peer_message_bytes
    max_rooms_per_peer: int = PeerLimits.rooms
    max_streams_per_peer: int = PeerLimits.streams
    max_unread_bytes: int = 1048576
    rate_relay: Rate = RateLimits.relay
    rate_control: Rate = RateLimits.control
    rate_query: Rate = RateLimits.query
    rate_limit_strikes: int = RateLimits.strikes
    max_connections_per_ip: int = 50
    flood_cooldown: float = 10.0
    header_timeout: float = 10.0
    ping_interval: float = 25.0
    antmedia_idle_timeout: float = 10.0
    drain_timeout: float = 10.0
    ping_timeout: float = 20.0
    session_grace: float = 30.0
    session_buffer_bytes: int = 262144
    session_secret: str | None = None
    session_key_file: str = ".session-key"
    log_level: str = "INFO"
    log_format: str = "text"
    log_rate_per_ip: Rate = LOG_RATE_PER_IP
    log_summary_interval: float = 10.0
    admin_token: str | None = None
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_audience: str | None = None
    redis_url: str | None = None
    node_lease: float = 10.0
    workers: int = 1
    ice_servers: tuple[dict[str, Any], ...] = ({"urls": "stun:stun.l.google.com:19302"},)
    turn_urls: tuple[str, ...] = ()
    turn_secrets: tuple[str, ...] = ()
    turn_ttl: float = 3600.0

    @property
    def limits(self) -> Limits:
        return Limits(
            sdp_chars=self.max_sdp_chars,
            candidate_chars=self.max_candidate_chars,
            metadata_bytes=self.max_metadata_bytes,
            peer_message_bytes=self.max_peer_message_bytes,
        )

    @property
    def ice(self) -> IceServers:
        return IceServers(
            self.ice_servers, turn_urls=self.turn_urls, secrets=self.turn_secrets, ttl=self.turn_ttl
        )

    @property
    def token_verifier(self) -> TokenVerifier | None:
        if self.jwt_public_key:
            return TokenVerifier(self.jwt_public_key, ["RS256", "ES256"], self.jwt_audience)
        if self.jwt_secret:
            return TokenVerifier(self.jwt_secret, ["HS256"], self.jwt_audience)
        return None

    @property
    def rate_limits(self) -> RateLimits:
        return RateLimits(self.rate_relay, self.rate_control, self.rate_query, self.rate_limit_strikes)

    @property
    def peer_limits(self) -> PeerLimits:
        return PeerLimits(rooms=self.max_rooms_per_peer, streams=self.max_streams_per_peer)

    @classmethod
    def load(cls, argv: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the environment, then CLI flags; raise SettingsError naming the key."""
        values: dict[str, Any] = {}
        for option in OPTIONS:
            if environ is not None and option.env in environ:
                values[option.attribute] = _cast(option, environ[option.env], option.env)
        parsed = _parser().parse_args(list(argv))
        for option in OPTIONS:
            raw = getattr(parsed, option.attribute)
            if raw is not None:
                values[option.attribute] = _cast(option, raw, option.flag)
        if "ice_servers" in values:
            values["ice_servers"] = tuple(values["ice_servers"])
        settings = replace(cls(), **values)
        _check_consistency(settings)
        return settings


def _cast(option: Option, raw: str, source: str) -> Any:
    try:
        return option.cast(raw)
    except (ValueError, json.JSONDecodeError) as exc:
        raise SettingsError(f"{source}={raw!r}: {exc}") from None


def _check_consistency(settings: Settings) -> None:
    if bool(settings.turn_urls) != bool(settings.turn_secrets):
        raise SettingsError("TURN_URLS and TURN_SECRET go together: credentials need both")
    if settings.jwt_secret and settings.jwt_public_key:
        raise SettingsError("set AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY, not both")
    if settings.workers > 1 and not settings.redis_url:
        raise SettingsError("WORKERS above 1 needs REDIS_URL: the workers share their state through Redis")
    if settings.max_sdp_chars >= settings.max_message_bytes:
        raise SettingsError(
            f"MAX_SDP_CHARS ({settings.max_sdp_chars}) must be below MAX_MESSAGE_BYTES "
            f"({settings.max_message_bytes}), or SDP of the allowed size could never arrive"
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        # No fixed prog: the same flags serve `python app.py` and the installed `signaling-server`.
        description="WebRTC signaling server (socket.io). Each flag overrides the environment "
        "variable named in its help.",
    )
    defaults = Settings()
    for option in OPTIONS:
        default = getattr(defaults, option.attribute)
        parser.add_argument(
            option.flag,
            dest=option.attribute,
            metavar=option.env,
            help=f"{option.help} [env {option.env}, default {default!r}]",
        )
    return parser
