"""Lua scripts that make each state change of `RedisStore` one atomic step inside Redis.

Two nodes joining the last seat of a room at the same instant run these one after the other, so
caps, modes and stream ownership hold cluster-wide. Every script gets the key prefix as ARGV[1]
and answers a JSON object: {"ok": ...} or {"error": code, ...}.

Keys (prefix omitted): room:<r> hash peer -> {m: metadata JSON, c: capacity, d: mode, s: seq};
peer:<p>:rooms, peer:<p>:pub, peer:<p>:play zsets by seq; stream:<s> hash publisher/room/maxv;
stream:<s>:viewers zset; roomstreams:<r> zset; rooms set; node:<n>:peers set; nodes set;
seq counter.
Keys are derived inside the scripts, so the store needs a single Redis, not Redis Cluster.
"""

from __future__ import annotations

COMMON = """
local P = ARGV[1]
local function k(...) return P .. table.concat({...}, ':') end
local function reply(t) return cjson.encode(t) end
local function seq() return redis.call('INCR', k('seq')) end
local function zlist(key)
  return redis.call('ZRANGE', key, 0, -1)
end
local function stream_obj(id)
  local h = redis.call('HGETALL', k('stream', id))
  if #h == 0 then return nil end
  local o = {id = id, viewers = zlist(k('stream', id, 'viewers'))}
  for i = 1, #h, 2 do o[h[i]] = h[i + 1] end
  o.maxv = tonumber(o.maxv)
  return o
end
local function members(room)
  local h = redis.call('HGETALL', k('room', room))
  local out = {}
  for i = 1, #h, 2 do
    local seat = cjson.decode(h[i + 1])
    table.insert(out, {h[i], seat.s, seat.m, seat.c, seat.d})
  end
  table.sort(out, function(a, b) return a[2] < b[2] end)
  return out
end
local function member_ids(room)
  local ids = {}
  for _, m in ipairs(members(room)) do table.insert(ids, m[1]) end
  return ids
end
local function leave_room(room, peer)
  redis.call('HDEL', k('room', room), peer)
  redis.call('ZREM', k('peer', peer, 'rooms'), room)
  if redis.call('HLEN', k('room', room)) == 0 then redis.call('SREM', k('rooms'), room) end
  return member_ids(room)
end
local function drop_stream(id)
  local o = stream_obj(id)
  redis.call('DEL', k('stream', id), k('stream', id, 'viewers'))
  redis.call('ZREM', k('peer', o.publisher, 'pub'), id)
  if o.room ~= '' then redis.call('ZREM', k('roomstreams', o.room), id) end
  for _, v in ipairs(o.viewers) do redis.call('ZREM', k('peer', v, 'play'), id) end
  return o
end
-- The node whose list a peer is on: where its session is (signaling.cluster.redis_sessions),
-- else the one it was born on.
local function home(peer, born)
  local node = redis.call('HGET', k('session', peer), 'node')
  if node and node ~= '' then return node end
  return born
end
local function held_streams(peer)
  return redis.call('ZCARD', k('peer', peer, 'pub')) + redis.call('ZCARD', k('peer', peer, 'play'))
end
local function inbox(node) return k('node', node, 'inbox') end
-- What a change tells the nodes concerned (signaling.core.view): the rooms and streams it touched,
-- each in full, to the nodes of the peers in them before and after, and to the node that made it.
local told = {nodes = {}, rooms = {}, streams = {}}
local function placed(peer)
  local node = redis.call('HGET', k('session', peer), 'node') or ''
  if node ~= '' then told.nodes[node] = true end
  return {peer, node}
end
local function touch_room(room)
  if told.rooms[room] then return end
  told.rooms[room] = true
  for _, peer in ipairs(redis.call('HKEYS', k('room', room))) do placed(peer) end
end
local function touch_stream(id)
  if told.streams[id] then return end
  told.streams[id] = true
  local publisher = redis.call('HGET', k('stream', id), 'publisher')
  if publisher then placed(publisher) end
  for _, viewer in ipairs(zlist(k('stream', id, 'viewers'))) do placed(viewer) end
end
local function touch_peer(peer)
  placed(peer)
  for _, room in ipairs(zlist(k('peer', peer, 'rooms'))) do touch_room(room) end
  for _, id in ipairs(zlist(k('peer', peer, 'pub'))) do touch_stream(id) end
  for _, id in ipairs(zlist(k('peer', peer, 'play'))) do touch_stream(id) end
end
-- Publishes what was touched, as it is now; returns the change's seq (0: nothing to tell).
-- `me` alone is told when `only_me` (a node rebuilding its view).
local function announce(me, only_me)
  if next(told.rooms) == nil and next(told.streams) == nil then return 0 end
  local s = seq()
  local rooms, streams = {}, {}
  for room in pairs(told.rooms) do
    local list = {}
    for _, peer in ipairs(redis.call('HKEYS', k('room', room))) do table.insert(list, placed(peer)) end
    rooms[room] = list
  end
  for id in pairs(told.streams) do
    local o = stream_obj(id)
    if o then
      local viewers = {}
      for _, viewer in ipairs(o.viewers) do table.insert(viewers, placed(viewer)) end
      local maxv = redis.call('HGET', k('stream', id), 'maxv')  -- as text: cjson writes big numbers as 1e+14
      streams[id] = {publisher = placed(o.publisher), room = o.room, maxv = maxv, viewers = viewers}
    else
      streams[id] = false
    end
  end
  local envelope = cjson.encode({v = 1, to = '', type = 'State', body = {seq = s, rooms = rooms, streams = streams}})
  if only_me then told.nodes = {} end
  if me ~= '' then told.nodes[me] = true end
  for node in pairs(told.nodes) do redis.call('PUBLISH', inbox(node), envelope) end
  return s
end
"""

