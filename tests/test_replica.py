"""When a node trusts its view: waiting for a change's own notice, losing and rebuilding (no network)."""

from __future__ import annotations

import asyncio

from signaling.cluster.replica import Replica
from signaling.core.view import Notice

ME = "n1"


def notice(seq: int) -> Notice:
    return Notice(seq, {"r": [("a", ME), ("b", "n2")]}, {})


async def rebuilt(replica: Replica, seq: int = 1) -> None:
    async def load() -> int:
        asyncio.get_running_loop().call_soon(replica.received, notice(seq))
        return seq

    assert await replica.rebuild(load)


async def test_a_rebuild_trusts_the_view_once_its_load_has_come_back() -> None:
    replica = Replica(ME)
    assert not replica.synced and replica.home("b") is None
    await rebuilt(replica)
    assert replica.synced and replica.home("b") == "n2"
    assert replica.allows("b", "a") and not replica.allows("stranger", "a")


async def test_a_change_waits_for_its_own_notice() -> None:
    replica = Replica(ME)
    await rebuilt(replica)
    waiting = asyncio.ensure_future(replica.caught_up(5))
    await asyncio.sleep(0)
    replica.received(notice(4))
    await asyncio.sleep(0)
    assert not waiting.done()
    replica.received(notice(5))
    await asyncio.wait_for(waiting, 1)
    assert replica.synced


async def test_a_notice_that_does_not_come_back_drops_the_view() -> None:
    replica = Replica(ME, timeout=0.01)
    await rebuilt(replica)
    await replica.caught_up(99)
    assert not replica.synced and replica.home("b") is None
    assert replica.allows("anyone", "a")  # unsynced: the receiving check defers to Redis's routing


async def test_a_rebuild_interrupted_by_a_loss_is_not_trusted() -> None:
    replica = Replica(ME)

    async def load() -> int:
        loop = asyncio.get_running_loop()
        loop.call_soon(replica.lost)  # the subscription broke meanwhile
        loop.call_soon(replica.received, notice(1))
        return 1

    assert not await replica.rebuild(load)
    assert not replica.synced
