"""Logging setup: one line per event, named loggers, the peer id on every line; text or JSON.

Two rules protect the logs from clients:
- every message is escaped (`escape`), so no client-chosen string can start a line of its own;
- each client address has a budget of lines (`ClientLogBudget`): a client that keeps provoking
  them gets a periodic summary line instead, with counts by error code.

Which address a line is on behalf of comes from `client_address`, set for every request.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from signaling.security.ratelimit import Rate, TokenBucket

# The address of the client whose request is being handled (None outside any request): the log
# lines written meanwhile count against its budget.
client_address: contextvars.ContextVar[str | None] = contextvars.ContextVar("client_address", default=None)

# Line breaks of every kind, other control characters, and unpaired surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """`text` on one line: control characters and unpaired surrogates as backslash escapes."""
    return text if text.isprintable() and text.isascii() else _UNSAFE.sub(_escaped, text)


def brief(exc: BaseException) -> str:
    """An exception in one line: its type, the start of its message, and where it was raised."""
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ is not None else []
    at = f" at {where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno}" if where else ""
    return f"{type(exc).__name__}: {str(exc)[:120]}{at}"


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log pipelines that parse them."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": escape(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


@dataclass
class _Allowance:
    bucket: TokenBucket
    held: Counter[str] = field(default_factory=Counter)


class ClientLogBudget(logging.Filter):
    """At most `rate` lines per client address; the lines held back beyond it are counted (by
    error code where the line names one, `extra={"code": ...}`, else by logger) and reported in
    one summary line per address every `summary_every` seconds."""

    def __init__(
        self, rate: Rate, summary_every: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.rate = rate
        self.summary_every = summary_every
        self._clock = clock
        self._allowances: dict[str, _Allowance] = {}
        self._summary_due: asyncio.TimerHandle | None = None
        self._log = logging.getLogger(__name__)

    def filter(self, record: logging.LogRecord) -> bool:
        address = client_address.get()
        if address is None:
            return True
        now = self._clock()
        allowance = self._allowances.get(address)
        if allowance is None:
            allowance = self._allowances[address] = _Allowance(TokenBucket(self.rate, self.rate.burst, now))
            self._schedule_summary()  # which also forgets the address once it is quiet
        if allowance.bucket.take(now):
            return True
        allowance.held[str(getattr(record, "code", None) or record.name)] += 1
        self._schedule_summary()
        return False

    def _schedule_summary(self) -> None:
        if self._summary_due is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # outside the server's loop: `summarize` reports it when called
        # An empty context: the summary is nobody's request, so it is never held back itself.
        self._summary_due = loop.call_later(self.summary_every, self.summarize, context=contextvars.Context())

    def summarize(self) -> None:
        """Log one line per address with lines held back, and forget addresses with a full budget
        (it runs every `summary_every` seconds while any address is known)."""
        self._summary_due = None
        now = self._clock()
        for address, allowance in list(self._allowances.items()):
            if allowance.held:
                counts = ", ".join(f"{escape(what)} {count}" for what, count in allowance.held.most_common())
                self._log.warning(
                    "address=%s: %d log lines held back in the last %g s (%s)",
                    escape(address),
                    allowance.held.total(),
                    self.summary_every,
                    counts,
                )
                allowance.held.clear()
            if allowance.bucket.full(now):
                del self._allowances[address]  # idle: its state starts afresh when it logs again
        if self._allowances:
            self._schedule_summary()

    @property
    def addresses(self) -> int:
        return len(self._allowances)


class OneLine(logging.Filter):
    """For a library's logger: its exceptions in one line (signaling.operations.logs.brief), not a
    traceback. aiohttp logs one for every malformed request it is sent."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()}: {brief(record.exc_info[1])}"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


def configure(
    level: str, format: str = "text", per_address: Rate | None = None, summary_every: float = 10.0
) -> None:
    """Log to stderr; with `per_address`, each client address gets that budget of lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    if per_address is not None:
        handler.addFilter(ClientLogBudget(per_address, summary_every))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # The libraries log every packet at INFO; our own lines already say what happened.
    for noisy in ("socketio", "engineio", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("aiohttp.server").addFilter(OneLine())
