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

// KEYS: owner, ops. ARGV: token, max_len, channel, message, then the entry's field/value
// pairs. If `token` holds the lease: XADD (trimmed to exactly max_len entries) and PUBLISH,
// returns 1. Returns 0 (fenced) else.
inline constexpr std::string_view kAppend = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], '*', unpack(ARGV, 5))
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
)lua";

// The same with SPUBLISH (Cluster: the room channel is a shard channel of the room's slot).
inline constexpr std::string_view kAppendSharded = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], '*', unpack(ARGV, 5))
redis.call('SPUBLISH', ARGV[3], ARGV[4])
return 1
)lua";

// KEYS: owner, snapshot. ARGV: token, then the snapshot's field/value pairs.
// If `token` holds the lease: replaces the snapshot, returns 1. Returns 0 (fenced) else.
inline constexpr std::string_view kSaveSnapshot = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
return 1
)lua";

// KEYS: snapshot, ops. Returns {HGETALL snapshot, XRANGE ops - +}, read at one instant.
inline constexpr std::string_view kLoad = R"lua(
return {redis.call('HGETALL', KEYS[1]), redis.call('XRANGE', KEYS[2], '-', '+')}
)lua";

enum Script {
  kClaimScript,
  kReleaseScript,
  kAppendScript,
  kSaveSnapshotScript,
  kLoadScript,
  kAppendShardedScript
};
inline constexpr std::array<std::string_view, 6> kAll = {kClaim,        kRelease, kAppend,
                                                         kSaveSnapshot, kLoad,    kAppendSharded};

}  // namespace kasagi::broker::scripts
