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
//
// Hooks. A room of a type with hooks (room_hooks.hpp) calls them at the points named there,
// synchronously; it is the RoomControl they act through. Rules first, hooks after: a patch
// the path rules refuse never reaches on_update.
//
// Durability. With settings.ack_when_durable, an update's ACK waits until durable() reports
// its version stored (the RoomLink's broker confirmed the delta that carries it).
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>
#include "telemetry/metrics.hpp"
#include "protocol/codec.hpp"
#include "room/conflict_index.hpp"
#include "room/inbox.hpp"
#include "room/member.hpp"
#include "room/path_rules.hpp"
#include "room/room_hooks.hpp"
#include "room/room_link.hpp"
#include "room/settings.hpp"
#include "state/delta_builder.hpp"
#include "state/leaf_paths.hpp"
#include "telemetry/trace_file.hpp"

namespace kasagi::room {

// Returns true if a JOIN_ROOM's payload has player attributes, i.e. a key other than the
// reserved ones that steer the join (sessionToken, lastVersion, roomType, playerId): what
// the join would write into the player's entry.
bool join_sets_attributes(const protocol::Message& join);

class Room final : public Inbox, public RoomControl {
 public:
  Room(std::string id, std::uint64_t uid, const RoomSettings& settings, PathRules rules,
       metrics::Metrics& metrics, Clock::time_point now);
  ~Room() override;
  Room(const Room&) = delete;
  Room& operator=(const Room&) = delete;

  const std::string& id() const override { return id_; }
  std::uint64_t uid() const { return uid_; }
  const std::string& epoch() const { return epoch_; }
  std::uint64_t version() const override { return version_; }
  std::uint64_t tick() const override { return tick_; }
  const state::Object& state() const override { return state_; }
  // No players at all, attached or within their grace period.
  bool empty() const { return players_.empty(); }

  // The client messages, each answered through Member::send.
  void join(const MemberPtr& m, const protocol::Message& msg, Clock::time_point now) override;
  void leave(const MemberPtr& m, const protocol::Message& msg, Clock::time_point now) override;
  void update(const MemberPtr& m, protocol::Message&& msg, Clock::time_point now) override;
  void resync(const MemberPtr& m, const protocol::Message& msg, Clock::time_point now) override;
  void resync_slow_member(const MemberPtr& m, Clock::time_point now) override;
  void detach(const MemberPtr& m, Clock::time_point now) override;

  // Continues a room recovered from its snapshot and log: `state` at `version` and `tick`,
  // with the session tokens of its players. Every player starts disconnected, within its
  // grace period. Call before anything else happens in the room.
  void restore(state::Object state, std::uint64_t version, std::uint64_t tick,
               const Sessions& sessions, Clock::time_point now);

  // Deltas go to `link` too (nullptr: to members only).
  void set_link(RoomLink* link) { link_ = link; }

  // Records this room's deltas in `trace` from now on, starting with its state (a replay's
  // starting point). Call after restore().
  void set_trace(std::shared_ptr<trace::TraceFile> trace);

  // Sends every pending change now (before a snapshot).
  void flush_now(Clock::time_point now) { flush(now); }

  // Everything up to `version` is stored: send the ACKs that waited for it.
  void durable(std::uint64_t version);

  // Every player's session: sessionToken -> playerId.
  Sessions sessions() const;

  // Each connected member with its player's session token (handing members to a new
  // authority when this one is deposed).
  std::vector<std::pair<MemberPtr, std::string>> members() const;

  // Gives the room its type's hooks (`type_name` is what JOIN_ROOM's roomType must say, if
  // it says anything) and calls on_create. on_tick runs `tick_rate` times a second (0: at
  // the room's ticks, or 20 Hz when the room sends at once). Call once, before any join.
  void set_hooks(std::shared_ptr<RoomHooks> hooks, std::string type_name, double tick_rate,
                 Clock::time_point now);
  void set_type_name(std::string type_name) { type_name_ = std::move(type_name); }
  // Calls on_dispose and drops the hooks: the room is going away here.
  void dispose_hooks(Clock::time_point now);

  // RoomControl (for hooks)
  std::vector<std::string> connected_players() const override;
  std::string set(const state::Path& path, const state::Value& value) override;
  std::string patch(const state::Path& path, const state::Value& patch) override;
  bool send_event(std::string_view name, const state::Value& data, const std::string& to) override;
  bool kick(const std::string& player_id, std::string_view message) override;

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
    std::size_t bytes = 0;  // what it may hold: the message and both frames
  };

