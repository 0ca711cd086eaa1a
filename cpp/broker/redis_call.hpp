// A command as RedisBroker sends it, owned by a shared_ptr so that it outlives the
// connection it was sent on: after a lost connection it can be sent again on the next one
// (a replay), and in a Cluster to another node (a MOVED or ASK redirection).
//
// Which commands may be replayed: a command cut off with its connection may or may not
// have run, so only those whose second run changes nothing are (`replayable`):
// - the claim script takes a lease its token already holds by renewing it;
// - release and load are idempotent;
// - the append script finds its own entry already at the end of the log and returns 1
//   without writing (see scripts::kAppend: only the lease holder writes, in version order);
// - save_snapshot writes the same snapshot again, and replays keep their order, so an
//   older snapshot never lands after a newer one.
// A PUBLISH (room inputs forwarded to the authority) is not: its message could arrive twice.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>
#include "broker/redis_scripts.hpp"

struct redisReply;

namespace kasagi::broker {

struct RedisCall {
  using Clock = std::chrono::steady_clock;
  using OnReply = std::function<void(const redisReply*)>;

  std::string room;  // routes it in a Cluster (every key of a room is in one slot)
  std::optional<scripts::Script> script;  // sent as EVALSHA <its SHA1> followed by `args`
  std::vector<std::string> args;          // numkeys, keys, arguments; or the whole command
  bool wait = false;        // followed by WAIT wait_replicas (replicated durability)
  bool replayable = true;   // see above
  OnReply done;             // once: the reply, or nullptr (unavailable)
  // Its place in the order calls were made (over all brokers of the process): calls that
  // wait for a connection are sent in this order, whichever way they came back to wait.
  const std::uint64_t seq = next_seq();

  // What happened to it so far.
  // Bumped on every send (and on handing the call on): replies to an older send are
  // ignored. Atomic because a broker that handed the call to another one may still read
  // it when a late reply (its WAIT's) comes: it then stops there, touching nothing else.
  std::atomic<std::uint64_t> attempt = 0;
  int redirects = 0;          // MOVED and ASK followed
  int retries = 0;            // TRYAGAIN answers retried
  bool asking = false;        // the next send is preceded by ASKING (an ASK redirection)
  bool after_loss = false;    // it waited for a new connection after a lost one
  bool cut_off = false;       // it was in flight on a connection that died: a replay
  Clock::time_point deadline{};  // while waiting for a connection: unavailable after this
  long long written = 0;      // a write's integer reply, kept until its WAIT answers

  // Calls `done` (once) with `reply`. A write sent after a lost connection (a replay, or one
  // issued during the outage) that found no lease at all (-1: the new master, or a restarted
  // server, does not have it) completes unavailable rather than fenced: nobody else holds
  // the lease, so its room takes it again and repairs its log, as after any outage,
  // instead of stepping down.
  void complete(const redisReply* reply);

 private:
  static std::uint64_t next_seq();
};

}  // namespace kasagi::broker
