#include "net/room_actor.hpp"

#include <algorithm>

#include "broker/channel_message.hpp"
#include "net/context.hpp"
#include "protocol/codec.hpp"
#include "room/identity.hpp"
#include "room/random_id.hpp"
#include "state/merge_patch.hpp"
#include "telemetry/log.hpp"

namespace kasagi::net {

using broker::ChannelKind;
using broker::ChannelMessage;
using broker::InputOp;
using broker::Status;
using protocol::ErrorCode;
using protocol::Message;
using room::Clock;

namespace {

// Answers inputs while the room cannot be served: the broker did not tell in time who the
// room's authority is.
class Refuser final : public room::Inbox {
 public:
  Refuser(const std::string& id, std::uint64_t uid, metrics::Metrics& metrics)
      : id_(id), uid_(uid), metrics_(metrics) {}
  void join(const room::MemberPtr& m, const Message& msg, Clock::time_point) override {
    m->removed_from_room(uid_, id_);  // first: see room::Room::refuse_join
    refuse(m, msg);
  }
  void leave(const room::MemberPtr& m, const Message& msg, Clock::time_point) override { refuse(m, msg); }
  void update(const room::MemberPtr& m, Message&& msg, Clock::time_point) override { refuse(m, msg); }
  void resync(const room::MemberPtr& m, const Message& msg, Clock::time_point) override { refuse(m, msg); }
  void resync_slow_member(const room::MemberPtr&, Clock::time_point) override {}
  void detach(const room::MemberPtr&, Clock::time_point) override {}