  Player* attached_player(const Member* m);
  bool location_exists(const state::Path& path) const;  // a map is at `path`
  void attach(Player& p, const MemberPtr& m);
  void release(Player& p);  // detaches p's member, if any
  void remove_player(const std::string& player_id, std::string_view reason, Clock::time_point now);
  void changed(Clock::time_point now);
  void flush(Clock::time_point now);
  void send_full_state(Player& p, Clock::time_point now);
  void keep(HistoryEntry entry);  // in history_, within both of its bounds
  bool replay_history(Player& p, std::uint64_t from_version);
  void send(const MemberPtr& m, const protocol::Message& msg);
  void send(const MemberPtr& m, HistoryEntry& entry);
  void broadcast(const protocol::Message& msg, const Member* except, Frame* frames = nullptr);
  // frames[format] (one per protocol::Format), encoded from `msg` the first time it is asked.
  static const Frame& encoded(Frame* frames, protocol::Format format,
                              const protocol::Message& msg);
  void send_error(const MemberPtr& m, protocol::ErrorCode code, std::string_view text,
                  const protocol::Message& cause);
  void send_ack(const MemberPtr& m, const protocol::Message& cause);
  void send_ack(const MemberPtr& m, std::uint64_t version,
                std::optional<std::uint64_t> request_id);
  // ERROR `code` for a JOIN_ROOM, and the member is told it is not in the room.
  void refuse_join(const MemberPtr& m, protocol::ErrorCode code, std::string_view text,
                   const protocol::Message& cause);
  void send_durable_ack(const MemberPtr& m, const protocol::Message& cause);
  std::uint64_t tick_at(Clock::time_point now) const;
  bool wants(RoomHooks::Hook h) const { return hooks_ && (hook_mask_ & h); }
  bool ticking() const { return wants(RoomHooks::tick) && !players_.empty(); }
  Clock::time_point next_hook_tick(Clock::time_point now) const;
  void hook_failed(const MemberPtr& m, std::string_view hook, const protocol::Message& cause);
  // A hook answered something the room cannot use: counted as a hook failure and reported
  // to the hooks' log.
  void hook_unusable(std::string_view hook, std::string_view problem, std::string_view detail);
  std::string write(const state::Path& path, const state::Value& value, bool merge);
  // Why a patch may not write `leaf` whoever writes it (too deep, a player entry itself).
  std::optional<std::pair<protocol::ErrorCode, std::string>> structure_error(
      std::span<const std::string> leaf) const;
  // What `patch`, applied at a path of `from` segments, puts at `leaf`.
  static const state::Value& value_at(const state::Value& patch,
                                      std::span<const std::string> leaf, std::size_t from);
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
  // update()'s scratch: its target path and the leaves of its patch, kept from one update
  // to the next so that checking and recording them allocates nothing.
  state::Path target_;
  state::LeafPaths leaves_;
  std::uint64_t version_ = 0;
  std::uint64_t flushed_version_ = 0;  // version of the last delta sent
  std::uint64_t tick_ = 0;
  std::optional<Clock::time_point> flush_due_;
  std::deque<HistoryEntry> history_;
  std::size_t history_bytes_ = 0;  // sum of history_'s HistoryEntry::bytes
  RoomLink* link_ = nullptr;
  std::shared_ptr<trace::TraceFile> trace_;  // null: not recorded
  Sessions created_sessions_;  // since the last delta
  struct PendingAck {
    MemberPtr member;
    std::uint64_t version;
    std::uint64_t request_id;
  };
  std::deque<PendingAck> pending_acks_;  // oldest (lowest version) first
  std::uint64_t durable_version_ = 0;

  std::shared_ptr<RoomHooks> hooks_;  // null: no hooks
  unsigned hook_mask_ = 0;
  std::string type_name_;             // "" when the room has no type
  Clock::time_point hook_now_{};      // `now` of the call a hook runs in
  std::optional<Clock::time_point> next_hook_tick_;
  double hook_tick_rate_ = 0;  // on_tick's own rate; 0: at the room's ticks
  Clock::time_point last_hook_tick_{};

  std::unordered_map<std::string, Player> players_;        // by playerId
  std::unordered_map<std::string, std::string> by_token_;  // sessionToken -> playerId
  // Connection -> its player in players_ (whose elements keep their address; a player
  // is released, and so leaves this map, before it is erased).
  std::unordered_map<const Member*, Player*> attached_;
};

}  // namespace kasagi::room
