"""The Lua scripts of cluster mode: every write a node makes to Redis is one of these.

Each script runs atomically inside Redis, so what it checks and what it writes cannot be torn
apart by another node: a nonce looked up and its message appended, a name checked and claimed,
a dead node's names freed with exactly one leave event each.  Time always comes from Redis
``TIME``, never from a node's clock, so nodes with skewed clocks still agree on leases and
timestamps.

Key layout (every key starts with the prefix, ``tkchat:``):

- ``next_id``: the one counter of message ids, shared by every room and the direct messages,
  so ids are one sequence.
- ``room:<name>``: one stream per room; ``dm``: the stream of direct messages.  A message is the
  entry ``<id>-0``; a join or leave event after message N is ``N-<k>`` (Redis picks k), so
  events never take a message id and stream order is id order.  Fields: ``k`` kind (``m``,
  ``j``, ``l``), ``u`` user, ``t`` text, ``ts`` Unix milliseconds, ``n`` nonce (when sent),
  ``to`` recipient (direct messages), ``o`` "node session" and ``c`` classic flag (events).
- ``rooms``: set of every room's name.
- ``names``: hash, lower-case name -> "node session flag Name" of whoever is logged in as it
  (flag ``c`` for a classic client, ``t`` for a TkChat one); it is ``general``'s member list.
- ``members:<room>``: hash, lower-case name -> "node session flag Name", for other rooms.
- ``in:<user>``: set of the rooms other than general a user is in (what a logout leaves).
- ``nodes``: sorted set, node -> lease expiry (Redis ms); a node renews it every lease/3.
- ``node:<node>:names``: the lower-case names a node holds (what to free when it dies).
- ``node:<node>:batch``: the node's last batch token and its result (a retry returns it).
- ``nonce:<user>``: hash, "=" + nonce -> "id stream node session proven" over the user's last
  messages; ``nonces:<user>``: list of "id =nonce" (or "id ") of those messages, newest first.
"""

from __future__ import annotations