# Write scripts get the calling node last (ARGV[#ARGV]) and answer the change's seq as well.

# ARGV: prefix, room, peer, metadata JSON, capacity, mode ('' for none), max rooms, node, caller
JOIN = (
    COMMON
    + """
local room, peer, meta, cap, mode, max_rooms, node = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7]), ARGV[8]
if redis.call('HEXISTS', k('room', room), peer) == 1 then return reply({error = 'already_joined'}) end
if redis.call('ZCARD', k('peer', peer, 'rooms')) >= max_rooms then return reply({error = 'too_many_rooms', limit = max_rooms}) end
local existing = members(room)
local limit = cap
for _, m in ipairs(existing) do
  if mode ~= '' and m[5] ~= '' and m[5] ~= mode then return reply({error = 'room_mode_conflict', mode = m[5]}) end
  if m[4] < limit then limit = m[4] end
end
if #existing >= limit then return reply({error = 'room_full', limit = limit}) end
local s = seq()
redis.call('HSET', k('room', room), peer, cjson.encode({m = meta, c = cap, d = mode, s = s}))
redis.call('SADD', k('rooms'), room)
redis.call('ZADD', k('peer', peer, 'rooms'), s, room)
redis.call('SADD', k('node', home(peer, node), 'peers'), peer)
local out = {}
for _, m in ipairs(existing) do table.insert(out, {m[1], m[3]}) end
touch_room(room)
return reply({ok = out, seq = announce(ARGV[9])})
"""
)

# ARGV: prefix, room, peer, caller
LEAVE = (
    COMMON
    + """
local room, peer = ARGV[2], ARGV[3]
if redis.call('HEXISTS', k('room', room), peer) == 0 then return reply({error = 'not_in_room'}) end
touch_room(room)
return reply({ok = leave_room(room, peer), seq = announce(ARGV[4])})
"""
)

