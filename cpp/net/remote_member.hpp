// A connection on another instance, as the authority's room sees it: what the room sends it
// is published on the room channel for that instance's relay to deliver (broker/
// channel_message.hpp). Deltas do not come through here: the room publishes each once.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include "broker/broker.hpp"
#include "broker/channel_message.hpp"
#include "room/member.hpp"

namespace kasagi::net {

class RemoteMember final : public room::Member {
 public:
  RemoteMember(std::shared_ptr<broker::Broker> broker, std::string room_id, std::string self,
               std::string instance, std::uint64_t conn, std::function<void()> on_removed)
      : broker_(std::move(broker)),
        room_id_(std::move(room_id)),
        self_(std::move(self)),
        instance_(std::move(instance)),
        conn_(conn),
        on_removed_(std::move(on_removed)) {}

  const std::string& instance() const { return instance_; }

  // Who the relay says is behind the connection (its join's claims, verified there).
  const room::Identity& identity() const override { return identity_; }
  void set_identity(room::Identity identity) { identity_ = std::move(identity); }
  std::uint64_t conn() const { return conn_; }

  protocol::Format format() const override { return protocol::Format::msgpack; }
  bool remote() const override { return true; }

  void send(room::Outgoing frame) override {
    publish(broker::ChannelKind::to_member, *frame.bytes);
  }

  void removed_from_room(std::uint64_t, const std::string&) override {
    publish(broker::ChannelKind::removed, {});
    if (on_removed_) on_removed_();
  }

 private:
  void publish(broker::ChannelKind kind, std::string frame) {
    broker::ChannelMessage m;
    m.kind = kind;
    m.from = self_;
    m.to = instance_;
    m.conn = conn_;
    m.frame = std::move(frame);
    broker_->publish(room_id_, broker::encode(m));
  }

  std::shared_ptr<broker::Broker> broker_;
  std::string room_id_;
  std::string self_;
  std::string instance_;
  std::uint64_t conn_;
  std::function<void()> on_removed_;
  room::Identity identity_;  // anonymous until a join brings claims
};

}  // namespace kasagi::net
