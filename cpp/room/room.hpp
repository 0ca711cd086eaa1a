// A room: one document, its players, and the delta engine that turns their updates into
// versioned DELTA_UPDATEs. Sans-I/O: time comes in as arguments and output leaves through
// Member::send, so it is driven by net::RoomActor on one strand (no locks inside) and could
// be driven by a test or a fuzzer just as well.
//
// Versions and ticks. `version` counts state changes; every change bumps it. Changes are
// coalesced until the next tick boundary (or sent at once when tick_rate is 0) and leave as
// one delta [baseVersion, version]. A join, resync or resume in the middle of a tick first
// flushes the pending changes, so every member's first delta after its FULL_STATE starts
// exactly at that FULL_STATE's version.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include "telemetry/metrics.hpp"
#include "protocol/codec.hpp"
#include "room/conflict_index.hpp"
#include "room/member.hpp"
#include "room/path_rules.hpp"
#include "room/settings.hpp"
#include "state/delta_builder.hpp"

namespace kasagi::room {

using MemberPtr = std::shared_ptr<Member>;

class Room {
 public:
  Room(std::string id, std::uint64_t uid, const RoomSettings& settings, PathRules rules,
       metrics::Metrics& metrics, Clock::time_point now);
  ~Room();
  Room(const Room&) = delete;
  Room& operator=(const Room&) = delete;

  const std::string& id() const { return id_; }
  std::uint64_t uid() const { return uid_; }
  const std::string& epoch() const { return epoch_; }
  std::uint64_t version() const { return version_; }
  std::uint64_t tick() const { return tick_; }
  const state::Object& state() const { return state_; }
  // No players at all, attached or within their grace period.
  bool empty() const { return players_.empty(); }

  // The client messages, each answered through Member::send.
  void join(const MemberPtr& m, const protocol::Message& msg, Clock::time_point now);
  void leave(const MemberPtr& m, const protocol::Message& msg, Clock::time_point now);
  void update(const MemberPtr& m, const protocol::Message& msg, Clock::time_point now);
  void resync(const MemberPtr& m, const protocol::Message& msg, Clock::time_point now);

  // The connection's send queue overflowed and was emptied: send it a fresh FULL_STATE.
  void resync_slow_member(const MemberPtr& m, Clock::time_point now);

  // The connection is gone: its player stays for the grace period, waiting to be resumed.
  void detach(const MemberPtr& m, Clock::time_point now);

  // Flushes a due tick and expires grace periods. Call at next_deadline() or later.
  void on_timer(Clock::time_point now);

  // When on_timer must next run, or nullopt when nothing is pending.
  std::optional<Clock::time_point> next_deadline() const;

 private:
  struct Player {
    std::string id;
    std::string token;
    MemberPtr member;                  // null while disconnected
    Clock::time_point grace_deadline;  // meaningful while disconnected
  };
  struct HistoryEntry {
    std::uint64_t base_version;
    std::shared_ptr<const protocol::Message> message;
    Frame frames[2];  // per Format, encoded on demand
  };

  Player* attached_player(const Member* m);
  bool location_exists(const state::Path& path) const;  // a map is at `path`
  void attach(Player& p, const MemberPtr& m);
  void release(Player& p);  // detaches p's member, if any
  void remove_player(const std::string& player_id, std::string_view reason, Clock::time_point now);
  void changed(Clock::time_point now);
  void flush(Clock::time_point now);
  void send_full_state(Player& p, Clock::time_point now);
  bool replay_history(Player& p, std::uint64_t from_version);
  void send(const MemberPtr& m, const protocol::Message& msg);
  void send(const MemberPtr& m, HistoryEntry& entry);
  void broadcast(const protocol::Message& msg, const Member* except, Frame* frames = nullptr);
  void send_error(const MemberPtr& m, protocol::ErrorCode code, std::string_view text,
                  const protocol::Message& cause);
  void send_ack(const MemberPtr& m, const protocol::Message& cause);
  std::uint64_t tick_at(Clock::time_point now) const;
  Clock::time_point next_tick_boundary(Clock::time_point now) const;

  std::string id_;
  std::uint64_t uid_;
  RoomSettings settings_;
  PathRules rules_;
  metrics::Metrics& metrics_;
  Clock::time_point created_;
  std::string epoch_;

  state::Object state_;
  state::DeltaBuilder builder_;
  ConflictIndex conflicts_;
  std::uint64_t version_ = 0;
  std::uint64_t flushed_version_ = 0;  // version of the last delta sent
  std::uint64_t tick_ = 0;
  std::optional<Clock::time_point> flush_due_;
  std::deque<HistoryEntry> history_;

  std::unordered_map<std::string, Player> players_;        // by playerId
  std::unordered_map<std::string, std::string> by_token_;  // sessionToken -> playerId
  std::unordered_map<const Member*, std::string> attached_;  // connection -> playerId
};

}  // namespace kasagi::room
