// A room's view of a connection: where to send frames. Implemented by net::WsSession.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include "protocol/codec.hpp"
#include "room/identity.hpp"

namespace kasagi::room {

// One encoded message, shared (never copied) by every recipient: encode once, send many.
using Frame = std::shared_ptr<const std::string>;

struct Outgoing {
  Frame bytes;
  protocol::Type type = protocol::Type::error;
  std::uint64_t room_uid = 0;  // 0 = not tied to a room
};

class Member {
 public:
  virtual ~Member() = default;

  // The wire format this connection speaks; rooms encode each message once per format.
  virtual protocol::Format format() const = 0;

  // A connection on another instance (net::RemoteMember): it gets its deltas through the
  // room channel, which the room's RoomLink publishes once for all of them.
  virtual bool remote() const { return false; }

  // Queues a frame. Thread-safe and never blocks: the connection applies its own bounded
  // send-queue policy.
  virtual void send(Outgoing frame) = 0;

  // The room `room_uid` (id `room_id`) no longer counts this connection as a member: its
  // join was refused, it left, or its player was resumed on another connection.
  // Thread-safe; called from the room's executor.
  virtual void removed_from_room(std::uint64_t room_uid, const std::string& room_id) = 0;

  // Who is behind the connection: its verified token's player id, permissions and claims
  // (hooks read `identity().claims`). Fixed for the connection's life; the default is
  // anonymous.
  virtual const Identity& identity() const {
    static const Identity anonymous;
    return anonymous;
  }
};

}  // namespace kasagi::room
