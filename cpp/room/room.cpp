#include "room/room.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>

#include "room/random_id.hpp"
#include "state/merge_patch.hpp"

namespace kasagi::room {

using protocol::ErrorCode;
using protocol::Message;
using protocol::Type;

namespace {

std::uint64_t now_ms() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

// JOIN_ROOM payload keys that steer the join instead of becoming player attributes.
constexpr std::string_view kSessionToken = "sessionToken";
constexpr std::string_view kLastVersion = "lastVersion";
constexpr std::string_view kRoomType = "roomType";
constexpr std::string_view kPlayerId = "playerId";  // chosen by the server, never by the client
// The JOIN_ROOM payload keys that steer the join; every other key is a player attribute.
constexpr std::array<std::string_view, 4> kJoinKeys{kSessionToken, kLastVersion, kRoomType,
                                                    kPlayerId};

// Times one hook call into kasagi_hook_duration_seconds; failed() counts it as a failure.
struct HookClock {
  metrics::Metrics& metrics;
  Clock::time_point start = Clock::now();
  void failed() { metrics.hook_failures.fetch_add(1, std::memory_order_relaxed); }
  ~HookClock() {
    metrics.hook_duration.observe(std::chrono::duration<double>(Clock::now() - start).count());
  }
};

// "'/a/b'". Built by appending: GCC 12 at -O3 warns falsely (-Wrestrict) on "'" + string.
std::string quoted(std::span<const std::string> path) {
  std::string out = "'";
  out += state::format_pointer(path);
  out += '\'';
  return out;
}

}  // namespace

bool join_sets_attributes(const Message& join) {
  if (!join.payload) return false;
  return std::any_of(join.payload->begin(), join.payload->end(), [](const auto& kv) {
    return std::find(kJoinKeys.begin(), kJoinKeys.end(), kv.key()) == kJoinKeys.end();
  });
}

Room::Room(std::string id, std::uint64_t uid, const RoomSettings& settings, PathRules rules,
           metrics::Metrics& metrics, Clock::time_point now)
    : id_(std::move(id)),
      uid_(uid),
      settings_(settings),
      rules_(std::move(rules)),
      metrics_(metrics),
      created_(now),
      epoch_(random_hex(8)),
      conflicts_(settings.conflict_window) {
  state_["players"] = state::Object();
}

Room::~Room() {
  for (auto& [pid, p] : players_) {
    if (p.member && !p.member->remote()) metrics_.members.fetch_sub(1, std::memory_order_relaxed);
  }
}

// ---------------------------------------------------------------------------------------
// Output

void Room::send(const MemberPtr& m, const Message& msg) {
  auto frame = std::make_shared<const std::string>(protocol::encode(m->format(), msg));
  metrics_.count_out(msg.type, frame->size());
  m->send({std::move(frame), msg.type, uid_});
}

void Room::send(const MemberPtr& m, HistoryEntry& entry) {
  const auto& frame = encoded(entry.frames, m->format(), *entry.message);
  metrics_.count_out(Type::delta_update, frame->size());
  m->send({frame, Type::delta_update, uid_});
}

// Members on other instances get it from the RoomLink, once for all of them (a delta from
// flush(), anything else from here).
void Room::broadcast(const Message& msg, const Member* except, Frame* frames) {
  Frame local[2];
  if (!frames) frames = local;
  std::size_t sent = 0, bytes = 0;  // counted once: the counters are shared by all threads
  bool remote = false;
  for (auto& [pid, p] : players_) {
    if (!p.member || p.member.get() == except) continue;
    if (p.member->remote()) {
      remote = true;
      continue;
    }
    const auto& frame = encoded(frames, p.member->format(), msg);
    ++sent;
    bytes += frame->size();
    p.member->send({frame, msg.type, uid_});
  }
  if (sent) metrics_.count_out(msg.type, bytes, sent);
  if (remote && link_ && msg.type != Type::delta_update) {
    link_->on_broadcast(encoded(frames, protocol::Format::msgpack, msg), except);
  }
}

const Frame& Room::encoded(Frame* frames, protocol::Format format, const Message& msg) {
  auto& frame = frames[static_cast<int>(format)];
  if (!frame) frame = std::make_shared<const std::string>(protocol::encode(format, msg));
  return frame;
}

void Room::send_error(const MemberPtr& m, ErrorCode code, std::string_view text,
                      const Message& cause) {
  metrics_.count_error(code);
  send(m, protocol::make_error(code, text, id_, cause.request_id));
}

void Room::refuse_join(const MemberPtr& m, ErrorCode code, std::string_view text,
                       const Message& cause) {
  // A local connection learns it is not a member before the ERROR can reach its client:
  // otherwise a client that joins again at once (on its own thread, as soon as the ERROR
  // arrives) could have that new membership undone by this refusal's late notice. A
  // remote one (through its relay) must still be known when its ERROR gets there.
  if (!m->remote()) m->removed_from_room(uid_, id_);
  send_error(m, code, text, cause);
  if (m->remote()) m->removed_from_room(uid_, id_);
}

void Room::send_ack(const MemberPtr& m, const Message& cause) {
  send_ack(m, version_, cause.request_id);
}

void Room::send_ack(const MemberPtr& m, std::uint64_t version,
                    std::optional<std::uint64_t> request_id) {
  Message ack;
  ack.type = Type::ack;
  ack.room_id = id_;
  ack.payload = state::Object();
  ack.version = version;
  ack.request_id = request_id;
  send(m, ack);
}

void Room::send_durable_ack(const MemberPtr& m, const Message& cause) {
  if (!settings_.ack_when_durable || version_ <= durable_version_) return send_ack(m, cause);
  pending_acks_.push_back({m, version_, *cause.request_id});
}

void Room::durable(std::uint64_t version) {
  if (version > durable_version_) durable_version_ = version;
  while (!pending_acks_.empty() && pending_acks_.front().version <= durable_version_) {
    auto& p = pending_acks_.front();
    send_ack(p.member, p.version, p.request_id);
    pending_acks_.pop_front();
  }
}

// ---------------------------------------------------------------------------------------
// Players and connections

Room::Player* Room::attached_player(const Member* m) {
  auto it = attached_.find(m);
  return it == attached_.end() ? nullptr : it->second;
}

void Room::attach(Player& p, const MemberPtr& m) {
  release(p);
  p.member = m;
  attached_[m.get()] = &p;
  // Members of other instances are counted there (by their relay).
  if (!m->remote()) metrics_.members.fetch_add(1, std::memory_order_relaxed);
}

void Room::release(Player& p) {
  if (!p.member) return;
  attached_.erase(p.member.get());
  if (!p.member->remote()) metrics_.members.fetch_sub(1, std::memory_order_relaxed);
  p.member.reset();
}

void Room::remove_player(const std::string& player_id, std::string_view reason,
                         Clock::time_point now) {
  auto it = players_.find(player_id);
  if (it == players_.end()) return;
  release(it->second);
  by_token_.erase(it->second.token);
  players_.erase(it);
  if (players_.empty()) next_hook_tick_.reset();  // on_tick resumes with the next join

  const state::Path path = {"players", player_id};
  if (builder_.apply(state_, path, nullptr)) {
    ++version_;
    conflicts_.record(path, version_, "");
    changed(now);
  }
  Message left;
  left.type = Type::player_left;
  left.room_id = id_;
  left.payload = state::Object{{"playerId", player_id}, {"reason", reason}};
  broadcast(left, nullptr);
  if (wants(RoomHooks::leave)) {
    hook_now_ = now;
    HookClock clock{metrics_};
    if (!hooks_->on_leave(*this, player_id, reason)) clock.failed();
  }
}

bool Room::location_exists(const state::Path& path) const {
  const state::Value* at = nullptr;
  const state::Object* obj = &state_;
  for (const auto& key : path) {
    if (!obj) return false;
    at = obj->if_contains(key);
    if (!at) return false;
    obj = at->if_object();
  }
  return at == nullptr || at->is_object();
}

// ---------------------------------------------------------------------------------------
// Client messages

void Room::join(const MemberPtr& m, const Message& msg, Clock::time_point now) {
  if (Player* p = attached_player(m.get())) {  // already in: answer like RESYNC
    flush(now);
    send_full_state(*p, now);
    return;
  }
  state::Object attrs = msg.payload ? *msg.payload : state::Object();
  std::optional<std::string> token;
  std::optional<std::uint64_t> last_version;
  if (auto* t = attrs.if_contains(kSessionToken)) {
    if (!t->is_string()) {
      return refuse_join(m, ErrorCode::bad_message, "payload.sessionToken: must be a string",
                         msg);
    }
    token = std::string(t->get_string());
  }
  if (auto* v = attrs.if_contains(kLastVersion)) {
    if (!v->is_int64() || v->get_int64() < 0) {
      return refuse_join(m, ErrorCode::bad_message,
                         "payload.lastVersion: must be a non-negative integer", msg);
    }
    last_version = static_cast<std::uint64_t>(v->get_int64());
  }
  if (auto* t = attrs.if_contains(kRoomType); t && !type_name_.empty()) {
    if (!t->is_string() || t->get_string() != type_name_) {
      return refuse_join(m, ErrorCode::forbidden,
                         "payload.roomType: room " + id_ + " is of type '" + type_name_ + "'",
                         msg);
    }
  }
  for (auto key : kJoinKeys) attrs.erase(key);

  // Resume: the same player, no PLAYER_LEFT / PLAYER_JOINED churn. A verified player id
  // names the player itself (its sessionToken is not needed, nor honoured for another id).
  const std::string& claimed = m->identity().player_id;
  Player* existing = nullptr;
  if (!claimed.empty()) {
    if (auto c = players_.find(claimed); c != players_.end()) existing = &c->second;
  } else if (token) {
    if (auto t = by_token_.find(*token); t != by_token_.end()) existing = &players_.at(t->second);
  }
  if (existing) {
    Player& p = *existing;
    if (p.member && p.member != m) {
      MemberPtr old = p.member;
      release(p);
      old->removed_from_room(uid_, id_);
    }
    flush(now);  // before attaching: the pending delta is not the resumer's next one
    attach(p, m);
    const bool same_epoch = !msg.epoch || *msg.epoch == epoch_;
    if (!(last_version && same_epoch && replay_history(p, *last_version))) {
      send_full_state(p, now);
    } else {
      send_ack(m, msg);  // marks the end of the replayed deltas
    }
    return;
  }

  if (players_.size() >= settings_.max_members) {
    return refuse_join(m, ErrorCode::room_full,
                       "room is full (" + std::to_string(settings_.max_members) + " players)",
                       msg);
  }

  Player p;
  p.id = claimed;
  while (p.id.empty() || players_.count(p.id)) p.id = random_hex(6);
  p.token = random_hex(16);

  if (wants(RoomHooks::join)) {
    hook_now_ = now;
    HookVerdict verdict;
    {
      HookClock clock{metrics_};
      verdict = hooks_->on_join(*this, p.id, attrs, m->identity().claims);
      if (verdict.kind == HookVerdict::Kind::error) clock.failed();
    }
    if (verdict.kind == HookVerdict::Kind::replace && !verdict.value.is_object()) {
      hook_unusable("on_join", "returned something other than a dict", "");
      verdict.kind = HookVerdict::Kind::error;
    }
    switch (verdict.kind) {
      case HookVerdict::Kind::accept: break;
      case HookVerdict::Kind::replace:
        attrs = std::move(verdict.value.as_object());
        attrs.erase(kPlayerId);
        break;
      case HookVerdict::Kind::reject:
        return refuse_join(m, ErrorCode::forbidden,
                           verdict.reason.empty() ? "the room refused the join" : verdict.reason,
                           msg);
      case HookVerdict::Kind::error:
        return refuse_join(m, ErrorCode::internal,
                           "the room's on_join hook failed; the server logged why", msg);
    }
  }

  flush(now);  // members get what is pending first: the join delta starts a fresh batch
  const state::Path path = {"players", p.id};
  builder_.apply(state_, path, state::Value(attrs));
  ++version_;
  state::LeafPaths leaves;
  leaves.assign(path, state::Value(attrs));
  leaves.add(path);
  conflicts_.record(leaves, version_, "");
  created_sessions_.emplace_back(p.token, p.id);
  flush(now);  // the others see the new entry in a delta the joiner must not get

  auto [it, inserted] = players_.emplace(p.id, std::move(p));
  Player& added = it->second;
  by_token_[added.token] = added.id;
  attach(added, m);
  send_full_state(added, now);
  if (ticking() && !next_hook_tick_) {
    last_hook_tick_ = now;
    next_hook_tick_ = next_hook_tick(now);
  }

  Message joined;
  joined.type = Type::player_joined;
  joined.room_id = id_;
  joined.payload = attrs;
  (*joined.payload)["playerId"] = added.id;
  broadcast(joined, m.get());
}

void Room::leave(const MemberPtr& m, const Message& msg, Clock::time_point now) {
  Player* p = attached_player(m.get());
  if (!p) {
    send_error(m, ErrorCode::not_in_room, "not in room " + id_, msg);
    return;
  }
  const std::string player_id = p->id;
  remove_player(player_id, "left", now);
  if (msg.request_id) send_durable_ack(m, msg);  // its version contains the removal
  m->removed_from_room(uid_, id_);
}

void Room::update(const MemberPtr& m, Message&& msg, Clock::time_point now) {
  Player* p = attached_player(m.get());
  if (!p) {
    send_error(m, ErrorCode::not_in_room, "not in room " + id_, msg);
    return;
  }
  state::Path& target = target_;  // reused: its strings keep their buffers
  if (msg.path) {
    auto parsed = state::parse_pointer(*msg.path);
    if (!parsed) {
      send_error(m, ErrorCode::bad_message, "path: must be a JSON Pointer such as /players/id/x",
                 msg);
      return;
    }
    target = std::move(*parsed);
  } else {
    target.resize(2);
    target[0].assign("players");
    target[1].assign(p->id);
  }
  state::Value patch(std::move(*msg.payload));  // taken, not copied (see Inbox::update)
  if (patch.get_object().empty() && location_exists(target)) {  // {} onto a map: nothing to do
    if (msg.request_id) send_durable_ack(m, msg);
    return;
  }
  state::LeafPaths& leaves = leaves_;  // reused, as target_
  leaves.assign(target, patch);
  for (std::size_t i = 0; i < leaves.size(); ++i) {
    const auto leaf = leaves[i];
    if (auto error = structure_error(leaf)) {
      send_error(m, error->first, error->second, msg);
      return;
    }
    auto why = rules_.check(leaf, value_at(patch, leaf, target.size()), p->id);
    if (!why.empty()) {
      send_error(m, ErrorCode::forbidden, quoted(leaf) + " " + why, msg);
      return;
    }
  }
  if (msg.version && conflicts_.conflicts(leaves, *msg.version, version_, p->id)) {
    send_error(m, ErrorCode::conflict,
               "a field this update writes was changed by someone else after version " +
                   std::to_string(*msg.version),
               msg);
    return;
  }
  if (wants(RoomHooks::update)) {
    hook_now_ = now;
    const std::string player_id = p->id;
    HookVerdict verdict;
    {
      HookClock clock{metrics_};
      verdict = hooks_->on_update(*this, player_id, target, patch);
      if (verdict.kind == HookVerdict::Kind::error) clock.failed();
    }
    p = attached_player(m.get());
    if (!p) return;  // the hook kicked the writer: it was told
    switch (verdict.kind) {
      case HookVerdict::Kind::accept: break;
      case HookVerdict::Kind::reject:
        send_error(m, ErrorCode::forbidden,
                   verdict.reason.empty() ? "the room refused the update" : verdict.reason, msg);
        return;
      case HookVerdict::Kind::error:
        return hook_failed(m, "on_update", msg);
      case HookVerdict::Kind::replace: {
        // The hook's own patch is trusted (no path rules) but must keep the document sound.
        patch = std::move(verdict.value);
        if (patch.is_object() && patch.as_object().empty() && location_exists(target)) {
          if (msg.request_id) send_durable_ack(m, msg);  // {}: nothing to apply
          return;
        }
        leaves.assign(target, patch);
        for (std::size_t i = 0; i < leaves.size(); ++i) {
          if (auto error = structure_error(leaves[i])) {
            hook_unusable("on_update", "returned a patch that cannot apply", error->second);
            return hook_failed(m, "on_update", msg);
          }
        }
        break;
      }
    }
  }
  if (builder_.apply(state_, target, patch)) {
    ++version_;
    conflicts_.record(leaves, version_, p->id);
    if (msg.request_id) send_durable_ack(m, msg);
    changed(now);
    return;
  }
  if (msg.request_id) send_durable_ack(m, msg);  // nothing changed: contained in version_
}

void Room::resync(const MemberPtr& m, const Message& msg, Clock::time_point now) {
  Player* p = attached_player(m.get());
  if (!p) {
    send_error(m, ErrorCode::not_in_room, "not in room " + id_, msg);
    return;
  }
  flush(now);
  send_full_state(*p, now);
}

void Room::resync_slow_member(const MemberPtr& m, Clock::time_point now) {
  if (Player* p = attached_player(m.get())) {
    flush(now);
    send_full_state(*p, now);
  }
}

void Room::detach(const MemberPtr& m, Clock::time_point now) {
  Player* p = attached_player(m.get());
  if (!p) return;
  release(*p);
  p->grace_deadline = now + settings_.session_grace;
  if (settings_.session_grace <= Clock::duration::zero()) {
    const std::string player_id = p->id;
    remove_player(player_id, "timeout", now);
  }
}

std::optional<std::pair<ErrorCode, std::string>> Room::structure_error(
    std::span<const std::string> leaf) const {
  if (leaf.size() > settings_.max_state_depth) {
    return std::pair{ErrorCode::bad_message,
                     "document nesting deeper than " + std::to_string(settings_.max_state_depth)};
  }
  if (!leaf.empty() && leaf[0] == "players" && leaf.size() <= 2) {
    return std::pair{ErrorCode::forbidden,
                     quoted(leaf) +
                         ": player entries are created by JOIN_ROOM and removed by LEAVE_ROOM"};
  }
  return std::nullopt;
}

const state::Value& Room::value_at(const state::Value& patch,
                                   std::span<const std::string> leaf, std::size_t from) {
  const state::Value* v = &patch;
  for (std::size_t i = from; i < leaf.size(); ++i) {
    const auto* obj = v->if_object();
    const auto* next = obj ? obj->if_contains(leaf[i]) : nullptr;
    if (!next) break;  // not expected: leaf came from this patch
    v = next;
  }
  return *v;
}

// ---------------------------------------------------------------------------------------
// Hooks and what they may do (RoomControl)

void Room::set_hooks(std::shared_ptr<RoomHooks> hooks, std::string type_name, double tick_rate,
                     Clock::time_point now) {
  // A simulation needs a clock even when deltas leave at once (tick_rate 0).
  constexpr double kSimulationRate = 20.0;
  hook_tick_rate_ = tick_rate > 0 && tick_rate != settings_.tick_rate ? tick_rate
                    : settings_.tick_rate > 0                         ? 0.0
                                                                      : kSimulationRate;
  hooks_ = std::move(hooks);
  hook_mask_ = hooks_ ? hooks_->hooks() : 0;
  type_name_ = std::move(type_name);
  if (wants(RoomHooks::create)) {
    hook_now_ = now;
    HookClock clock{metrics_};
    if (!hooks_->on_create(*this)) clock.failed();
  }
  if (ticking()) {  // a recovered room has players already
    last_hook_tick_ = now;
    next_hook_tick_ = next_hook_tick(now);
  }
}

void Room::dispose_hooks(Clock::time_point now) {
  if (wants(RoomHooks::dispose)) {
    hook_now_ = now;
    HookClock clock{metrics_};
    if (!hooks_->on_dispose(*this)) clock.failed();
  }
  hooks_.reset();
  hook_mask_ = 0;
  next_hook_tick_.reset();
}

void Room::hook_unusable(std::string_view hook, std::string_view problem,
                         std::string_view detail) {
  metrics_.hook_failures.fetch_add(1, std::memory_order_relaxed);
  hooks_->report(*this, hook, problem, detail);
}

void Room::hook_failed(const MemberPtr& m, std::string_view hook, const Message& cause) {
  send_error(m, ErrorCode::internal,
             "the room's " + std::string(hook) + " hook failed; the server logged why", cause);
}

std::vector<std::string> Room::connected_players() const {
  std::vector<std::string> out;
  for (const auto& [pid, p] : players_) {
    if (p.member) out.push_back(pid);
  }
  return out;
}

std::string Room::write(const state::Path& path, const state::Value& value, bool merge) {
  if (path.empty()) return "the path must name a location below the root";
  if (path[0] == "players" && path.size() <= 2) {
    return "player entries are created by joins and removed by leaves and kick()";
  }
  state::LeafPaths leaves;  // not leaves_: a hook may write while update() holds it
  leaves.assign(path, value);
  for (std::size_t i = 0; i < leaves.size(); ++i) {
    if (auto error = structure_error(leaves[i])) return error->second;  // depth: entries are past
  }
  bool changed_doc = false;
  if (merge || !value.is_object()) {
    changed_doc = builder_.apply(state_, path, value);
  } else {  // replace a map: what is not in `value` goes
    const state::Value* current = nullptr;
    const state::Object* obj = &state_;
    for (const auto& key : path) {
      current = obj ? obj->if_contains(key) : nullptr;
      if (!current) break;
      obj = current->if_object();
    }
    if (current && *current == value) return {};
    if (current) changed_doc = builder_.apply(state_, path, nullptr);
    changed_doc = builder_.apply(state_, path, value) || changed_doc;
    leaves.add(path);
  }
  if (changed_doc) {
    ++version_;
    conflicts_.record(leaves, version_, "");
    changed(hook_now_);
  }
  return {};
}

std::string Room::set(const state::Path& path, const state::Value& value) {
  return write(path, value, false);
}

std::string Room::patch(const state::Path& path, const state::Value& patch) {
  return write(path, patch, true);
}

bool Room::send_event(std::string_view name, const state::Value& data, const std::string& to) {
  Message event;
  event.type = Type::room_event;
  event.room_id = id_;
  event.payload = state::Object{{"name", name}, {"data", data}};
  event.tick = tick_;
  if (to.empty()) {
    broadcast(event, nullptr);
    return true;
  }
  auto it = players_.find(to);
  if (it == players_.end() || !it->second.member) return false;
  send(it->second.member, event);
  return true;
}

bool Room::kick(const std::string& player_id, std::string_view message) {
  auto it = players_.find(player_id);
  if (it == players_.end()) return false;
  const std::string pid = player_id;  // the caller's string may live in the entry
  MemberPtr member = it->second.member;
  if (member && !member->remote()) member->removed_from_room(uid_, id_);  // see refuse_join
  if (member) {
    Message left;
    left.type = Type::player_left;
    left.room_id = id_;
    left.payload = state::Object{{"playerId", pid}, {"reason", "kicked"}};
    if (!message.empty()) (*left.payload)["message"] = message;
    send(member, left);
  }
  remove_player(pid, "kicked", hook_now_);
  if (member && member->remote()) member->removed_from_room(uid_, id_);
  return true;
}

// ---------------------------------------------------------------------------------------
// Ticks

std::uint64_t Room::tick_at(Clock::time_point now) const {
  if (settings_.tick_rate <= 0) return tick_;
  const double elapsed = std::chrono::duration<double>(now - created_).count();
  return static_cast<std::uint64_t>(std::floor(elapsed * settings_.tick_rate));
}

Clock::time_point Room::next_tick_boundary(Clock::time_point now) const {
  const double next = static_cast<double>(tick_at(now) + 1) / settings_.tick_rate;
  return created_ +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(next));
}

