#include "net/relay.hpp"

#include "protocol/codec.hpp"
#include "telemetry/log.hpp"

namespace kasagi::net {

using broker::ChannelKind;
using broker::ChannelMessage;
using broker::InputOp;
using protocol::Format;
using protocol::Message;
using protocol::Type;

Relay::Relay(std::shared_ptr<broker::Broker> broker, std::string room_id,
             std::uint64_t room_uid, std::string self, metrics::Metrics& metrics)
    : broker_(std::move(broker)),
      room_id_(std::move(room_id)),
      room_uid_(room_uid),
      self_(std::move(self)),
      metrics_(metrics) {}

Relay::~Relay() {
  metrics_.members.fetch_sub(static_cast<std::int64_t>(by_conn_.size()),
                             std::memory_order_relaxed);
}

void Relay::set_authority(const std::string& instance) {
  if (instance == authority_) return;
  const bool had_one = !authority_.empty();
  authority_ = instance;
  if (had_one) rejoin_all();
}

std::uint64_t Relay::conn_of(const room::MemberPtr& m) {
  auto it = conn_by_member_.find(m.get());
  if (it != conn_by_member_.end()) return it->second;
  const std::uint64_t conn = next_conn_++;
  conn_by_member_[m.get()] = conn;
  by_conn_[conn].member = m;
  metrics_.members.fetch_add(1, std::memory_order_relaxed);  // connected here: ours to count
  return conn;
}

void Relay::forward(std::uint64_t conn, InputOp op, const Message* msg, std::string claims) {
  ChannelMessage out;
  out.kind = ChannelKind::input;
  out.from = self_;
  out.to = authority_;
  out.conn = conn;
  out.op = op;
  if (msg) out.frame = protocol::encode(Format::msgpack, *msg);
  out.claims = std::move(claims);
  broker_->publish(room_id_, broker::encode(out));
}

void Relay::forward_join(std::uint64_t conn, Local& l, Message join,
                         room::Clock::time_point now) {
  l.join = std::move(join);
  l.join_sent = now;
  std::string claims;
  if (l.member && !l.member->identity().claims.empty()) {
    claims = protocol::encode_value(l.member->identity().claims);
  }
  forward(conn, InputOp::join, &*l.join, std::move(claims));
}

void Relay::send_join(std::uint64_t conn, Local& l, room::Clock::time_point now) {
  l.attached = false;
  if (!l.token.empty()) {  // resume: the same player, a fresh FULL_STATE
    forward_join(conn, l, protocol::make_resume_join(room_id_, l.token), now);
  } else if (l.join) {
    forward_join(conn, l, *l.join, now);
  }
}

void Relay::join(const room::MemberPtr& m, const Message& msg, room::Clock::time_point now) {
  const std::uint64_t conn = conn_of(m);
  forward_join(conn, by_conn_[conn], msg, now);
}

void Relay::leave(const room::MemberPtr& m, const Message& msg, room::Clock::time_point) {
  auto it = conn_by_member_.find(m.get());
  if (it == conn_by_member_.end()) return;
  forward(it->second, InputOp::leave, &msg);  // the authority answers, then removes it
}

void Relay::update(const room::MemberPtr& m, Message&& msg, room::Clock::time_point) {
  auto it = conn_by_member_.find(m.get());
  if (it == conn_by_member_.end()) return;
  forward(it->second, InputOp::update, &msg);
}

void Relay::resync(const room::MemberPtr& m, const Message& msg, room::Clock::time_point) {
  auto it = conn_by_member_.find(m.get());
  if (it == conn_by_member_.end()) return;
  forward(it->second, InputOp::resync, &msg);
}

void Relay::resync_slow_member(const room::MemberPtr& m, room::Clock::time_point) {
  auto it = conn_by_member_.find(m.get());
  if (it == conn_by_member_.end()) return;
  by_conn_[it->second].attached = false;  // no deltas until the FULL_STATE
  forward(it->second, InputOp::resync_slow, nullptr);
}

void Relay::detach(const room::MemberPtr& m, room::Clock::time_point) {
  auto it = conn_by_member_.find(m.get());
  if (it == conn_by_member_.end()) return;
  const std::uint64_t conn = it->second;
  forward(conn, InputOp::detach, nullptr);
  drop(conn, false);
}

void Relay::drop(std::uint64_t conn, bool tell_member) {
  auto it = by_conn_.find(conn);
  if (it == by_conn_.end()) return;
  room::MemberPtr m = std::move(it->second.member);
  conn_by_member_.erase(m.get());
  by_conn_.erase(it);
  metrics_.members.fetch_sub(1, std::memory_order_relaxed);
  if (tell_member) m->removed_from_room(room_uid_, room_id_);
}

void Relay::deliver(Local& l, const std::string& msgpack, const Message& decoded) {
  room::Frame frame;
  if (l.member->format() == Format::msgpack) {
    frame = std::make_shared<const std::string>(msgpack);
  } else {
    frame = std::make_shared<const std::string>(protocol::encode(l.member->format(), decoded));
  }
  metrics_.count_out(decoded.type, frame->size());
  l.member->send({std::move(frame), decoded.type, room_uid_});
}

// MessagePack members get `msgpack` as it is: it is decoded (once) only when a JSON member
// needs it re-encoded, unless the caller did already (`decoded`).
void Relay::send_attached(const std::string& msgpack, Type type, const Message* decoded,
                          std::optional<std::uint64_t> except) {
  std::optional<Message> own;
  bool tried = decoded != nullptr;
  room::Frame frames[2];
  frames[static_cast<int>(Format::msgpack)] = std::make_shared<const std::string>(msgpack);
  std::size_t sent = 0, bytes = 0;
  for (auto& [conn, l] : by_conn_) {
    if (!l.attached || conn == except) continue;
    auto& frame = frames[static_cast<int>(l.member->format())];
    if (!frame) {
      if (!tried) {
        tried = true;
        auto result = protocol::decode(Format::msgpack, msgpack);
        if (auto* m = std::get_if<Message>(&result)) decoded = &own.emplace(std::move(*m));
      }
      if (!decoded) continue;  // the authority encoded it: not expected
      frame = std::make_shared<const std::string>(protocol::encode(l.member->format(), *decoded));
    }
    ++sent;
    bytes += frame->size();
    l.member->send({frame, type, room_uid_});
  }
  if (sent) metrics_.count_out(type, bytes, sent);
}

void Relay::on_channel(const ChannelMessage& msg) {
  if (msg.from == self_) return;
  switch (msg.kind) {
    case ChannelKind::delta:
      if (msg.from != authority_) return;  // a deposed authority's last words
      return send_attached(msg.frame, Type::delta_update, nullptr, std::nullopt);
    case ChannelKind::broadcast: {
      if (msg.from != authority_) return;
      auto decoded = protocol::decode(Format::msgpack, msg.frame);
      auto* m = std::get_if<Message>(&decoded);
      if (!m) return;
      auto except = msg.to == self_ ? std::optional(msg.conn) : std::nullopt;
      return send_attached(msg.frame, m->type, m, except);
    }
    case ChannelKind::to_member: {
      if (msg.to != self_ || msg.from != authority_) return;
      auto it = by_conn_.find(msg.conn);
      if (it == by_conn_.end()) return;
      auto decoded = protocol::decode(Format::msgpack, msg.frame);
      auto* m = std::get_if<Message>(&decoded);
      if (!m) return;
      Local& l = it->second;
      if (m->type == Type::full_state) {
        if (auto* t = m->payload->if_contains("sessionToken"); t && t->is_string()) {
          l.token = std::string(t->get_string());
        }
        l.attached = true;
        l.join.reset();
      } else if (m->type == Type::delta_update || m->type == Type::ack) {
        if (l.join && !l.token.empty()) l.attached = true;  // end of a resume's replay
        l.join.reset();
      }
      deliver(l, msg.frame, *m);
      return;
    }
    case ChannelKind::removed:
      if (msg.to == self_ && msg.from == authority_) drop(msg.conn, true);
      return;
    case ChannelKind::resync:
      if (msg.from != authority_) {
        authority_ = msg.from;  // a new authority announcing itself
      }
      rejoin_all();
      return;
    case ChannelKind::input:
    case ChannelKind::heartbeat:
      return;  // for the authority
  }
}

void Relay::rejoin_all() {
  const auto now = room::Clock::now();
  for (auto& [conn, l] : by_conn_) send_join(conn, l, now);
}

std::optional<room::Clock::time_point> Relay::next_retry() const {
  std::optional<room::Clock::time_point> next;
  for (const auto& [conn, l] : by_conn_) {
    if (l.join && (!next || l.join_sent + kJoinRetry < *next)) next = l.join_sent + kJoinRetry;
  }
  return next;
}

void Relay::retry_joins(room::Clock::time_point now) {
  for (auto& [conn, l] : by_conn_) {
    if (l.join && now - l.join_sent >= kJoinRetry) send_join(conn, l, now);
  }
}

void Relay::heartbeat() {
  ChannelMessage out;
  out.kind = ChannelKind::heartbeat;
  out.from = self_;
  out.to = authority_;
  for (const auto& [conn, l] : by_conn_) out.conns.push_back(conn);
  broker_->publish(room_id_, broker::encode(out));
}

std::vector<Relay::Handover> Relay::take_members() {
  std::vector<Handover> out;
  for (auto& [conn, l] : by_conn_) out.push_back({l.member, l.token, l.join});
  // The room they join counts them now.
  metrics_.members.fetch_sub(static_cast<std::int64_t>(by_conn_.size()),
                             std::memory_order_relaxed);
  by_conn_.clear();
  conn_by_member_.clear();
  return out;
}

void Relay::adopt(std::vector<Handover> members) {
  for (auto& h : members) {
    const std::uint64_t conn = conn_of(h.member);
    Local& l = by_conn_[conn];
    l.token = std::move(h.token);
    l.join = std::move(h.join);
    send_join(conn, l, room::Clock::now());
  }
}

}  // namespace kasagi::net
