"""Sessions in Redis, so that any node resumes a session: after a drop, a drain, or its node's
death.

A session is a hash `session:<peer>` (`node`: the node it is attached to, or was last; `held`:
"1" while no connection has it; `placeholder`, `resumable`, `size`, `overflow`, `gone`: the
reason the others hear if it is not resumed), the messages kept for it in `session:<peer>:kept`,
and while held its deadline in the sorted set `held`. An ended session leaves `ended:<peer>`
(its reason) for a grace. `node:<n>:peers` lists the sessions whose home is node n (the store
adds the peers that hold rooms or streams): what is reaped when n dies.

Delivery to a peer not connected here is one script, DELIVER: a PUBLISH on its home node's
channel while that node listens, or else kept for its resume. A relay to a peer whose node has
just died is kept, not lost.
"""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as redis

from signaling.cluster import codec, redis_lua
from signaling.cluster.redis_store import as_text, available
from signaling.cluster.replica import Replica
from signaling.core.messages import Outbound
from signaling.core.sessions import Ending, Resumption

COMMON = (
    redis_lua.COMMON
    + """
local function ended(peer, why, grace_ms)
  local s = k('session', peer)
  local home = redis.call('HGET', s, 'node')
  if home and home ~= '' then redis.call('SREM', k('node', home, 'peers'), peer) end
  redis.call('DEL', s, s .. ':kept')
  redis.call('ZREM', k('held'), peer)
  redis.call('SET', k('ended', peer), why, 'PX', grace_ms, 'NX')
end
-- The sessions a node's list names that are still its: those resumed elsewhere leave the list.
local function listed(node)
  local out = {}
  for _, peer in ipairs(redis.call('SMEMBERS', k('node', node, 'peers'))) do
    local home = redis.call('HGET', k('session', peer), 'node')
    if home and home ~= node and home ~= '' then
      redis.call('SREM', k('node', node, 'peers'), peer)
    else
      table.insert(out, peer)
    end
  end
  return out
end
-- A held session off a node's list, with no home: any node's sweep ends it if it is not resumed.
-- The nodes of those it shares something with learn it (announce), so that they stop publishing
-- for it on a channel that a node cut off from the network may still hold open.
local function homeless(node, peer)
  redis.call('HSET', k('session', peer), 'node', '')
  redis.call('SREM', k('node', node, 'peers'), peer)
  touch_peer(peer)
end
local function young(now_ms, grace_ms)
  local epoch = tonumber(redis.call('GET', k('epoch')) or now_ms)
  return now_ms < epoch + grace_ms
end
"""
)

# ARGV: prefix, peer, node, resumable ("1"/"0")
OPEN = (
    COMMON
    + """
local s = k('session', ARGV[2])
redis.call('DEL', s, s .. ':kept')
redis.call('HSET', s, 'node', ARGV[3], 'held', '0', 'resumable', ARGV[4], 'size', 0)
redis.call('SADD', k('node', ARGV[3], 'peers'), ARGV[2])
return 1
"""
)

# ARGV: prefix, peer, node, deadline ms. 1: held (or it lives on elsewhere); 0: it ends now.
HOLD = (
    COMMON
    + """
local s = k('session', ARGV[2])
if redis.call('EXISTS', k('ended', ARGV[2])) == 1 then return 0 end
local home = redis.call('HGET', s, 'node')
if not home then
  -- Redis lost it (restarted empty): held as a placeholder, rebuilt by its owner's claims.
  redis.call('HSET', s, 'node', ARGV[3], 'held', '1', 'placeholder', '1', 'resumable', '1', 'size', 0)
  redis.call('SADD', k('node', ARGV[3], 'peers'), ARGV[2])
elseif home ~= ARGV[3] then
  return 1  -- resumed on another node meanwhile: not ours to hold
elseif redis.call('HGET', s, 'resumable') ~= '1' then
  return 0
end
redis.call('HSET', s, 'held', '1', 'gone', 'disconnected')
redis.call('ZADD', k('held'), ARGV[4], ARGV[2])
return 1
"""
)