Clock::time_point Room::next_hook_tick(Clock::time_point now) const {
  if (hook_tick_rate_ <= 0) return next_tick_boundary(now);
  return now + std::chrono::duration_cast<Clock::duration>(
                   std::chrono::duration<double>(1.0 / hook_tick_rate_));
}

void Room::changed(Clock::time_point now) {
  if (settings_.tick_rate <= 0) {
    flush(now);
  } else if (!flush_due_) {
    flush_due_ = next_tick_boundary(now);
  }
}

void Room::flush(Clock::time_point now) {
  flush_due_.reset();
  if (version_ == flushed_version_) return;
  const auto started = Clock::now();
  tick_ = settings_.tick_rate > 0 ? tick_at(now) : tick_ + 1;

  auto delta = std::make_shared<Message>();
  delta->type = Type::delta_update;
  delta->room_id = id_;
  delta->payload = builder_.take(state_);
  delta->version = version_;
  delta->base_version = flushed_version_;
  delta->tick = tick_;
  delta->epoch = epoch_;

  HistoryEntry entry{flushed_version_, delta, {}};
  const double sent = trace_ ? trace::TraceFile::now() : 0.0;
  broadcast(*delta, nullptr, entry.frames);
  if (link_) {
    link_->on_delta(*delta, encoded(entry.frames, protocol::Format::msgpack, *delta),
                    created_sessions_);
  }
  if (trace_) {  // both sizes, so a trace can compare the encodings
    trace_->delta(*delta, sent, encoded(entry.frames, protocol::Format::json, *delta)->size(),
                  encoded(entry.frames, protocol::Format::msgpack, *delta)->size());
  }
  created_sessions_.clear();
  if (settings_.delta_history > 0) keep(std::move(entry));
  flushed_version_ = version_;
  metrics_.deltas.fetch_add(1, std::memory_order_relaxed);
  metrics_.tick_duration.observe(std::chrono::duration<double>(Clock::now() - started).count());
}

