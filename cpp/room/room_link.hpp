// Where a room's deltas and broadcasts go beyond its own members: the broker
// (net::RoomActor implements it). Called on the room's thread, in version order.
#pragma once
#include <string>
#include <utility>
#include <vector>
#include "protocol/message.hpp"
#include "room/member.hpp"

namespace kasagi::room {

// sessionToken -> playerId
using Sessions = std::vector<std::pair<std::string, std::string>>;

class RoomLink {
 public:
  virtual ~RoomLink() = default;
  // `delta` left the room; `msgpack` is its MessagePack frame; `created` the sessions its
  // joins created.
  virtual void on_delta(const protocol::Message& delta, const Frame& msgpack,
                        const Sessions& created) = 0;
  // A message other than a delta (`msgpack`, its MessagePack frame) went to every member
  // but `except` (none if nullptr), and some of them are members on other instances
  // (Member::remote()): it goes to those once.
  virtual void on_broadcast(const Frame& msgpack, const Member* except) = 0;
};

}  // namespace kasagi::room