_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function ms_text(ms) return string.format('%.0f', ms) end
local function event_id(p) return (redis.call('GET', p .. 'next_id') or '0') .. '-*' end
local function held_by(value, owner)
  return value and string.sub(value, 1, #owner + 1) == owner .. ' '
end
local function name_of(value)
  local a = string.find(value, ' ', 1, true)
  local b = string.find(value, ' ', a + 1, true)
  local c = string.find(value, ' ', b + 1, true)
  return string.sub(value, c + 1), string.sub(value, 1, b - 1)
end
-- Take a logged-in user out of every room but general (leave events), then out of general.
local function log_out(p, lname, value, general, ts)
  local name, owner = name_of(value)
  local inkey = p .. 'in:' .. lname
  for _, room in ipairs(redis.call('SMEMBERS', inkey)) do
    if held_by(redis.call('HGET', p .. 'members:' .. room, lname), owner) then
      redis.call('HDEL', p .. 'members:' .. room, lname)
      redis.call('XADD', p .. 'room:' .. room, event_id(p), 'k', 'l', 'u', name, 'ts', ts,
                 'o', owner)
    end
  end
  redis.call('DEL', inkey)
  redis.call('HDEL', p .. 'names', lname)
  redis.call('XADD', general, event_id(p), 'k', 'l', 'u', name, 'ts', ts, 'o', owner)
end
"""

# ARGV: prefix, node, token, highest id the node has seen, nonce memory,
#       then per message: stream, user, nonce argument ("" or "=" .. nonce), text, recipient
#       ("" for a room), "session proven" of the sender.
# Returns per message two strings: its id, and "" when it was stored now or, for a repeat of a
# known nonce, the stream that holds the original.  A repeat counts (PROTOCOL.md, ``msg``) when
# it comes from the same login, from a name proven by its password both times, or is the very
# same message (text and destination); otherwise the nonce is taken as new.  A batch whose
# token is the node's last one (a retry after a lost reply) returns the stored result and
# writes nothing.
BATCH = (
    _COMMON
    + """
local p = ARGV[1]
local node = ARGV[2]
local bkey = p .. 'node:' .. node .. ':batch'
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
for i = 6, #ARGV, 6 do
  local stream, user, narg, text, to, who = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
    ARGV[i + 4], ARGV[i + 5]
  local lname = string.lower(user)
  local hkey = p .. 'nonce:' .. lname
  local repeat_of = false
  if narg ~= '' then
    local found = redis.call('HGET', hkey, narg)
    if found then
      local a = string.find(found, ' ', 1, true)
      local b = string.find(found, ' ', a + 1, true)
      local id, where, by = string.sub(found, 1, a - 1), string.sub(found, a + 1, b - 1),
        string.sub(found, b + 1)
      local proven = string.sub(who, -1) == '1'
      if by == node .. ' ' .. who or (proven and string.sub(by, -1) == '1') then
        repeat_of = {id, where}
      elseif where == stream then
        local orig = redis.call('XRANGE', where, id .. '-0', id .. '-0')[1]
        if orig then
          local f = {}
          for j = 1, #orig[2], 2 do f[orig[2][j]] = orig[2][j + 1] end
          if f['t'] == text and string.lower(f['to'] or '') == string.lower(to) then
            repeat_of = {id, where}
          end
        end
      end
    end
  end
  if repeat_of then
    out[#out + 1] = repeat_of[1]
    out[#out + 1] = repeat_of[2]
  else
    local id = redis.call('INCR', p .. 'next_id')
    local fields = {'k', 'm', 'u', user, 't', text, 'ts', ts}
    if narg ~= '' then
      fields[#fields + 1] = 'n'
      fields[#fields + 1] = string.sub(narg, 2)
      redis.call('HSET', hkey, narg, id .. ' ' .. stream .. ' ' .. node .. ' ' .. who)
    end
    if to ~= '' then
      fields[#fields + 1] = 'to'
      fields[#fields + 1] = to
    end
    redis.call('XADD', stream, id .. '-0', unpack(fields))
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

# ARGV: prefix, node, session, name, general stream, flag.  Claims the name for this node's
# session and appends the join event; returns the event's stream id, or nil when the name is
# held.  Error LEASE when this node's own lease has run out (its names may already be freed).
CLAIM = (
    _COMMON
    + """
local p = ARGV[1]
local now = now_ms()
local lease = redis.call('ZSCORE', p .. 'nodes', ARGV[2])
if not lease or tonumber(lease) < now then
  return redis.error_reply('LEASE this node has no lease')
end
local lname = string.lower(ARGV[4])
local owner = ARGV[2] .. ' ' .. ARGV[3]
if redis.call('HSETNX', p .. 'names', lname, owner .. ' ' .. ARGV[6] .. ' ' .. ARGV[4]) == 0 then
  return false
end
redis.call('SADD', p .. 'node:' .. ARGV[2] .. ':names', lname)
redis.call('SADD', p .. 'rooms', 'general')
return redis.call('XADD', ARGV[5], event_id(p), 'k', 'j', 'u', ARGV[4], 'ts', ms_text(now),
                  'o', owner, 'c', ARGV[6])
"""
)

# ARGV: prefix, node, session, name, general stream.  Logs the name out if this session holds
# it: out of every room (leave events), then out of general; returns 1, or 0 when it was not
# held (already freed).
RELEASE = (
    _COMMON
    + """
local p = ARGV[1]
local lname = string.lower(ARGV[4])
local value = redis.call('HGET', p .. 'names', lname)
if not held_by(value, ARGV[2] .. ' ' .. ARGV[3]) then return 0 end
log_out(p, lname, value, ARGV[5], ms_text(now_ms()))
redis.call('SREM', p .. 'node:' .. ARGV[2] .. ':names', lname)
return 1
"""
)

# ARGV: prefix, node, session, name, room.  Puts the logged-in session in the room and appends
# the join event to the room's stream; returns its id, nil if the session is in it already.
# Error GONE when the session is no longer logged in.
ENTER = (
    _COMMON
    + """
local p = ARGV[1]
local lname = string.lower(ARGV[4])
local owner = ARGV[2] .. ' ' .. ARGV[3]
local value = redis.call('HGET', p .. 'names', lname)
if not held_by(value, owner) then return redis.error_reply('GONE not logged in') end
local room = ARGV[5]
if redis.call('HSETNX', p .. 'members:' .. room, lname, value) == 0 then return false end
redis.call('SADD', p .. 'rooms', room)
redis.call('SADD', p .. 'in:' .. lname, room)
return redis.call('XADD', p .. 'room:' .. room, event_id(p), 'k', 'j', 'u', ARGV[4],
                  'ts', ms_text(now_ms()), 'o', owner)
"""
)

# ARGV: prefix, node, session, name, room.  Takes the session out of the room (leave event);
# returns 1, or 0 when it was not in it.
PART = (
    _COMMON
    + """
local p = ARGV[1]
local lname = string.lower(ARGV[4])
local owner = ARGV[2] .. ' ' .. ARGV[3]
local room = ARGV[5]
if not held_by(redis.call('HGET', p .. 'members:' .. room, lname), owner) then return 0 end
redis.call('HDEL', p .. 'members:' .. room, lname)
redis.call('SREM', p .. 'in:' .. lname, room)
redis.call('XADD', p .. 'room:' .. room, event_id(p), 'k', 'l', 'u', ARGV[4],
           'ts', ms_text(now_ms()), 'o', owner)
return 1
"""
)

# ARGV: prefix, node, lease in ms.  Extends this node's lease; returns 1 if the node still held
# one (even if it had just run out: nobody freed its names yet), 0 if it was reaped meanwhile.
RENEW = """
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local old = redis.call('ZSCORE', p .. 'nodes', ARGV[2])
redis.call('ZADD', p .. 'nodes', now + tonumber(ARGV[3]), ARGV[2])
if old then return 1 end
return 0
"""

# ARGV: prefix, general stream, and optionally a node to retire now (a node shutting down).
# Logs out the users of every node whose lease ran out (and of the retiring node), one leave
# event per room each; returns how many users were logged out.
REAP = (
    _COMMON
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
    local value = redis.call('HGET', p .. 'names', lname)
    if held_by(value, node) then
      log_out(p, lname, value, ARGV[2], ms_text(now))
      freed = freed + 1
    end
  end
  redis.call('DEL', skey)
  redis.call('ZREM', p .. 'nodes', node)
end
return freed
"""
)

# ARGV: prefix, stream, members hash.  What a node needs to start following a stream: the id of
# its last entry ("0-0" if none), the id counter, then the member values ("node session flag
# Name") of the room, all at one moment.
SNAPSHOT = """
local top = redis.call('XREVRANGE', ARGV[2], '+', '-', 'COUNT', 1)
local out = {top[1] and top[1][1] or '0-0', redis.call('GET', ARGV[1] .. 'next_id') or '0'}
if ARGV[3] ~= '' then
  for _, value in ipairs(redis.call('HVALS', ARGV[3])) do out[#out + 1] = value end
end
return out
"""