 private:
  void refuse(const room::MemberPtr& m, const Message& msg) {
    metrics_.count_error(ErrorCode::unavailable);
    auto e = protocol::make_error(ErrorCode::unavailable,
                                  "room " + id_ + " cannot be served right now: the shared store "
                                  "is unreachable; retry later", id_, msg.request_id);
    auto frame = std::make_shared<const std::string>(protocol::encode(m->format(), e));
    m->send({std::move(frame), e.type, uid_});
  }
  const std::string& id_;
  std::uint64_t uid_;
  metrics::Metrics& metrics_;
};

std::string instance_of(const std::string& token) { return token.substr(0, token.find('/')); }

std::uint64_t now_ms() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

std::string encode_sessions(const room::Sessions& sessions) {
  if (sessions.empty()) return {};
  state::Object map;
  for (const auto& [token, pid] : sessions) map[token] = pid;
  return protocol::encode_value(map);
}

void decode_sessions(const std::string& bytes, room::Sessions& out) {
  if (bytes.empty()) return;
  auto v = protocol::decode_value(bytes);
  if (!v || !v->is_object()) return;
  for (const auto& [token, pid] : v->get_object()) {
    if (pid.is_string()) out.emplace_back(std::string(token), std::string(pid.get_string()));
  }
}

}  // namespace

RoomActor::RoomActor(Executor executor, Context& ctx, const std::string& id, std::uint64_t uid,
                     const room::RoomSettings& settings, room::PathRules rules,
                     std::shared_ptr<const room::RoomType> type)
    : executor_(executor),
      alone_(ctx.pool.owns(executor.get_inner_executor().context())),
      timer_(executor_),
      lease_timer_(executor_),
      ctx_(ctx),
      broker_(ctx.broker),
      id_(id),
      uid_(uid),
      settings_(settings),
      rules_(type ? type->rules : std::move(rules)),
      type_(std::move(type)) {
  ctx_.metrics.rooms.fetch_add(1, std::memory_order_relaxed);
  log::debug("room " + id_ + " created" + (type_ ? " (type " + type_->name + ")" : ""));
}

RoomActor::~RoomActor() {
  if (room_) {  // the server is stopping: on_dispose's changes reach no one
    room_->set_link(nullptr);
    stop_hooks(Clock::now());
  }
  ctx_.metrics.rooms.fetch_sub(1, std::memory_order_relaxed);
}

void RoomActor::make_room(Clock::time_point now) {
  room_ = std::make_unique<room::Room>(id_, uid_, settings_, rules_, ctx_.metrics, now);
  if (type_) room_->set_type_name(type_->name);
}

void RoomActor::start_trace() {
  if (!ctx_.trace || !room_) return;
  const bool wanted = ctx_.trace_rooms.empty() ||
                      std::any_of(ctx_.trace_rooms.begin(), ctx_.trace_rooms.end(),
                                  [this](const auto& p) { return room::glob_match(p, id_); });
  if (wanted) room_->set_trace(ctx_.trace);
}

// On the room's thread: with hooks, that is a hook thread, where the GIL may be taken.
void RoomActor::start_hooks(Clock::time_point now) {
  if (!type_ || !type_->make_hooks || !room_) return;
  room_->set_hooks(type_->make_hooks(id_), type_->name, type_->tick_rate, now);
}

void RoomActor::stop_hooks(Clock::time_point now) {
  if (room_) room_->dispose_hooks(now);
}

// Wraps a broker completion handler: it runs on the room's thread, and not at all if the
// actor is gone or its role changed since the request was made.
template <class F>
auto RoomActor::on_own_thread(F f) {
  return [weak = weak_from_this(), gen = generation_, f = std::move(f)](auto... args) {
    auto self = weak.lock();
    if (!self) return;
    boost::asio::post(self->executor_, [self, gen, f, ... args = std::move(args)]() mutable {
      if (gen != self->generation_ || self->role_ == Role::gone) return;
      f(std::move(args)...);
      self->after_event(Clock::now());
    });
  };
}

void RoomActor::start() {
  if (!broker_) {  // a lone server: the room is ours alone, from the start
    make_room(Clock::now());
    start_trace();
    role_ = Role::authority;
    if (type_ && type_->make_hooks) {
      // Not here (a session's thread, under the registry's lock): on the room's own thread,
      // before any input, which is posted after this.
      boost::asio::post(executor_, [self = shared_from_this()] {
        if (self->role_ != Role::authority) return;
        self->start_hooks(Clock::now());
        self->after_event(Clock::now());
      });
    }
    return;
  }
  broker_->subscribe(id_, std::weak_ptr<broker::Subscriber>(shared_from_this()));
  boost::asio::post(executor_, [self = shared_from_this()] {
    self->claiming_since_ = Clock::now();
    self->lease_tick();
    self->after_event(Clock::now());
  });
}

// ---------------------------------------------------------------------------------------
// Inputs

void RoomActor::run(Input f) {
  const auto now = Clock::now();
  switch (role_) {
    case Role::claiming:
    case Role::loading:
      waiting_.push_back(std::move(f));
      return;
    case Role::authority:
      f(*room_, now);
      break;
    case Role::relay:
      f(*relay_, now);
      break;
    case Role::gone: {
      Refuser refuser(id_, uid_, ctx_.metrics);
      f(refuser, now);
      return;
    }
  }
  after_event(now);
}

void RoomActor::run_waiting() {
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& f : waiting) run(std::move(f));
}

bool RoomActor::empty() const {
  switch (role_) {
    case Role::authority: return room_->empty();
    case Role::relay: return relay_->empty();
    case Role::gone: return true;
    default: return waiting_.empty() && handover_.empty();
  }
}

// ---------------------------------------------------------------------------------------
// Lease and role

void RoomActor::claim() {
  if (claim_in_flight_) return;  // one at a time: answers must not cross
  claim_in_flight_ = true;
  std::string token = token_;
  if (role_ == Role::claiming || role_ == Role::relay) {
    token = ctx_.instance_id + "/" + room::random_hex(8);  // a new epoch if granted
  }
  broker_->claim(id_, token, ctx_.sharing.lease_ttl,
                 [weak = weak_from_this(), token](Status s, std::string owner) {
                   auto self = weak.lock();
                   if (!self) return;
                   boost::asio::post(self->executor_, [self, s, token, owner] {
                     self->claim_in_flight_ = false;
                     if (self->role_ == Role::gone) return;
                     self->on_claimed(s, token, owner);
                     self->after_event(Clock::now());
                   });
                 });
}