# ARGV: prefix, peer, envelope, size, limit, now ms, node. 1: delivered or kept; 0: no session.
DELIVER = (
    COMMON
    + """
local peer, s = ARGV[2], k('session', ARGV[2])
local held = redis.call('HGET', s, 'held')
if not held then return 0 end
if held ~= '1' then
  local home = redis.call('HGET', s, 'node')
  if home ~= ARGV[7] and redis.call('PUBLISH', inbox(home), ARGV[3]) > 0 then return 1 end
  -- Its node is gone (nobody listens) or it is between connections here: kept for its resume.
end
if redis.call('HGET', s, 'overflow') == '1' then return 1 end
local size = redis.call('HINCRBY', s, 'size', tonumber(ARGV[4]))
if size > tonumber(ARGV[5]) then
  redis.call('HSET', s, 'overflow', '1')
  redis.call('DEL', s .. ':kept')
  -- A held session ends at the next sweep. One still attached (its node not listening for a
  -- moment) stays its connection's: its node clears this when it listens again (RECLAIM).
  if held == '1' then redis.call('ZADD', k('held'), ARGV[6], peer) end
  return 1
end
redis.call('RPUSH', s .. ':kept', ARGV[3])
return 1
"""
)

# ARGV: prefix, peer, node. {found, previous node, placeholder, seq, kept...}: the nodes of
# everyone it shares something with, and its previous one, learn where it is now.
RESUME = (
    COMMON
    + """
local peer, s, me = ARGV[2], k('session', ARGV[2]), ARGV[3]
local why = redis.call('GET', k('ended', peer))
if why then return {why} end
local held = redis.call('HGET', s, 'held')
if not held then return {'unknown'} end
if redis.call('HGET', s, 'overflow') == '1' then return {'overflow'} end
local home = redis.call('HGET', s, 'node')
local kept = redis.call('LRANGE', s .. ':kept', 0, -1)
redis.call('DEL', s .. ':kept')
redis.call('HSET', s, 'node', me, 'held', '0', 'size', 0, 'resumable', '1')
redis.call('ZREM', k('held'), peer)
if home and home ~= '' and home ~= me then redis.call('SREM', k('node', home, 'peers'), peer) end
redis.call('SADD', k('node', me, 'peers'), peer)
local previous = ''
if held ~= '1' then previous = home end
touch_peer(peer)
if home and home ~= '' then told.nodes[home] = true end
local out = {'kept', previous, redis.call('HGET', s, 'placeholder') or '0', announce(me)}
redis.call('HDEL', s, 'placeholder')
for _, message in ipairs(kept) do table.insert(out, message) end
return out
"""
)

# ARGV: prefix, peer, node, now ms, grace ms
RESTORE = (
    COMMON
    + """
local peer, s = ARGV[2], k('session', ARGV[2])
if redis.call('EXISTS', k('ended', peer)) == 1 or redis.call('EXISTS', s) == 1 then return 0 end
if not young(tonumber(ARGV[4]), tonumber(ARGV[5])) then return 0 end
redis.call('HSET', s, 'node', ARGV[3], 'held', '0', 'resumable', '1', 'size', 0)
redis.call('SADD', k('node', ARGV[3], 'peers'), peer)
return 1
"""
)

# ARGV: prefix, peer, now ms, grace ms
PLACEHOLDER = (
    COMMON
    + """
local peer, s = ARGV[2], k('session', ARGV[2])
if redis.call('EXISTS', s) == 1 then
  if redis.call('HGET', s, 'placeholder') == '1' then return 1 end
  return 0
end
if redis.call('EXISTS', k('ended', peer)) == 1 then return 0 end
if not young(tonumber(ARGV[3]), tonumber(ARGV[4])) then return 0 end
redis.call('HSET', s, 'node', '', 'held', '1', 'placeholder', '1', 'resumable', '1', 'size', 0,
  'gone', 'disconnected')
redis.call('ZADD', k('held'), tonumber(ARGV[3]) + tonumber(ARGV[4]), peer)
return 1
"""
)

# ARGV: prefix, peer, why, grace ms
END = COMMON + "ended(ARGV[2], ARGV[3], tonumber(ARGV[4]))\nreturn 1\n"

