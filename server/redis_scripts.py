"""The Lua scripts of cluster mode: every write a node makes to Redis is one of these.

Each script runs atomically inside Redis, so what it checks and what it writes cannot be torn
apart by another node: a nonce looked up and its message appended, a name checked and claimed,
a dead node's names freed with exactly one leave event each.  Time always comes from Redis
``TIME``, never from a node's clock, so nodes with skewed clocks still agree on leases and
timestamps.

Key layout (every key starts with the prefix, ``tkchat:``):

- ``next_id``: the one counter of message ids, shared by every room, so ids are one sequence.
- ``room:<name>``: one stream per room.  A message is the entry ``<id>-0``; a join or leave
  event after message N is ``N-<k>`` (Redis picks k), so events never take a message id and
  stream order is id order.  Fields: ``k`` kind (``m``, ``j``, ``l``), ``u`` user, ``t`` text,
  ``ts`` Unix milliseconds, ``n`` nonce (when sent), ``o`` "node session" (events).
- ``dm``: the stream of direct messages (reserved: same entry layout, plus ``to``).
- ``names``: hash, lower-case name -> "node session Name" of whoever holds it.
- ``nodes``: sorted set, node -> lease expiry (Redis ms); a node renews it every lease/3.
- ``node:<node>:names``: the lower-case names a node holds (what to free when it dies).
- ``node:<node>:batch``: the node's last batch token and its result (a retry returns it).
- ``nonce:<user>``: hash, "=" + nonce -> "id stream" over the user's last messages;
  ``nonces:<user>``: list of "id =nonce" (or "id ") of those messages, newest first.
"""

from __future__ import annotations

_NOW = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function ms_text(ms) return string.format('%.0f', ms) end
local function event_id(p) return (redis.call('GET', p .. 'next_id') or '0') .. '-*' end
"""

# ARGV: prefix, node, token, highest id the node has seen, nonce memory,
#       then per message: stream, user, nonce argument ("" or "=" .. nonce), text.
# Returns per message two strings: its id, and "" when it was stored now or, for a repeat of a
# known nonce, the stream that holds the original.  A batch whose token is the node's last one
# (a retry after a lost reply) returns the stored result and writes nothing.
BATCH = (
    _NOW
    + """
local p = ARGV[1]
local bkey = p .. 'node:' .. ARGV[2] .. ':batch'
local last = redis.call('GET', bkey)
if last then
  local nl = string.find(last, '\\n', 1, true)
  if string.sub(last, 1, nl - 1) == ARGV[3] then
    return cjson.decode(string.sub(last, nl + 1))
  end
end
local counter = tonumber(redis.call('GET', p .. 'next_id') or '0')
if counter < tonumber(ARGV[4]) then
  return redis.error_reply('BEHIND next_id ' .. counter .. ' < ' .. ARGV[4])
