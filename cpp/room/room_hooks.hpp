// Room types with hooks: server-side code that a room calls at fixed points of its life
// (docs/hooks.md). The room calls them on its own thread, synchronously, in the order its
// messages arrive; a room without hooks holds a null RoomHooks and pays nothing.
//
// The one implementation is the Python bridge (cpp/bindings/bind_hooks.cpp), which takes
// the GIL inside each call. That is why rooms with hooks run on their own threads (see
// server::ServerConfig::hook_threads): an I/O thread, which serves connections and rooms
// without hooks, never calls a hook and never waits for the GIL.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>
#include "state/json_pointer.hpp"
#include "state/value.hpp"

namespace kasagi::room {

// What a hook may do with its room. Valid during the hook call only, on the room's thread.
class RoomControl {
 public:
  virtual ~RoomControl() = default;
  virtual const std::string& id() const = 0;
  virtual std::uint64_t version() const = 0;
  virtual std::uint64_t tick() const = 0;
  virtual const state::Object& state() const = 0;
  // The players whose connection is attached now (not those within their grace period).
  virtual std::vector<std::string> connected_players() const = 0;
  // Replaces the value at `path` (null deletes it), or merges `patch` into it. The change
  // goes out in the room's next delta like any update. Returns "" or why it is refused
  // (the path is empty or names `players` or a player's entry itself).
  virtual std::string set(const state::Path& path, const state::Value& value) = 0;
  virtual std::string patch(const state::Path& path, const state::Value& patch) = 0;
  // Sends ROOM_EVENT {name, data} now to every connected player, or to `to` only (not
  // empty). Returns false when `to` is not connected.
  virtual bool send_event(std::string_view name, const state::Value& data,
                          const std::string& to) = 0;
  // Removes a player (PLAYER_LEFT reason `kicked`; it gets that message too). Returns false
  // if there is no such player.
  virtual bool kick(const std::string& player_id, std::string_view message) = 0;
};

// A hook's answer to a join or an update.
struct HookVerdict {
  enum class Kind { accept, replace, reject, error };
  Kind kind = Kind::accept;
  std::string reason;  // reject: sent as ERROR FORBIDDEN's message
  state::Value value;  // replace: the attributes or patch to use instead
};

class RoomHooks {
 public:
  enum Hook : unsigned { create = 1, join = 2, update = 4, leave = 8, tick = 16, dispose = 32 };

  virtual ~RoomHooks() = default;
  // The Hook bits of the hooks this room type sets; the room calls no other.
  virtual unsigned hooks() const = 0;

  // The notifications (on_create, on_leave, on_tick, on_dispose) return false when the hook
  // failed (it was logged; the room carries on).
  virtual bool on_create(RoomControl& room) = 0;
  // Before a new player's entry is added (not on a resume). `claims`: the connection's
  // verified token claims ({} when anonymous).
  virtual HookVerdict on_join(RoomControl& room, const std::string& player_id,
                              const state::Object& attrs, const state::Object& claims) = 0;
  // After the path rules and the optimistic check accepted `patch` (a merge patch to apply
  // at `path`, the writer's own entry unless the update named another), before it applies.
  virtual HookVerdict on_update(RoomControl& room, const std::string& player_id,
                                const state::Path& path, const state::Value& patch) = 0;
  // After the player's entry is removed. reason: left, timeout, kicked.
  virtual bool on_leave(RoomControl& room, const std::string& player_id,
                        std::string_view reason) = 0;
  // At each tick boundary while the room has players; `dt` seconds since the previous call.
  virtual bool on_tick(RoomControl& room, double dt) = 0;
  // The room is going away here (disposed when empty, handed to another authority, or the
  // server stops).
  virtual bool on_dispose(RoomControl& room) = 0;

  // A hook's answer the room cannot use (a corrected patch that cannot apply, say); the
  // room counts the failure and answers ERROR INTERNAL, this says why. Logged once per
  // `hook` and `problem`, never per message; `detail` may differ each time. By default
  // nothing (hooks with no log of their own).
  virtual void report(RoomControl& /*room*/, std::string_view /*hook*/,
                      std::string_view /*problem*/, std::string_view /*detail*/) {}
};

}  // namespace kasagi::room

#include <functional>
#include <memory>
#include "room/path_rules.hpp"

namespace kasagi::room {

// A room type: the rooms whose id matches one of `patterns` (`*` matches any run of
// characters; the first type registered that matches wins) follow its path rules and, if
// `make_hooks` is set, run its hooks. `make_hooks(room_id)` is called on the room's thread
// when the room starts at its authority (never at a relay).
struct RoomType {
  std::string name;
  std::vector<std::string> patterns;
  PathRules rules;
  std::function<std::shared_ptr<RoomHooks>(const std::string& room_id)> make_hooks;
  double tick_rate = 0;  // on_tick calls per second; 0: the server's tick_rate (20 if that is 0)
};

}  // namespace kasagi::room