void RoomActor::lease_tick() {
  if (role_ == Role::gone) return;
  const auto now = Clock::now();
  claim();
  if (role_ == Role::relay) relay_->heartbeat();
  if (role_ == Role::authority) {
    expire_silent_relays(now);
    if (room_->version() > snapshot_version_ &&
        now - snapshot_at_ >= ctx_.sharing.snapshot_interval) {
      snapshot_due_ = true;
    }
  }
  if (role_ == Role::claiming && !waiting_.empty() &&
      now - claiming_since_ > ctx_.sharing.lease_ttl) {
    Refuser refuser(id_, uid_, ctx_.metrics);
    for (auto& f : waiting_) f(refuser, now);
    waiting_.clear();
  }
  lease_timer_.expires_after(ctx_.sharing.lease_ttl / 3);
  lease_timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    if (ec) return;
    if (auto self = weak.lock()) {
      self->lease_tick();
      self->after_event(Clock::now());
    }
  });
}

void RoomActor::on_claimed(Status status, const std::string& token, const std::string& owner) {
  if (status == Status::unavailable) return;  // keep going as we are; the next tick retries
  const bool granted = status == Status::ok;
  if (granted) token_ = token;
  switch (role_) {
    case Role::claiming:
    case Role::relay:
      if (!granted) {
        if (role_ == Role::claiming) return become_relay(owner);
        return relay_->set_authority(instance_of(owner));
      }
      if (relay_) {  // taking over from a dead authority
        handover_ = relay_->take_members();
        relay_.reset();
      }
      role_ = Role::loading;
      ++generation_;
      broker_->load(id_, on_own_thread([this](Status s, broker::RoomLog log) {
                      on_loaded(s, std::move(log));
                    }));
      return;
    case Role::loading:
      if (!granted) become_relay(owner);
      return;
    case Role::authority:
      if (!granted) return deposed("instance " + instance_of(owner) + " holds its lease now");
      if (!log_intact_ && !repairing_) save_snapshot(true);
      return;
    case Role::gone:
      return;
  }
}

void RoomActor::on_loaded(Status status, broker::RoomLog log) {
  const auto now = Clock::now();
  if (status != Status::ok) {  // we hold the lease; claim (renew) and load again
    role_ = Role::claiming;
    ++generation_;
    return;
  }
  state::Value doc = state::Object();
  std::uint64_t version = 0, tick = 0;
  room::Sessions sessions;
  if (log.snapshot) {
    auto v = protocol::decode_value(log.snapshot->data);
    if (v && v->is_object()) {
      doc = std::move(*v);
      version = log.snapshot->version;
      tick = log.snapshot->tick;
      decode_sessions(log.snapshot->sessions, sessions);
    } else {
      log::error("room " + id_ + ": its snapshot is not a MessagePack map; ignoring it");
    }
  }
  std::uint64_t replayed = 0;
  for (const auto& e : log.ops) {
    if (e.version <= version) continue;
    auto patch = protocol::decode_value(e.data);
    if (e.base != version || !patch) {
      log::error("room " + id_ + ": its log breaks at version " + std::to_string(version) +
                 "; recovering up to there");
      break;
    }
    state::apply_merge_patch(doc, *patch);
    version = e.version;
    tick = e.tick;
    decode_sessions(e.sessions, sessions);
    ++replayed;
  }
  const bool recovered = log.snapshot.has_value() || replayed > 0;

  make_room(now);
  if (recovered) {
    room_->restore(std::move(doc.as_object()), version, tick, sessions, now);
    ctx_.metrics.authority_takeovers.fetch_add(1, std::memory_order_relaxed);
    ctx_.metrics.replays.fetch_add(replayed, std::memory_order_relaxed);
    log::info("room " + id_ + ": recovered at version " + std::to_string(version) + " (" +
              std::to_string(replayed) + " log entries after the snapshot)");
  }
  room_->set_link(this);
  start_trace();     // after restore: the recording starts from the recovered state
  start_hooks(now);  // after restore: on_create sees the recovered state
  log_intact_ = true;
  repairing_ = false;
  snapshot_version_ = version;
  stored_snapshot_ = log.snapshot ? std::optional(log.snapshot->version) : std::nullopt;
  snapshot_at_ = now;
  role_ = Role::authority;
  ++generation_;

  for (auto& h : handover_) {  // members that were here already join the new room
    Message join;
    if (!h.token.empty()) {
      join = protocol::make_resume_join(id_, h.token);
    } else if (h.join) {
      join = std::move(*h.join);
    } else {
      continue;
    }
    room_->join(h.member, join, now);
  }
  handover_.clear();
  if (recovered) publish_resync();  // relays' members join the new authority
  run_waiting();
}