void Room::restore(state::Object state, std::uint64_t version, std::uint64_t tick,
                   const Sessions& sessions, Clock::time_point now) {
  state_ = std::move(state);
  if (!state_.contains("players") || !state_["players"].is_object()) {
    state_["players"] = state::Object();
  }
  version_ = flushed_version_ = durable_version_ = version;
  tick_ = tick;
  if (settings_.tick_rate > 0) {  // tick_at(now) continues from `tick`
    created_ = now - std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(static_cast<double>(tick) /
                                                       settings_.tick_rate));
  }
  std::unordered_map<std::string, std::string> token_of;  // playerId -> sessionToken
  for (const auto& [token, pid] : sessions) token_of[pid] = token;
  for (const auto& [key, value] : state_["players"].get_object()) {
    Player p;
    p.id = std::string(key);
    auto t = token_of.find(p.id);
    p.token = t != token_of.end() ? t->second : random_hex(16);  // unknown: not resumable
    p.grace_deadline = now + settings_.session_grace;
    by_token_[p.token] = p.id;
    players_.emplace(p.id, std::move(p));
  }
}

void Room::set_trace(std::shared_ptr<trace::TraceFile> trace) {
  trace_ = std::move(trace);
  if (trace_) trace_->state(id_, version_, tick_, epoch_, state_);
}

