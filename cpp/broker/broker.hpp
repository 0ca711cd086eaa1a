// What instances share about a room, behind one interface: the authority lease, the delta
// log (`room:{id}:ops`), the snapshot (`room:{id}:snapshot`) and the room channel
// (`room:{id}:channel`). Two implementations: MemoryBroker (the embedded default: one
// process, nothing to install) and RedisBroker (hiredis on Asio; many instances).
//
// Contract, for every implementation (tests/broker/test_conformance.py checks it):
// - Every completion handler and subscriber call runs on the broker's own thread, never
//   inline in the call that started it, and must not call the broker synchronously back
//   (post to your own executor first).
// - Commands take effect in call order: a publish() issued after an append() reaches
//   subscribers after that append's message.
// - The lease is fencing: append() and save_snapshot() change nothing unless `token` holds
//   the room's lease at that moment (Status::fenced otherwise).
// - A subscriber gets every message published on its room's channel, in order, while the
//   broker is connected; after a disconnection it gets on_gap() once the subscription is
//   back (messages in between may be lost: resynchronize).
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kasagi::broker {

enum class Status {
  ok,
  fenced,       // another token holds the lease (or nobody does, for append/save_snapshot)
  unavailable,  // the backing store could not be reached or did not confirm in time
};

// room:{id}:snapshot — the state at one version. `sessions` (an extension field) keeps the
// session tokens of the room's players so that a new authority can resume them.
struct Snapshot {
  std::string data;       // MessagePack map: the state document
  std::uint64_t version = 0;
  std::uint64_t tick = 0;
  std::string epoch;
  std::uint64_t ts = 0;   // ms since the Unix epoch
  std::string sessions;   // MessagePack map: sessionToken -> playerId
};

// One entry of room:{id}:ops: the delta that takes version `base` to `version`.
struct OpEntry {
  std::string data;       // MessagePack map: the merge patch
  std::uint64_t version = 0;
  std::uint64_t base = 0;
  std::uint64_t tick = 0;
  std::string epoch;
  std::string sessions;   // MessagePack map of the sessions this delta created ("" if none)
  // Not stored: a snapshot of version `base` is stored, so the entry may follow it rather
  // than a log entry (the first after a log repair). The Redis broker then lets its append
  // script read the snapshot key, which it otherwise leaves alone: a key named in a script
  // call must exist while its slot migrates (Cluster), and a young room has no snapshot.
  bool after_snapshot = false;
};

// What a new authority recovers a room from: the snapshot and the entries after it.
struct RoomLog {
  std::optional<Snapshot> snapshot;
  std::vector<OpEntry> ops;  // oldest first, every entry with version > snapshot's version
};

// Receives a room channel's messages. Held weakly: an expired subscriber is dropped.
class Subscriber {
 public:
  virtual ~Subscriber() = default;
  virtual void on_message(std::string message) = 0;
  // The subscription was re-established after a break: messages may have been lost.
  virtual void on_gap() = 0;
};

struct BrokerOptions {
  std::string key_prefix;                  // put before every key, e.g. "game1:"
  std::uint32_t ops_max_len = 1000;        // entries kept in room:{id}:ops (trimmed)
  std::uint32_t wait_replicas = 0;         // append() waits until this many replicas have it
  std::chrono::milliseconds wait_timeout{1000};  // ... for at most this long (else unavailable)
  // Redis only. A command unanswered this long (plus wait_timeout for WAIT) means a dead
  // connection; also bounds connecting. Far above a healthy round trip (well under 1 ms).
  std::chrono::milliseconds command_timeout{2000};
  // Redis only: pub/sub is probed this often, and declared dead when a probe message is
  // this late (a subscription can silently stop delivering after a failover).
  std::chrono::milliseconds probe_interval{1000};
  std::chrono::milliseconds probe_timeout{3000};
  // Redis only: a command cut off by a lost connection is sent again on the next one if
  // that comes within this time of the loss (and the command is safe to run twice), and
  // commands issued meanwhile wait for it too: long enough to ride out a quick Sentinel or
  // Cluster failover (down-after 1 s plus the election), short enough that a room does not
  // hold its ACKs for long before repairing its log. 0: they complete unavailable at once.
  std::chrono::milliseconds replay_timeout{5000};
};

class Broker {
 public:
  using Done = std::function<void(Status)>;
  using Claimed = std::function<void(Status, std::string owner)>;
  using Loaded = std::function<void(Status, RoomLog)>;

  virtual ~Broker() = default;

  // Takes the lease of `room` for `token` for `ttl` when nobody holds it, or renews it when
  // `token` already does. ok: `token` holds it now; fenced: `owner` holds it.
  virtual void claim(const std::string& room, const std::string& token,
                     std::chrono::milliseconds ttl, Claimed done) = 0;

  // Gives the lease up if `token` holds it (a room going away). Fire and forget.
  virtual void release(const std::string& room, const std::string& token) = 0;

  // Reads the snapshot and the log entries after it.
  virtual void load(const std::string& room, Loaded done) = 0;

  // If `token` holds the lease: appends `entry` to the log (trimmed to ops_max_len) and
  // publishes `message` on the room channel, both or neither. ok once stored (and, with
  // wait_replicas, once replicated).
  virtual void append(const std::string& room, const std::string& token, OpEntry entry,
                      std::string message, Done done) = 0;

  // If `token` holds the lease: replaces the snapshot.
  virtual void save_snapshot(const std::string& room, const std::string& token,
                             Snapshot snapshot, Done done) = 0;

  // Publishes `message` on the room channel. Fire and forget (lost while disconnected).
  virtual void publish(const std::string& room, std::string message) = 0;

  // Delivers the room channel's messages to `subscriber` until unsubscribe() (or until it
  // expires). A broker user subscribes to a room at most once.
  virtual void subscribe(const std::string& room, std::weak_ptr<Subscriber> subscriber) = 0;
  virtual void unsubscribe(const std::string& room, const Subscriber* subscriber) = 0;

  // Stops delivering and completes nothing more; pending handlers are dropped. Blocks
  // until the broker's thread is done with them.
  virtual void shutdown() = 0;
};

// Key names, with the room id as the Redis Cluster hash tag (PROTOCOL.md).
inline std::string room_key(const std::string& prefix, const std::string& room,
                            const char* suffix) {
  return prefix + "room:{" + room + "}:" + suffix;
}

}  // namespace kasagi::broker