end
local ts = ms_text(now_ms())
local memory = tonumber(ARGV[5])
local out = {}
for i = 6, #ARGV, 4 do
  local stream, user, narg, text = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local lname = string.lower(user)
  local hkey = p .. 'nonce:' .. lname
  local found = false
  if narg ~= '' then found = redis.call('HGET', hkey, narg) end
  if found then
    local sp = string.find(found, ' ', 1, true)
    out[#out + 1] = string.sub(found, 1, sp - 1)
    out[#out + 1] = string.sub(found, sp + 1)
  else
    local id = redis.call('INCR', p .. 'next_id')
    if narg == '' then
      redis.call('XADD', stream, id .. '-0', 'k', 'm', 'u', user, 't', text, 'ts', ts)
    else
      redis.call('XADD', stream, id .. '-0', 'k', 'm', 'u', user, 't', text, 'ts', ts,
                 'n', string.sub(narg, 2))
      redis.call('HSET', hkey, narg, id .. ' ' .. stream)
    end
    local lkey = p .. 'nonces:' .. lname
    if redis.call('LPUSH', lkey, id .. ' ' .. narg) > memory then
      local old = redis.call('RPOP', lkey)
      local sp = string.find(old, ' ', 1, true)
      local oldn = string.sub(old, sp + 1)
      if oldn ~= '' then
        local cur = redis.call('HGET', hkey, oldn)
        if cur and string.sub(cur, 1, sp) == string.sub(old, 1, sp) then
          redis.call('HDEL', hkey, oldn)
        end
      end
    end
    out[#out + 1] = tostring(id)
    out[#out + 1] = ''
  end
end
redis.call('SET', bkey, ARGV[3] .. '\\n' .. cjson.encode(out), 'EX', 86400)
return out
"""
)

# ARGV: prefix, node, session, name, stream.  Claims the name for this node's session and
# appends the join event; returns the event's stream id, or nil when the name is held.
# Error LEASE when this node's own lease has run out (its names may already be freed).
CLAIM = (
    _NOW
    + """
local p = ARGV[1]
local now = now_ms()
local lease = redis.call('ZSCORE', p .. 'nodes', ARGV[2])
if not lease or tonumber(lease) < now then
  return redis.error_reply('LEASE this node has no lease')
end
local lname = string.lower(ARGV[4])
local owner = ARGV[2] .. ' ' .. ARGV[3]
if redis.call('HSETNX', p .. 'names', lname, owner .. ' ' .. ARGV[4]) == 0 then
  return false
end
redis.call('SADD', p .. 'node:' .. ARGV[2] .. ':names', lname)
return redis.call('XADD', ARGV[5], event_id(p), 'k', 'j', 'u', ARGV[4], 'ts', ms_text(now),
                  'o', owner)
"""
)

# ARGV: prefix, node, session, name, stream.  Frees the name if this session holds it and
# appends the leave event; returns 1, or 0 when it was not held (already freed).
RELEASE = (
    _NOW
    + """
local p = ARGV[1]
local lname = string.lower(ARGV[4])
local owner = ARGV[2] .. ' ' .. ARGV[3]
if redis.call('HGET', p .. 'names', lname) ~= owner .. ' ' .. ARGV[4] then return 0 end
redis.call('HDEL', p .. 'names', lname)
redis.call('SREM', p .. 'node:' .. ARGV[2] .. ':names', lname)
redis.call('XADD', ARGV[5], event_id(p), 'k', 'l', 'u', ARGV[4], 'ts', ms_text(now_ms()),
           'o', owner)
return 1
"""
)

# ARGV: prefix, node, lease in ms.  Extends this node's lease; returns 1 if the node still held
# one (even if it had just run out: nobody freed its names yet), 0 if it was reaped meanwhile.
RENEW = (
    _NOW
    + """
local p = ARGV[1]
local now = now_ms()
local old = redis.call('ZSCORE', p .. 'nodes', ARGV[2])
redis.call('ZADD', p .. 'nodes', now + tonumber(ARGV[3]), ARGV[2])
if old then return 1 end
return 0
"""
)

# ARGV: prefix, stream, and optionally a node to retire now (a node shutting down).  Frees the
# names of every node whose lease ran out (and of the retiring node), one leave event each;
# returns how many names were freed.
REAP = (
    _NOW
    + """
local p = ARGV[1]
local now = now_ms()
local dead = redis.call('ZRANGEBYSCORE', p .. 'nodes', '-inf', '(' .. ms_text(now),
                        'LIMIT', 0, 16)
if ARGV[3] then dead[#dead + 1] = ARGV[3] end
local freed = 0
for _, node in ipairs(dead) do
  local skey = p .. 'node:' .. node .. ':names'
  for _, lname in ipairs(redis.call('SMEMBERS', skey)) do
    local held = redis.call('HGET', p .. 'names', lname)
    if held then
      local a = string.find(held, ' ', 1, true)
      if string.sub(held, 1, a - 1) == node then
        local b = string.find(held, ' ', a + 1, true)
        redis.call('HDEL', p .. 'names', lname)
        redis.call('XADD', ARGV[2], event_id(p), 'k', 'l', 'u', string.sub(held, b + 1),
                   'ts', ms_text(now), 'o', string.sub(held, 1, b - 1))
        freed = freed + 1
      end
    end
  end
  redis.call('DEL', skey)
  redis.call('ZREM', p .. 'nodes', node)
end
return freed
"""
)

# ARGV: prefix, then stream keys.  One consistent view for a node that starts: the id of the
# last entry of each stream ("0-0" if none), the message counter, then everyone's display name.
SNAPSHOT = """
local p = ARGV[1]
local out = {}
for i = 2, #ARGV do
  local top = redis.call('XREVRANGE', ARGV[i], '+', '-', 'COUNT', 1)
  if top[1] then out[#out + 1] = top[1][1] else out[#out + 1] = '0-0' end
end
out[#out + 1] = redis.call('GET', p .. 'next_id') or '0'
for _, held in ipairs(redis.call('HVALS', p .. 'names')) do
  local a = string.find(held, ' ', 1, true)
  local b = string.find(held, ' ', a + 1, true)
  out[#out + 1] = string.sub(held, b + 1)
end
return out
"""