void RoomActor::become_relay(const std::string& owner) {
  role_ = Role::relay;
  ++generation_;
  relay_ = std::make_unique<Relay>(broker_, id_, uid_, ctx_.instance_id, ctx_.metrics);
  relay_->set_authority(instance_of(owner));
  if (!handover_.empty()) relay_->adopt(std::move(handover_));
  handover_.clear();
  run_waiting();
}

void RoomActor::deposed(const std::string& why) {
  ctx_.metrics.lease_losses.fetch_add(1, std::memory_order_relaxed);
  log::warning("room " + id_ + ": no longer its authority (" + why +
               "); its members here follow the new one");
  for (auto& [member, token] : room_->members()) {
    if (!member->remote()) handover_.push_back({member, token, std::nullopt});
  }
  stop_hooks(Clock::now());
  room_.reset();
  remote_.clear();
  relay_seen_.clear();
  backlog_.clear();
  role_ = Role::claiming;
  ++generation_;
  claiming_since_ = Clock::now();
  claim();  // after the claim in flight, if any: the next lease tick
}

// ---------------------------------------------------------------------------------------
// Authority: the log, snapshots, members elsewhere

void RoomActor::on_delta(const Message& delta, const room::Frame& msgpack,
                         const room::Sessions& created) {
  broker::OpEntry entry;
  entry.data = protocol::encode_value(*delta.payload);
  entry.version = *delta.version;
  entry.base = *delta.base_version;
  entry.tick = *delta.tick;
  entry.epoch = *delta.epoch;
  entry.sessions = encode_sessions(created);
  ChannelMessage out;
  out.kind = ChannelKind::delta;
  out.from = ctx_.instance_id;
  out.frame = *msgpack;
  if (!log_intact_) {
    if (repairing_) backlog_.emplace_back(std::move(entry), broker::encode(out));
    return;
  }
  if (entry.version - snapshot_version_ >= ctx_.sharing.snapshot_every) snapshot_due_ = true;
  append(std::move(entry), broker::encode(out));
}

// Once for every relay: each delivers it to its members (but `except`, when it is theirs).
void RoomActor::on_broadcast(const room::Frame& msgpack, const room::Member* except) {
  ChannelMessage out;
  out.kind = ChannelKind::broadcast;
  out.from = ctx_.instance_id;
  out.frame = *msgpack;
  if (except != nullptr && except->remote()) {  // remote() members are RemoteMembers
    const auto* member = static_cast<const RemoteMember*>(except);
    out.to = member->instance();
    out.conn = member->conn();
  }
  broker_->publish(id_, broker::encode(out));
}

void RoomActor::append(broker::OpEntry entry, std::string message) {
  const std::uint64_t version = entry.version;
  entry.after_snapshot = stored_snapshot_ == entry.base;
  broker_->append(id_, token_, std::move(entry), std::move(message),
                  on_own_thread([this, version, g = append_generation_](Status s) {
                    on_appended(s, version, g);
                  }));
}

void RoomActor::on_appended(Status status, std::uint64_t version, std::uint64_t generation) {
  switch (status) {
    case Status::ok:
      if (log_intact_ && generation == append_generation_) room_->durable(version);
      return;
    case Status::fenced:
      return deposed("its log append was fenced");
    case Status::unavailable:
      if (log_intact_) {
        log_intact_ = false;
        ++append_generation_;
        log::warning("room " + id_ + ": cannot append to the shared log; serving local "
                     "members, ACKs wait until the log is repaired");
      }
      return;
  }
}

