// The room as seen from an instance that is not its authority: the members connected here
// send their messages to the authority through the room channel, and what the authority
// publishes (deltas for all, answers for one) is delivered to them, encoded once per format.
//
// A member counts as attached once the authority answered its join (FULL_STATE or replayed
// deltas); deltas reach attached members only, so a joiner's first delta follows its
// FULL_STATE as PROTOCOL.md requires. When the authority changes (takeover, or a resync it
// asks for), every member joins again with its session token and gets a fresh FULL_STATE.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>
#include "broker/broker.hpp"
#include "broker/channel_message.hpp"
#include "room/inbox.hpp"
#include "telemetry/metrics.hpp"

namespace kasagi::net {

class Relay final : public room::Inbox {
 public:
  // A member handed over from a deposed local authority, or to one that takes over.
  struct Handover {
    room::MemberPtr member;
    std::string token;                        // "" when its join was not answered yet
    std::optional<protocol::Message> join;    // that unanswered join
  };

  Relay(std::shared_ptr<broker::Broker> broker, std::string room_id, std::uint64_t room_uid,
        std::string self, metrics::Metrics& metrics);
  ~Relay();

  const std::string& authority() const { return authority_; }
  // The instance that holds the lease now; a change makes every member join again.
  void set_authority(const std::string& instance);

  void join(const room::MemberPtr& m, const protocol::Message& msg, room::Clock::time_point now) override;
  void leave(const room::MemberPtr& m, const protocol::Message& msg, room::Clock::time_point now) override;
  void update(const room::MemberPtr& m, protocol::Message&& msg, room::Clock::time_point now) override;
  void resync(const room::MemberPtr& m, const protocol::Message& msg, room::Clock::time_point now) override;
  void resync_slow_member(const room::MemberPtr& m, room::Clock::time_point now) override;
  void detach(const room::MemberPtr& m, room::Clock::time_point now) override;

  // A message from the room channel.
  void on_channel(const broker::ChannelMessage& msg);
  // Messages may have been lost: every member joins again.
  void rejoin_all();
  // Tells the authority which members are still here (it detaches the rest).
  void heartbeat();

  bool empty() const { return by_conn_.empty(); }
  // When an unanswered join is next due to be sent again (nullopt: none is waiting).
  std::optional<room::Clock::time_point> next_retry() const;
  // Sends again the joins unanswered for kJoinRetry (the channel loses messages while a
  // subscription is being set up or re-established); the room's timer calls it.
  void retry_joins(room::Clock::time_point now);
  // Hands every member over (this instance becomes the authority) and forgets them.
  std::vector<Handover> take_members();
  void adopt(std::vector<Handover> members);

 private:
  // A join can be lost while the authority is being elected or subscribing: resend soon.
  static constexpr std::chrono::milliseconds kJoinRetry{300};

  struct Local {
    room::MemberPtr member;
    std::string token;
    bool attached = false;
    std::optional<protocol::Message> join;  // sent, not answered yet
    room::Clock::time_point join_sent{};
  };

  std::uint64_t conn_of(const room::MemberPtr& m);
  void forward(std::uint64_t conn, broker::InputOp op, const protocol::Message* msg,
               std::string claims = {});
  // Sends `join` as l's pending join, with the member's verified claims (every join, so
  // that a new authority learns them from the rejoin).
  void forward_join(std::uint64_t conn, Local& l, protocol::Message join,
                    room::Clock::time_point now);
  void send_join(std::uint64_t conn, Local& l, room::Clock::time_point now);
  void deliver(Local& l, const std::string& msgpack, const protocol::Message& decoded);
  // Sends a message of the authority to every attached member but connection `except`.
  void send_attached(const std::string& msgpack, protocol::Type type,
                     const protocol::Message* decoded, std::optional<std::uint64_t> except);
  void drop(std::uint64_t conn, bool tell_member);

  std::shared_ptr<broker::Broker> broker_;
  std::string room_id_;
  std::uint64_t room_uid_;
  std::string self_;
  metrics::Metrics& metrics_;
  std::string authority_;
  std::uint64_t next_conn_ = 1;
  std::map<std::uint64_t, Local> by_conn_;
  std::unordered_map<const room::Member*, std::uint64_t> conn_by_member_;
};

}  // namespace kasagi::net
