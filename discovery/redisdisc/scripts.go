package redisdisc

import "github.com/redis/go-redis/v9"

// Every write of the backend is one of the Lua scripts below, run with
// EVALSHA (go-redis falls back to EVAL after a NOSCRIPT, for example after a
// Redis restart). Each change of membership (join, update, leave, expiry)
// stores the node's entry, moves the generation counter and appends the
// entry to the stream in one script, so that the stream and the snapshot
// never disagree and a reader can tell from the generations whether it
// missed an entry. The scripts read the time from Redis (TIME), so the
// deadlines in <alive> share one clock whatever the clocks of the hosts.
//
// Keys, all with the prefix's hash tag so that they share one slot on a
// Redis Cluster: 1 = alive, 2 = nodes, 3 = events, 4 = meta.
//
//	alive   sorted set: node id -> deadline (ms, Redis clock): last heartbeat + the node's TTL
//	nodes   hash: node id -> its latest entry (JSON, see entry)
//	events  stream: one entry per change, in watermill's format plus netron_gen
//	meta    hash: gen (generation of the last change), beat (time of the last
//	        heartbeat or change anyone made), grace (no expiry before this time),
//	        maxttl (the largest TTL any instance of the prefix announced, ms),
//	        incs (incarnations handed out, see incScript)

const luaNow = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// luaAppend appends a change (payload) to the stream with the next
// generation, trims the stream by length (maxlen) and returns the
// generation. It expects now, and the stream's length cap in a variable
// maxlen (0: none).
const luaAppend = `
local function append(payload, uuid)
  local gen = redis.call('HINCRBY', KEYS[4], 'gen', 1)
  if maxlen > 0 then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*',
      '_watermill_message_uuid', uuid, 'metadata', '', 'payload', payload, 'netron_gen', gen)
  else
    redis.call('XADD', KEYS[3], '*',
      '_watermill_message_uuid', uuid, 'metadata', '', 'payload', payload, 'netron_gen', gen)
  end
  return gen
end
local function incOf(raw)
  return string.match(raw, '"inc":(%d+)')
end
`

// luaTiming reads a stored entry's TTL and heartbeat (ms) with cjson
// (both are small integers, exact in Lua's doubles); a heartbeat the entry
// does not carry is taken as a third of the TTL.
const luaTiming = `
local function timingOf(raw)
  local ok, e = pcall(cjson.decode, raw)
  local ttl, hb = 0, 0
  if ok and type(e) == 'table' then
    if type(e.ttl) == 'number' then ttl = e.ttl end
    if type(e.hb) == 'number' then hb = e.hb end
  end
  if hb <= 0 then hb = math.floor(ttl / 3) end
  return ttl, hb
end
`

// luaLeave builds the leave entry of an expired node from its id and its
// stored entry, raw (nil when there is none), for any stored entry, this
// package's or not, even one that is not JSON: cjson encodes the id and the
// TTL (read with cjson, 1 ms when the entry has none in range), and the
// revision follows as the digits of the entry's "inc" and "seq" (1 when
// missing or out of range), copied, not decoded: Lua's numbers, doubles,
// would round an incarnation of 19 digits. decodeEntry reads every leave
// it builds (see TestExpiryOfAForeignEntryIsOnTheStream).
const luaLeave = `
-- int64 returns s, a string of digits, if it is a number from 1 to
-- 2^63 - 1 without leading zeros, else "1".
local function int64(s)
  if s and #s >= 1 and #s <= 19 and string.sub(s, 1, 1) ~= '0' and
     (#s < 19 or s <= '9223372036854775807') then
    return s
  end
  return '1'
end
local function leaveOf(id, raw)
  local ttl = 1
  if raw then
    local ok, e = pcall(cjson.decode, raw)
    if ok and type(e) == 'table' and type(e.ttl) == 'number' and e.ttl >= 1 and e.ttl <= 86400000 then
      ttl = math.floor(e.ttl)
    end
  end
  local r = raw or ''
  local head = cjson.encode({v = 1, op = 'leave', id = id, ttl = ttl})
  return string.sub(head, 1, -2) .. ',"inc":' .. int64(incOf(r)) ..
    ',"seq":' .. int64(string.match(r, '"seq":(%d+)')) .. '}'
end
`

// luaMaxTTL records ttl as the prefix's largest TTL if it is larger; it
// expects the variable ttl.
const luaMaxTTL = `
local maxttl = tonumber(redis.call('HGET', KEYS[4], 'maxttl') or '0')
if ttl > maxttl then
  maxttl = ttl
  redis.call('HSET', KEYS[4], 'maxttl', ttl)
end
`

// putScript announces a node (ARGV: id, entry, incarnation, ttl ms, max
// stream length, max stream age ms, uuid). Unless the id is held by a live
// node of another instance, it stores the entry, sets the node's deadline,
// appends the entry to the stream and returns {"ok", gen}. Otherwise it
// changes nothing and returns {"taken", the holder's entry, ms until the
// holder's deadline, ms until the holder counts as silent, the holder's
// last heartbeat (Redis ms)}.
//
// A holder is live while it has heartbeated within 1.5 of its heartbeat
// intervals (by the Redis clock): a live node beats every interval, so it is
// never taken over, whatever its address. One silent for longer (a
// crashed process whose registration has not expired yet, or a dead one)
// is taken over.
var putScript = redis.NewScript(luaNow + `
local maxlen = tonumber(ARGV[5])
local ttl = tonumber(ARGV[4])
` + luaAppend + luaTiming + `
local id = ARGV[1]
local raw = redis.call('HGET', KEYS[2], id)
if raw and incOf(raw) ~= ARGV[3] then
  local dl = tonumber(redis.call('ZSCORE', KEYS[1], id) or '0')
  if dl > now then
    local httl, hb = timingOf(raw)
    local last = dl - httl
    local silent = last + math.floor(hb * 3 / 2)
    if now < silent then
      return {'taken', raw, dl - now, silent - now, last}
    end
  end
end
` + luaMaxTTL + `
redis.call('HSET', KEYS[2], id, ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, id)
redis.call('HSET', KEYS[4], 'beat', now)
local gen = append(ARGV[2], ARGV[7])
local age = tonumber(ARGV[6])
if age > 0 then
  redis.call('XTRIM', KEYS[3], 'MINID', '~', tostring(now - age) .. '-0')
end
return {'ok', gen}
`)