void RoomActor::save_snapshot(bool recovering) {
  const auto now = Clock::now();
  room_->flush_now(now);
  if (recovering) {
    repairing_ = true;
    backlog_.clear();  // the snapshot contains them
  }
  broker::Snapshot s;
  s.data = protocol::encode_value(room_->state());
  s.version = room_->version();
  s.tick = room_->tick();
  s.epoch = room_->epoch();
  s.ts = now_ms();
  s.sessions = encode_sessions(room_->sessions());
  snapshot_due_ = false;
  snapshot_version_ = s.version;
  stored_snapshot_ = s.version;
  snapshot_at_ = now;
  const std::uint64_t version = s.version;
  broker_->save_snapshot(id_, token_, std::move(s),
                         on_own_thread([this, version, recovering, g = append_generation_](Status st) {
                           on_snapshot_saved(st, version, recovering, g);
                         }));
}

void RoomActor::on_snapshot_saved(Status status, std::uint64_t version, bool recovering,
                                  std::uint64_t generation) {
  if (status == Status::fenced) return deposed("its snapshot write was fenced");
  if (status == Status::unavailable) {
    if (recovering) {
      repairing_ = false;
      backlog_.clear();
    } else {
      snapshot_due_ = true;
    }
    return;
  }
  if (!recovering || generation != append_generation_) return;
  log_intact_ = true;
  repairing_ = false;
  ctx_.metrics.log_repairs.fetch_add(1, std::memory_order_relaxed);
  log::info("room " + id_ + ": shared log repaired at version " + std::to_string(version));
  room_->durable(version);
  auto backlog = std::move(backlog_);
  backlog_.clear();
  for (auto& [entry, message] : backlog) append(std::move(entry), std::move(message));
  publish_resync();  // relays missed the deltas in between
}

void RoomActor::publish_resync() {
  ChannelMessage out;
  out.kind = ChannelKind::resync;
  out.from = ctx_.instance_id;
  broker_->publish(id_, broker::encode(out));
}

void RoomActor::on_input(const ChannelMessage& msg) {
  const auto now = Clock::now();
  relay_seen_[msg.from] = now;
  auto& conns = remote_[msg.from];
  std::shared_ptr<RemoteMember> member;
  if (auto it = conns.find(msg.conn); it != conns.end()) {
    member = it->second;
  } else {
    if (msg.op == InputOp::detach) return;
    member = std::make_shared<RemoteMember>(
        broker_, id_, ctx_.instance_id, msg.from, msg.conn,
        [this, from = msg.from, conn = msg.conn] { remote_[from].erase(conn); });
    conns[msg.conn] = member;
  }
  if (msg.op == InputOp::detach) {
    room_->detach(member, now);
    remote_[msg.from].erase(msg.conn);
    return;
  }
  if (msg.op == InputOp::resync_slow) return room_->resync_slow_member(member, now);
  auto decoded = protocol::decode(protocol::Format::msgpack, msg.frame);
  auto* m = std::get_if<Message>(&decoded);
  if (!m) return;  // the relay's own session validated it: not expected
  if (msg.op == InputOp::join && !msg.claims.empty()) {
    // Verified by the relay's instance (broker/channel_message.hpp, "Trust"); read the same
    // way as there, so a claim it accepted is accepted here.
    auto claims = protocol::decode_value(msg.claims);
    if (!claims || !claims->is_object()) return;
    auto identity = room::Identity::from_claims(std::move(claims->as_object()));
    if (auto* id = std::get_if<room::Identity>(&identity)) member->set_identity(std::move(*id));
  }
  switch (msg.op) {
    case InputOp::join: return room_->join(member, *m, now);
    case InputOp::leave: return room_->leave(member, *m, now);
    case InputOp::update: return room_->update(member, std::move(*m), now);
    case InputOp::resync: return room_->resync(member, *m, now);
    default: return;
  }
}

