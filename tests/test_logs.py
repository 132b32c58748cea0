"""What protects the logs from clients, without a server: escaping, and the per-address budget
with an injected clock (the attacks themselves are in test_hostile.py)."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from signaling.operations.logs import ClientLogBudget, JsonFormatter, TextFormatter, client_address, escape
from signaling.security.ratelimit import Rate
from tests.test_ratelimit import Clock


def record(
    message: str, *args: object, code: str | None = None, name: str = "signaling.x"
) -> logging.LogRecord:
    entry = logging.LogRecord(name, logging.WARNING, __file__, 1, message, args, None)
    if code is not None:
        entry.code = code
    return entry


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain text, é and 😀 stay", "plain text, é and 😀 stay"),
        ("a\nb\r\tc", "a\\x0ab\\x0d\\x09c"),
        ("line\u2028separator\x85", "line\\u2028separator\\x85"),
        ("\x1b[31mred\x7f", "\\x1b[31mred\\x7f"),
        ("half \ud800 pair", "half \\ud800 pair"),
    ],
)
def test_escape_keeps_everything_on_one_line(text: str, escaped: str) -> None:
    assert escape(text) == escaped


def test_both_formats_escape_what_clients_wrote() -> None:
    forged = record("event=%s refused", "x\n2026-01-01 00:00:00,000 INFO forged \ud800")
    text = TextFormatter().format(forged)
    assert "\n" not in text and "x\\x0a2026" in text and "\\ud800" in text
    entry = orjson.loads(JsonFormatter().format(forged))  # orjson refuses unpaired surrogates
    assert entry["message"] == "event=x\\x0a2026-01-01 00:00:00,000 INFO forged \\ud800 refused"


def test_each_address_has_a_budget_and_held_lines_are_summarized(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    budget = ClientLogBudget(Rate(1, 3), summary_every=10, clock=clock)
    assert budget.filter(record("no client"))  # lines outside any request are never held
    reset = client_address.set("10.0.0.1")
    try:
        passed = [budget.filter(record("refused", code="rate_limited")) for _ in range(10)]
        assert passed == [True] * 3 + [False] * 7
        client_address.set("10.0.0.2")  # another address has its own budget
        assert budget.filter(record("refused"))
        client_address.set("10.0.0.1")
        assert not budget.filter(record("bad", name="signaling.engineio"))
        clock.now = 1.0  # one line back at 1 per second
        assert budget.filter(record("refused"))
    finally:
        client_address.reset(reset)
    with caplog.at_level(logging.WARNING, logger="signaling.operations.logs"):
        budget.summarize()
    assert caplog.messages == [
        "address=10.0.0.1: 8 log lines held back in the last 10 s (rate_limited 7, signaling.engineio 1)"
    ]
    clock.now = 100.0  # both buckets refilled: nothing to report, and no state kept
    budget.summarize()
    assert budget.addresses == 0


async def test_quiet_addresses_are_forgotten_by_themselves() -> None:
    budget = ClientLogBudget(Rate(1000, 5), summary_every=0.01)
    for index in range(1000):  # within budget: nothing held back, nothing to summarize
        reset = client_address.set(f"10.1.{index // 256}.{index % 256}")
        try:
            assert budget.filter(record("connected"))
        finally:
            client_address.reset(reset)
    assert budget.addresses == 1000
    for _ in range(200):
        if budget.addresses == 0:
            break
        await asyncio.sleep(0.01)
    assert budget.addresses == 0


async def test_the_summary_comes_by_itself(caplog: pytest.LogCaptureFixture) -> None:
    budget = ClientLogBudget(Rate(1, 1), summary_every=0.01)
    reset = client_address.set("10.0.0.3")
    try:
        budget.filter(record("first"))
        assert not budget.filter(record("second", code="validation_failed"))
    finally:
        client_address.reset(reset)
    with caplog.at_level(logging.WARNING, logger="signaling.operations.logs"):
        for _ in range(100):
            if caplog.messages:
                break
            await asyncio.sleep(0.01)
    assert caplog.messages == [
        "address=10.0.0.3: 1 log lines held back in the last 0.01 s (validation_failed 1)"
    ]
