// What instances say to each other on a room channel (room:{id}:channel). The authority
// publishes its deltas and its answers to members on other instances; those instances
// (relays) publish their members' inputs. One channel, one publisher per direction, so
// everything a relay receives from the authority arrives in the order it was produced.
//
// Wire form: a MessagePack array [kind, from, to, conn, op, frame, conns, claims]. `frame`
// is a client protocol message in MessagePack (kasagi.v1.msgpack), so a relay forwards it to
// its MessagePack clients without re-encoding. `claims` (a join's) may be absent: the array
// of the first version had 7 elements.
//
// Trust: instances sharing a Redis trust each other. A relay has verified its member's token;
// the authority takes the claims it forwards as verified (player id, hooks' claims).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kasagi::broker {

enum class ChannelKind : std::uint8_t {
  delta = 0,      // authority -> all: a DELTA_UPDATE for every attached member
  to_member = 1,  // authority -> one member (from the relay `to`, connection `conn`)
  removed = 2,    // authority -> one member: it is no longer in the room
  input = 3,      // relay -> authority: a member's message (`op` says which)
  heartbeat = 4,  // relay -> authority: the connections it still has in the room (`conns`)
  resync = 5,     // authority -> all: deltas were lost, every member needs a FULL_STATE
  // authority -> all: a message (PLAYER_JOINED, PLAYER_LEFT, ROOM_EVENT) for every attached
  // member, except connection `conn` of instance `to` when `to` is set
  broadcast = 6,
};

// What a relay asks the authority to do for one of its members.
enum class InputOp : std::uint8_t { join, leave, update, resync, resync_slow, detach };

struct ChannelMessage {
  ChannelKind kind = ChannelKind::delta;
  std::string from;        // instance id of the sender
  std::string to;          // instance id of the recipient (to_member, removed); "" = all
  std::uint64_t conn = 0;  // connection id on `to` (to_member, removed) or on `from` (input)
  InputOp op = InputOp::join;
  std::string frame;       // MessagePack protocol message ("" for detach, removed, ...)
  std::vector<std::uint64_t> conns;  // heartbeat
  std::string claims;      // input join: the member's verified claims, a MessagePack map
                           // ("" = anonymous)
};

std::string encode(const ChannelMessage& m);
// nullopt when `bytes` is not a channel message (never throws).
std::optional<ChannelMessage> decode_channel_message(std::string_view bytes);

}  // namespace kasagi::broker
