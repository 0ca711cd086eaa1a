// What a connection can ask of a room. Implemented by room::Room (this instance orders the
// room's changes: it is the authority) and by net::Relay (another instance is: the request
// is forwarded there). A session talks to either the same way.
#pragma once
#include <memory>
#include "protocol/message.hpp"
#include "room/member.hpp"
#include "room/settings.hpp"

namespace kasagi::room {

using MemberPtr = std::shared_ptr<Member>;

class Inbox {
 public:
  virtual ~Inbox() = default;
  virtual void join(const MemberPtr& m, const protocol::Message& msg, Clock::time_point now) = 0;
  virtual void leave(const MemberPtr& m, const protocol::Message& msg, Clock::time_point now) = 0;
  // May take msg's payload (the room applies it without a copy).
  virtual void update(const MemberPtr& m, protocol::Message&& msg, Clock::time_point now) = 0;
  virtual void resync(const MemberPtr& m, const protocol::Message& msg, Clock::time_point now) = 0;
  // The connection's send queue overflowed and was emptied: send it a fresh FULL_STATE.
  virtual void resync_slow_member(const MemberPtr& m, Clock::time_point now) = 0;
  // The connection is gone: its player stays for the grace period, waiting to be resumed.
  virtual void detach(const MemberPtr& m, Clock::time_point now) = 0;
};

}  // namespace kasagi::room