Sessions Room::sessions() const {
  Sessions out;
  out.reserve(by_token_.size());
  for (const auto& [token, pid] : by_token_) out.emplace_back(token, pid);
  return out;
}

std::vector<std::pair<MemberPtr, std::string>> Room::members() const {
  std::vector<std::pair<MemberPtr, std::string>> out;
  for (const auto& [pid, p] : players_) {
    if (p.member) out.emplace_back(p.member, p.token);
  }
  return out;
}

void Room::send_full_state(Player& p, Clock::time_point now) {
  (void)now;
  Message full;
  full.type = Type::full_state;
  full.room_id = id_;
  full.payload = state::Object{
      {"state", state_}, {"playerId", p.id}, {"sessionToken", p.token}};
  full.version = version_;
  full.tick = tick_;
  full.epoch = epoch_;
  full.timestamp = now_ms();
  send(p.member, full);
}

void Room::keep(HistoryEntry entry) {
  // Charged before a replay encodes the other format: the decoded message and both
  // encodings are each about the size of one encoding.
  const auto json = static_cast<int>(protocol::Format::json);
  const auto msgpack = static_cast<int>(protocol::Format::msgpack);
  if (!entry.frames[json] && !entry.frames[msgpack]) {  // no member took it: a replay will
    entry.frames[msgpack] = std::make_shared<const std::string>(
        protocol::encode(protocol::Format::msgpack, *entry.message));
  }
  const auto& sized = entry.frames[json] ? entry.frames[json] : entry.frames[msgpack];
  entry.bytes = 3 * sized->size();
  history_bytes_ += entry.bytes;
  history_.push_back(std::move(entry));
  while (!history_.empty() && (history_.size() > settings_.delta_history ||
                               history_bytes_ > settings_.delta_history_bytes)) {
    history_bytes_ -= history_.front().bytes;
    history_.pop_front();
  }
}