# ARGV: prefix, now ms, grace ms, at most. {peer, ending, announced reason, ...}, each claimed once.
DUE = (
    COMMON
    + """
local out = {}
local due = redis.call('ZRANGEBYSCORE', k('held'), '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))
for _, peer in ipairs(due) do
  local s = k('session', peer)
  local why = 'expired'
  if redis.call('HGET', s, 'overflow') == '1' then why = 'overflow' end
  local gone = redis.call('HGET', s, 'gone') or 'disconnected'
  if gone == 'node_lost' and why == 'expired' then why = 'node_lost' end
  ended(peer, why, tonumber(ARGV[3]))
  table.insert(out, peer)
  table.insert(out, why)
end
return out
"""
)

# ARGV: prefix, dead node, deadline ms, grace 0 ("1") or not, caller. The dead node's peers:
# resumable sessions are held for their owners (reason "node_lost" if they do not come back); the
# others, returned after the seq of the notice, are removed by the caller; those that moved are no
# longer its.
ORPHANS = (
    COMMON
    + """
local dead, out = ARGV[2], {}
for _, peer in ipairs(listed(dead)) do
  local s = k('session', peer)
  local home = redis.call('HGET', s, 'node')
  if redis.call('HGET', s, 'held') == '1' then
    homeless(dead, peer)  -- already held: its deadline stands; the dead node can be forgotten
  elseif home and ARGV[4] ~= '1' and redis.call('HGET', s, 'resumable') == '1' then
    redis.call('HSET', s, 'held', '1', 'gone', 'node_lost')
    redis.call('ZADD', k('held'), ARGV[3], peer)
    homeless(dead, peer)
  else
    table.insert(out, peer)
  end
end
table.insert(out, 1, announce(ARGV[5]))
return out
"""
)

# ARGV: prefix, node. This node's listed peers that are attached here by Redis's account (or have
# no session): the caller frees those it no longer holds. Held and moved ones are left be.
ATTACHED = (
    COMMON
    + """
local out = {}
for _, peer in ipairs(listed(ARGV[2])) do
  if redis.call('HGET', k('session', peer), 'held') ~= '1' then table.insert(out, peer) end
end
return out
"""
)

# ARGV: prefix, node, peers connected to it. The messages kept for those of them attached there
# (what DELIVER kept while nobody listened on its channel: it was reconnecting), taken.
RECLAIM = (
    COMMON
    + """
local out = {}
for i = 3, #ARGV do
  local s = k('session', ARGV[i])
  if redis.call('HGET', s, 'node') == ARGV[2] and redis.call('HGET', s, 'held') == '0' then
    for _, envelope in ipairs(redis.call('LRANGE', s .. ':kept', 0, -1)) do
      table.insert(out, envelope)
    end
    redis.call('DEL', s .. ':kept')
    redis.call('HSET', s, 'size', 0)
    redis.call('HDEL', s, 'overflow')
  end
end
return out
"""
)

# ARGV: prefix, node. A node leaving: its held sessions stay held with no home (any node's sweep
# ends them), off its list.
DEPART = (
    COMMON
    + """
local me = ARGV[2]
for _, peer in ipairs(listed(me)) do
  if redis.call('HGET', k('session', peer), 'held') == '1' then homeless(me, peer) end
end
announce('')
return redis.call('SCARD', k('node', me, 'peers'))
"""
)

SCRIPTS = (
    "OPEN",
    "HOLD",
    "DELIVER",
    "RESUME",
    "RESTORE",
    "PLACEHOLDER",
    "END",
    "DUE",
    "ORPHANS",
    "ATTACHED",
    "RECLAIM",
)
DUE_BATCH = 200


def _now_ms() -> int:
    return int(time.time() * 1000)