# ARGV: prefix, stream, peer, room ('' for none), max viewers (0 for any), max streams, node, caller
PUBLISH = (
    COMMON
    + """
local id, peer, room, maxv, max_streams, node = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7]
local owner = redis.call('HGET', k('stream', id), 'publisher')
if owner == peer then return reply({error = 'already_publishing'}) end
if owner then return reply({error = 'stream_in_use'}) end
if room ~= '' and redis.call('HEXISTS', k('room', room), peer) == 0 then return reply({error = 'not_in_room'}) end
if held_streams(peer) >= max_streams then return reply({error = 'too_many_streams', limit = max_streams}) end
local s = seq()
redis.call('HSET', k('stream', id), 'publisher', peer, 'room', room, 'maxv', maxv)
redis.call('ZADD', k('peer', peer, 'pub'), s, id)
if room ~= '' then redis.call('ZADD', k('roomstreams', room), s, id) end
redis.call('SADD', k('node', home(peer, node), 'peers'), peer)
touch_stream(id)
return reply({ok = stream_obj(id), seq = announce(ARGV[8])})
"""
)

# ARGV: prefix, stream, peer, caller
UNPUBLISH = (
    COMMON
    + """
local id, peer = ARGV[2], ARGV[3]
if redis.call('HGET', k('stream', id), 'publisher') ~= peer then return reply({error = 'not_streaming'}) end
touch_stream(id)
return reply({ok = drop_stream(id), seq = announce(ARGV[4])})
"""
)

# ARGV: prefix, stream, viewer, max streams, node, caller
PLAY = (
    COMMON
    + """
local id, viewer, max_streams, node = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local o = stream_obj(id)
if not o or (o.room ~= '' and redis.call('HEXISTS', k('room', o.room), viewer) == 0) then
  return reply({error = 'no_such_stream'})
end
if o.publisher == viewer then return reply({error = 'already_publishing'}) end
if redis.call('ZSCORE', k('stream', id, 'viewers'), viewer) then return reply({error = 'already_playing'}) end
if held_streams(viewer) >= max_streams then return reply({error = 'too_many_streams', limit = max_streams}) end
if o.maxv > 0 and #o.viewers >= o.maxv then return reply({error = 'viewer_limit_reached', limit = o.maxv}) end
local s = seq()
redis.call('ZADD', k('stream', id, 'viewers'), s, viewer)
redis.call('ZADD', k('peer', viewer, 'play'), s, id)
redis.call('SADD', k('node', home(viewer, node), 'peers'), viewer)
touch_stream(id)
return reply({ok = stream_obj(id), seq = announce(ARGV[6])})
"""
)

# ARGV: prefix, stream, viewer, caller
STOP_PLAYING = (
    COMMON
    + """
local id, viewer = ARGV[2], ARGV[3]
local o = stream_obj(id)
if not o or not redis.call('ZSCORE', k('stream', id, 'viewers'), viewer) then return reply({error = 'not_streaming'}) end
touch_stream(id)
redis.call('ZREM', k('stream', id, 'viewers'), viewer)
redis.call('ZREM', k('peer', viewer, 'play'), id)
return reply({ok = o, seq = announce(ARGV[4])})
"""
)

# ARGV: prefix, peer, node, caller
REMOVE_PEER = (
    COMMON
    + """
local peer, node = ARGV[2], ARGV[3]
local published, played, rooms = {}, {}, {}
touch_peer(peer)
for _, id in ipairs(zlist(k('peer', peer, 'pub'))) do table.insert(published, drop_stream(id)) end
for _, id in ipairs(zlist(k('peer', peer, 'play'))) do
  local o = stream_obj(id)
  if o then
    table.insert(played, o)
    redis.call('ZREM', k('stream', id, 'viewers'), peer)
  end
end
redis.call('DEL', k('peer', peer, 'play'))
for _, room in ipairs(zlist(k('peer', peer, 'rooms'))) do
  table.insert(rooms, {room, leave_room(room, peer)})
end
redis.call('SREM', k('node', home(peer, node), 'peers'), peer)
if node ~= home(peer, node) then redis.call('SREM', k('node', node, 'peers'), peer) end
return reply({ok = {published = published, played = played, rooms = rooms}, seq = announce(ARGV[4])})
"""
)

