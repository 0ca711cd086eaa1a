// The Lua scripts behind RedisBroker: each one reads and writes a room's keys in one atomic
// step, so the lease check (fencing) and the write it guards cannot be separated. They are
// SCRIPT LOADed on every new command connection and run with EVALSHA. Every key of a call
// has the room's hash tag, so a script never spans Redis Cluster slots.
#pragma once
#include <array>
#include <string_view>

namespace kasagi::broker::scripts {

// KEYS: owner. ARGV: token, ttl_ms.
// Returns {1, token} when `token` holds the lease now (taken or renewed), {0, owner} else.
inline constexpr std::string_view kClaim = R"lua(
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, owner}
end
if not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, ARGV[1]}
end
return {0, owner}
)lua";

// KEYS: owner. ARGV: token. Deletes the lease if `token` holds it; returns 1 if it did.
inline constexpr std::string_view kRelease = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
)lua";

// KEYS: owner, ops, and snapshot when the entry may follow it (OpEntry::after_snapshot).
// ARGV: token, max_len, channel, message, publish command (PUBLISH, or SPUBLISH in a
// Cluster, where the room channel is a shard channel of the room's slot), then the
// entry's field/value pairs (among them `version` and `base`). If `token` holds the lease
// and the entry continues the log: XADD (trimmed to exactly max_len entries) and publish,
// returns 1. Returns 0 (fenced) when another token holds the lease, -1 when nobody does.
//
// The log must stay a chain that a new authority can replay: the snapshot, then entries
// each based on the one before. So the entry is written only if its base is the newest
// version stored (that of the newest entry, or of the snapshot when it is newer and named,
// or 0 for a room with neither). Otherwise:
// - This version is in the log: the broker sent this append again because its connection
//   died before the reply (a replay), and the first one did run. Only the lease holder
//   writes, in version order, so the entry is this append's own: nothing is written, 1 is
//   returned.
// - A later version is stored: the append arrives after one that the room made later (a
//   Cluster redirection reordered them): -2.
// - Its base is missing: an earlier append did not run (refused, or lost with a master
//   that failed over before replicating it; or Redis restarted empty): -3. Writing it
//   would leave a hole that a later append's success would hide, and the room would ACK
//   updates that are not stored.
// Both complete unavailable, and the room repairs its log with a snapshot, as after any
// failed append.
inline constexpr std::string_view kAppend = R"lua(
local owner = redis.call('GET', KEYS[1])
if owner ~= ARGV[1] then return owner and 0 or -1 end
local version, base
for i = 6, #ARGV - 1, 2 do
  if ARGV[i] == 'version' then version = tonumber(ARGV[i + 1]) end
  if ARGV[i] == 'base' then base = tonumber(ARGV[i + 1]) end
end
local function version_of(entry)
  local f = entry[2]
  for i = 1, #f - 1, 2 do
    if f[i] == 'version' then return tonumber(f[i + 1]) end
  end
  return 0
end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
local newest = last and version_of(last) or 0
if newest >= version then  -- a replay finds itself; anything else is out of order
  if newest == version then return 1 end
  local before = '(' .. last[1]
  while true do
    local batch = redis.call('XREVRANGE', KEYS[2], before, '-', 'COUNT', 16)
    if #batch == 0 then return -2 end
    for _, e in ipairs(batch) do
      local v = version_of(e)
      if v == version then return 1 end
      if v < version then return -2 end
    end
    before = '(' .. batch[#batch][1]
  end
end
if KEYS[3] then
  newest = math.max(newest, tonumber(redis.call('HGET', KEYS[3], 'version')) or 0)
end
if newest > base then return -2 end
if newest < base then return -3 end
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], '*', unpack(ARGV, 6))
redis.call(ARGV[5], ARGV[3], ARGV[4])
return 1
)lua";

// KEYS: owner, snapshot. ARGV: token, then the snapshot's field/value pairs (one of them
// `version`). If `token` holds the lease: replaces the snapshot and returns 1, or keeps a
// stored one of a later version (a replayed or redirected save arriving after a newer
// one) and returns 1 too. Returns 0 (fenced) when another token holds the lease, -1 when
// nobody does. Every snapshot has the same fields, so HSET replaces them all (a DEL first
// would leave the key missing for a moment, which a migrating slot refuses in a script).
inline constexpr std::string_view kSaveSnapshot = R"lua(
local owner = redis.call('GET', KEYS[1])
if owner ~= ARGV[1] then return owner and 0 or -1 end
local stored = tonumber(redis.call('HGET', KEYS[2], 'version'))
for i = 2, #ARGV - 1, 2 do
  if ARGV[i] == 'version' and stored and stored > tonumber(ARGV[i + 1]) then return 1 end
end
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
return 1
)lua";

// KEYS: snapshot, ops. Returns {HGETALL snapshot, XRANGE ops - +}, read at one instant.
inline constexpr std::string_view kLoad = R"lua(
return {redis.call('HGETALL', KEYS[1]), redis.call('XRANGE', KEYS[2], '-', '+')}
)lua";

enum Script { kClaimScript, kReleaseScript, kAppendScript, kSaveSnapshotScript, kLoadScript };
inline constexpr std::array<std::string_view, 5> kAll = {kClaim, kRelease, kAppend, kSaveSnapshot,
                                                         kLoad};

}  // namespace kasagi::broker::scripts
