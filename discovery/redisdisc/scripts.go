package redisdisc

import "github.com/redis/go-redis/v9"

// The Lua scripts run with EVALSHA (go-redis falls back to EVAL after a
// NOSCRIPT, for example after a Redis restart). They read the time from
// Redis (TIME), so scores in <prefix>:alive share one clock whatever the
// clocks of the hosts.
//
// Keys: 1 = <prefix>:alive, 2 = <prefix>:nodes, 3 = <prefix>:events.

const luaNow = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// beatScript refreshes this instance's nodes (ARGV: ids) and returns
// {now_ms, ids that were missing from alive or nodes, alive WITHSCORES}. A
// missing id means Redis lost it (restart, flush) or another instance
// removed it: the caller announces it again.
var beatScript = redis.NewScript(luaNow + `
local missing = {}
for i = 1, #ARGV do
  local added = redis.call('ZADD', KEYS[1], now, ARGV[i])
  if added == 1 or redis.call('HEXISTS', KEYS[2], ARGV[i]) == 0 then
    missing[#missing + 1] = ARGV[i]
  end
end
return {now, missing, redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')}
`)

// putScript stores an announcement (ARGV: id, entry, max age ms) in the
// snapshot, marks the node alive, trims the stream by age, and returns now.
var putScript = redis.NewScript(luaNow + `
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
local age = tonumber(ARGV[3])
if age > 0 then
  redis.call('XTRIM', KEYS[3], 'MINID', '~', tostring(now - age) .. '-0')
end
return now
`)

// delScript removes a node from the snapshot (ARGV: id).
var delScript = redis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`)

// expireScript removes a node from the snapshot if its last heartbeat is
// older than its TTL (ARGV: id, fallback TTL ms). The TTL is the one in the
// node's stored entry when that parses, so an instance never expires a node
// earlier than the node asked for. It returns 1 if it removed the node.
var expireScript = redis.NewScript(luaNow + `
local ttl = tonumber(ARGV[2])
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if raw then
  local ok, e = pcall(cjson.decode, raw)
  if ok and type(e) == 'table' and type(e.ttl) == 'number' and e.ttl > 0 then
    ttl = e.ttl
  end
end
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) > now - ttl then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`)