// delScript removes a node of this instance (ARGV: id, incarnation, leave
// entry, max stream length, uuid) and appends the leave to the stream. It
// leaves alone an entry another instance has taken over. It returns 1 if it
// removed the node.
var delScript = redis.NewScript(luaNow + `
local maxlen = tonumber(ARGV[4])
` + luaAppend + `
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw or incOf(raw) ~= ARGV[2] then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[4], 'beat', now)
append(ARGV[3], ARGV[5])
return 1
`)

// beatScript is the heartbeat (ARGV: incarnation, ttl ms, pause ms, max
// stream length, max expiries, then the ids of this instance's nodes).
//
// It moves the deadline of each node of this instance that Redis holds for
// it; an id Redis does not hold is "missing" (Redis lost it, or it expired
// while this instance was silent) and one held by another incarnation is
// "lost" (taken over). It then expires every node whose deadline has
// passed, at most max expiries per run: the entry is removed and a leave
// entry is appended to the stream, so every instance learns of the death
// from the stream. The leave carries the node's id, TTL and revision (see
// luaLeave), like the leave of a deregistration.
//
// Expiry is suspended after a beat that finds that nobody has run a
// heartbeat for longer than pause (1.5 of the caller's heartbeat
// intervals): every instance lost Redis (an outage, or a failover promoted
// a replica whose deadlines are stale), and the live nodes first get the
// time to beat again, until the largest TTL of the prefix (maxttl) has
// passed.
//
// It returns {now, missing, lost, expired, earliest deadline or -1, gen,
// grace, id of the node with the earliest deadline or ""}, a reply whose
// size does not depend on the number of nodes.
var beatScript = redis.NewScript(luaNow + `
local maxlen = tonumber(ARGV[4])
local ttl = tonumber(ARGV[2])
` + luaAppend + luaLeave + `
local inc = ARGV[1]
local missing, lost, expired = {}, {}, {}
for i = 6, #ARGV do
  local id = ARGV[i]
  local raw = redis.call('HGET', KEYS[2], id)
  if not raw then
    missing[#missing + 1] = id
  elseif incOf(raw) ~= inc then
    lost[#lost + 1] = id
  else
    redis.call('ZADD', KEYS[1], now + ttl, id)
  end
end
local m = redis.call('HMGET', KEYS[4], 'beat', 'grace', 'maxttl')
local last, grace, maxttl = tonumber(m[1] or '0'), tonumber(m[2] or '0'), tonumber(m[3] or '0')
if ttl > maxttl then
  maxttl = ttl
  redis.call('HSET', KEYS[4], 'beat', now, 'maxttl', ttl)
else
  redis.call('HSET', KEYS[4], 'beat', now)
end
if last > 0 and now - last > tonumber(ARGV[3]) and grace < now + maxttl then
  grace = now + maxttl
  redis.call('HSET', KEYS[4], 'grace', grace)
end
if now >= grace then
  local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, tonumber(ARGV[5]))
  for _, id in ipairs(dead) do
    local raw = redis.call('HGET', KEYS[2], id)
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    append(leaveOf(id, raw), 'expired:' .. id .. ':' .. now)
    expired[#expired + 1] = id
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local earliest, eid = -1, ''
if first[2] then earliest, eid = tonumber(first[2]), first[1] end
local gen = tonumber(redis.call('HGET', KEYS[4], 'gen') or '0')
return {now, missing, lost, expired, earliest, gen, grace, eid}
`)

// incScript hands a starting instance its incarnation: {seconds,
// microseconds} of the Redis clock (TIME) and the prefix's count of
// incarnations handed out (meta incs), which keeps two instances that ask
// within one microsecond apart. The instance makes them one number, Unix
// nanoseconds on the Redis clock (see parseInc): the parts are returned
// apart because Lua's numbers, doubles, cannot hold it exactly.
var incScript = redis.NewScript(`
local t = redis.call('TIME')
local n = redis.call('HINCRBY', KEYS[4], 'incs', 1)
return {tonumber(t[1]), tonumber(t[2]), n}
`)

// snapshotScript reads everything a starting or resyncing instance needs,
// atomically: {now, gen, id of the stream's last entry or "0-0", the nodes
// hash (flat), alive with scores (flat), grace}.
var snapshotScript = redis.NewScript(luaNow + `
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local pos = '0-0'
if last[1] then pos = last[1][1] end
local gen = tonumber(redis.call('HGET', KEYS[4], 'gen') or '0')
local grace = tonumber(redis.call('HGET', KEYS[4], 'grace') or '0')
return {now, gen, pos, redis.call('HGETALL', KEYS[2]), redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES'), grace}
`)