class RedisSessions:
    def __init__(
        self,
        client: redis.Redis,
        *,
        node_id: str,
        grace: float,
        buffer_bytes: int,
        prefix: str,
        replica: Replica | None = None,
    ) -> None:
        self.client = client
        self.replica = replica  # told where a resumed session now is before it is answered
        self.node_id = node_id
        self.grace = grace
        self.buffer_bytes = buffer_bytes
        self.prefix = prefix
        self._grace_ms = max(1, int(grace * 1000))
        self._scripts = {name: client.register_script(globals()[name]) for name in (*SCRIPTS, "DEPART")}

    async def _run(self, name: str, *args: Any) -> Any:
        return await available(lambda: self._scripts[name](args=[self.prefix, *args]))

    async def start(self) -> None:
        """Mark when Redis's memory of sessions begins: claims rebuild sessions for a grace after
        it (Redis restarted empty), never while it may still hold what they claim."""
        await available(lambda: self.client.set(f"{self.prefix}epoch", _now_ms(), nx=True))

    async def open(self, peer_id: str, resumable: bool = True) -> None:
        await self._run("OPEN", peer_id, self.node_id, "1" if resumable else "0")

    async def hold(self, peer_id: str) -> bool:
        if self.grace <= 0:
            return False
        return bool(await self._run("HOLD", peer_id, self.node_id, _now_ms() + self._grace_ms))

    async def keep(self, peer_id: str, message: Outbound) -> bool:
        envelope = codec.encode(peer_id, message)
        answer = await self._run(
            "DELIVER", peer_id, envelope, len(envelope), self.buffer_bytes, _now_ms(), self.node_id
        )
        return bool(answer)

    async def resume(self, peer_id: str) -> Resumption:
        answer = await self._run("RESUME", peer_id, self.node_id)
        found = as_text(answer[0])
        if found != "kept":
            return Resumption(found)  # type: ignore[arg-type]
        previous, placeholder = as_text(answer[1]), as_text(answer[2]) == "1"
        if self.replica is not None:
            await self.replica.caught_up(int(answer[3]))
        messages = tuple(message for _, message in map(codec.decode, answer[4:]) if message is not None)
        if previous and previous != self.node_id:
            # Still attached to a connection on another node: that node lets it go.
            await available(
                lambda: self.client.publish(
                    f"{self.prefix}node:{previous}:inbox", codec.encode_moved(peer_id)
                )
            )
        return Resumption("kept", messages, placeholder)

    async def restore(self, peer_id: str) -> bool:
        return bool(await self._run("RESTORE", peer_id, self.node_id, _now_ms(), self._grace_ms))

    async def placeholder(self, peer_id: str) -> bool:
        return bool(await self._run("PLACEHOLDER", peer_id, _now_ms(), self._grace_ms))

    async def end(self, peer_id: str, why: Ending) -> None:
        await self._run("END", peer_id, why, self._grace_ms)

    async def due(self) -> list[tuple[str, Ending]]:
        answer = await self._run("DUE", _now_ms(), self._grace_ms, DUE_BATCH)
        texts = [as_text(item) for item in answer]
        return list(zip(texts[::2], texts[1::2], strict=True))  # type: ignore[arg-type]

    async def orphans(self, node: str) -> list[str]:
        """A dead node's peers: held for their owners if they can resume; the rest returned."""
        deadline = _now_ms() + self._grace_ms
        answer = await self._run("ORPHANS", node, deadline, "1" if self.grace <= 0 else "0", self.node_id)
        if self.replica is not None:
            await self.replica.caught_up(int(answer[0]))
        return [as_text(peer) for peer in answer[1:]]

    async def attached_here(self) -> list[str]:
        return [as_text(peer) for peer in await self._run("ATTACHED", self.node_id)]

    async def reclaim(self, peers: list[str]) -> list[tuple[str, Outbound]]:
        """What was kept for `peers`, connected here, while this node's channel was not listened
        on (reconnecting): theirs, since they will not resume (see RECLAIM)."""
        if not peers:
            return []
        taken = [codec.decode(envelope) for envelope in await self._run("RECLAIM", self.node_id, *peers)]
        return [(peer, message) for peer, message in taken if message is not None]

    async def depart(self) -> int:
        """Leave held sessions homeless (any node's sweep ends them); how many peers remain listed."""
        return int(await self._run("DEPART", self.node_id))