# ARGV: prefix, sender, target, room ('' for any), stream ('' for none)
ROUTE = (
    COMMON
    + """
local sender, target, room, stream = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local function linked(id)
  local owner = redis.call('HGET', k('stream', id), 'publisher')
  if not owner then return false end
  local vkey = k('stream', id, 'viewers')
  return (owner == sender and redis.call('ZSCORE', vkey, target)) or (owner == target and redis.call('ZSCORE', vkey, sender))
end
if target == sender then return reply({error = 'unknown_target', why = 'self'}) end
if stream ~= '' then
  if linked(stream) then return reply({ok = {stream = stream}}) end
  return reply({error = 'unknown_target', why = 'stream'})
end
if room ~= '' then
  if redis.call('HEXISTS', k('room', room), sender) == 0 then return reply({error = 'not_in_room'}) end
  if redis.call('HEXISTS', k('room', room), target) == 1 then return reply({ok = {room = room}}) end
  return reply({error = 'unknown_target', why = 'room'})
end
local rooms = zlist(k('peer', sender, 'rooms'))
for _, r in ipairs(rooms) do
  if redis.call('HEXISTS', k('room', r), target) == 1 then return reply({ok = {room = r}}) end
end
local streams = zlist(k('peer', sender, 'pub'))
for _, id in ipairs(zlist(k('peer', sender, 'play'))) do table.insert(streams, id) end
for _, id in ipairs(streams) do
  if linked(id) then return reply({ok = {stream = id}}) end
end
if #rooms == 0 and #streams == 0 then return reply({error = 'not_joined'}) end
return reply({error = 'unknown_target', why = 'any'})
"""
)

# ARGV: prefix, peer..., caller. Tells the caller alone everything the peers are in: a node
# rebuilding its view.
LOAD = (
    COMMON
    + """
for i = 2, #ARGV - 1 do touch_peer(ARGV[i]) end
return reply({ok = true, seq = announce(ARGV[#ARGV], true)})
"""
)

# ARGV: prefix
STATS = (
    COMMON
    + """
local peers = 0
for _, node in ipairs(redis.call('SMEMBERS', k('nodes'))) do
  for _, peer in ipairs(redis.call('SMEMBERS', k('node', node, 'peers'))) do
    if held_streams(peer) + redis.call('ZCARD', k('peer', peer, 'rooms')) > 0 then peers = peers + 1 end
  end
end
return reply({ok = {redis.call('SCARD', k('rooms')), peers}})
"""
)

# ARGV: prefix, room
MEMBERS = (
    COMMON
    + """
local out = {}
for _, m in ipairs(members(ARGV[2])) do table.insert(out, {m[1], m[3]}) end
return reply({ok = out})
"""
)

# ARGV: prefix, stream
STREAM = (
    COMMON
    + """
return reply({ok = stream_obj(ARGV[2]) or false})
"""
)

# ARGV: prefix, room
ROOM_STREAMS = (
    COMMON
    + """
local out = {}
for _, id in ipairs(zlist(k('roomstreams', ARGV[2]))) do
  local o = stream_obj(id)
  if o then table.insert(out, o) end
end
return reply({ok = out})
"""
)


# ARGV: prefix, peer, name. The other side of the stream the peer publishes or plays under that
# id (stored as the id, or as room/id), else of the room so named; {} if it has nothing so named.
COUNTERPARTS = (
    COMMON
    + """
local peer, name = ARGV[2], ARGV[3]
local function named(id) return id == name or string.sub(id, -(#name + 1)) == '/' .. name end
for _, id in ipairs(zlist(k('peer', peer, 'pub'))) do
  if named(id) then return reply({ok = {peers = zlist(k('stream', id, 'viewers')), stream = id, plays = false}}) end
end
for _, id in ipairs(zlist(k('peer', peer, 'play'))) do
  if named(id) then
    local owner = redis.call('HGET', k('stream', id), 'publisher')
    return reply({ok = {peers = owner and {owner} or {}, stream = id, plays = true}})
  end
end
if redis.call('HEXISTS', k('room', name), peer) == 1 then
  local others = {}
  for _, member in ipairs(redis.call('HKEYS', k('room', name))) do
    if member ~= peer then table.insert(others, member) end
  end
  return reply({ok = {peers = others, room = name, plays = false}})
end
return reply({ok = {}})
"""
)