bool Room::replay_history(Player& p, std::uint64_t from_version) {
  if (from_version == version_) return true;  // nothing missed
  std::size_t i = 0;
  while (i < history_.size() && history_[i].base_version != from_version) ++i;
  if (i == history_.size()) return false;
  for (; i < history_.size(); ++i) send(p.member, history_[i]);
  return true;
}

void Room::on_timer(Clock::time_point now) {
  if (!ticking()) {
    next_hook_tick_.reset();
  } else if (next_hook_tick_ && now >= *next_hook_tick_) {
    const double dt = std::chrono::duration<double>(now - last_hook_tick_).count();
    last_hook_tick_ = now;
    next_hook_tick_ = next_hook_tick(now);  // a slow hook skips ticks; dt tells it
    hook_now_ = now;
    {
      HookClock clock{metrics_};
      if (!hooks_->on_tick(*this, dt)) clock.failed();
    }
    // At the room's own ticks, this tick's changes, the hook's included, leave now.
    if (flush_due_ && hook_tick_rate_ <= 0) flush(now);
  }
  if (flush_due_ && now >= *flush_due_) flush(now);
  std::vector<std::string> expired;
  for (auto& [pid, p] : players_) {
    if (!p.member && p.grace_deadline <= now) expired.push_back(pid);
  }
  for (const auto& pid : expired) remove_player(pid, "timeout", now);
}

std::optional<Clock::time_point> Room::next_deadline() const {
  std::optional<Clock::time_point> next = flush_due_;
  if (ticking() && next_hook_tick_ && (!next || *next_hook_tick_ < *next)) next = next_hook_tick_;
  if (attached_.size() == players_.size()) return next;  // nobody in a grace period
  for (const auto& [pid, p] : players_) {
    if (!p.member && (!next || p.grace_deadline < *next)) next = p.grace_deadline;
  }
  return next;
}

}  // namespace kasagi::room