void RoomActor::expire_silent_relays(Clock::time_point now) {
  for (auto it = relay_seen_.begin(); it != relay_seen_.end();) {
    if (now - it->second <= ctx_.sharing.lease_ttl) {
      ++it;
      continue;
    }
    log::info("room " + id_ + ": instance " + it->first +
              " went silent; its players enter their grace period");
    auto members = std::move(remote_[it->first]);
    remote_.erase(it->first);
    for (auto& [conn, m] : members) room_->detach(m, now);
    it = relay_seen_.erase(it);
  }
}

void RoomActor::on_message(std::string message) {
  auto msg = broker::decode_channel_message(message);
  if (!msg || msg->from == ctx_.instance_id) return;
  boost::asio::post(executor_, [self = shared_from_this(), m = std::move(*msg)] {
    if (self->role_ == Role::relay) {
      self->relay_->on_channel(m);
    } else if (self->role_ == Role::authority) {
      if (m.kind == ChannelKind::input && m.to == self->ctx_.instance_id) {
        self->on_input(m);
      } else if (m.kind == ChannelKind::heartbeat && m.to == self->ctx_.instance_id) {
        self->relay_seen_[m.from] = Clock::now();
      }
    }
    self->after_event(Clock::now());
  });
}

void RoomActor::on_gap() {
  boost::asio::post(executor_, [self = shared_from_this()] {
    if (self->role_ == Role::relay) self->relay_->rejoin_all();
  });
}

// ---------------------------------------------------------------------------------------
// The room's timer and disposal

void RoomActor::after_event(Clock::time_point now) {
  if (role_ == Role::gone) return;
  if (snapshot_due_ && role_ == Role::authority && log_intact_) save_snapshot(false);
  if (empty()) {
    if (!empty_since_) empty_since_ = now;
  } else {
    empty_since_.reset();
  }
  std::optional<Clock::time_point> deadline;
  if (role_ == Role::authority) deadline = room_->next_deadline();
  if (role_ == Role::relay) deadline = relay_->next_retry();
  if (empty_since_) {
    const auto dispose_at = *empty_since_ + ctx_.sharing.empty_ttl;
    if (!deadline || dispose_at < *deadline) deadline = dispose_at;
  }
  if (deadline) arm(*deadline);
}

void RoomActor::arm(Clock::time_point deadline) {
  if (armed_for_ && *armed_for_ <= deadline) return;  // an earlier wake-up is already set
  armed_for_ = deadline;
  timer_.expires_at(deadline);  // cancels a later wait, whose handler then sees the new expiry
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec == boost::asio::error::operation_aborted) return;
    self->on_timer();
  });
}

void RoomActor::on_timer() {
  const auto now = Clock::now();
  armed_for_.reset();
  if (role_ == Role::gone) return;
  if (role_ == Role::authority) room_->on_timer(now);
  if (role_ == Role::relay) relay_->retry_joins(now);
  if (empty_since_ && empty() && now >= *empty_since_ + ctx_.sharing.empty_ttl) {
    if (ctx_.rooms.try_remove(id_, this, [this] { return empty(); })) return dispose();
    empty_since_ = now;  // a join is on its way; look again later
  }
  after_event(now);
}

void RoomActor::dispose() {
  if (role_ == Role::authority) stop_hooks(Clock::now());  // first: its changes are saved
  if (broker_) broker_->unsubscribe(id_, this);
  if (broker_ && role_ == Role::authority) {
    if (log_intact_ && room_->version() > snapshot_version_) {
      save_snapshot(false);  // a later join here or elsewhere continues from it
    }
    broker_->release(id_, token_);
  }
  room_.reset();  // here, on the room's thread, with its hooks gone already
  role_ = Role::gone;
  ++generation_;
  lease_timer_.cancel();
  timer_.cancel();
  log::debug("room " + id_ + " discarded after staying empty");
}

}  // namespace kasagi::net
