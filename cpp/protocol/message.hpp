// The messages of the Kasagi wire protocol (docs/protocol.md), independent of encoding.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include "state/value.hpp"

namespace kasagi::protocol {

enum class Type : std::uint8_t {
  // client to server
  join_room, leave_room, state_update, resync, ping,
  // server to client
  full_state, delta_update, player_joined, player_left, ack, pong, error,
  room_event,  // extension (docs/protocol.md): sent by room hooks
};
inline constexpr int kTypeCount = 13;

enum class ErrorCode : std::uint8_t {
  bad_message, unknown_type, not_in_room, room_full, forbidden, conflict,
  rate_limited, too_large, unavailable, internal,
};
inline constexpr int kErrorCodeCount = 10;

// Wire names: "JOIN_ROOM", "BAD_MESSAGE", ...
std::string_view to_string(Type t);
std::string_view to_string(ErrorCode c);
std::optional<Type> type_from_string(std::string_view s);
std::optional<ErrorCode> error_code_from_string(std::string_view s);

// True for the five types a client may send.
bool is_client_type(Type t);

// True when `id` is 1..128 bytes of [A-Za-z0-9_.:-].
bool valid_room_id(std::string_view id);

// One message. Absent optional fields are not encoded (never sent as null).
struct Message {
  Type type = Type::error;
  std::string room_id;                          // empty = absent
  std::optional<state::Object> payload;
  std::optional<std::uint64_t> version;
  std::optional<std::uint64_t> base_version;
  std::optional<std::uint64_t> tick;
  std::optional<std::string> epoch;
  std::optional<std::uint64_t> request_id;
  std::optional<std::uint64_t> timestamp;
  // Extension (docs/protocol.md): on STATE_UPDATE, the JSON Pointer the patch applies at,
  // when the room's path rules allow writing outside the sender's own player entry.
  std::optional<std::string> path;
};

// Builds an ERROR message: payload {code, message}, echoing request id and room id.
Message make_error(ErrorCode code, std::string_view text, std::string_view room_id = {},
                   std::optional<std::uint64_t> request_id = std::nullopt);

// Builds the JOIN_ROOM that resumes a session: payload {sessionToken}.
Message make_resume_join(std::string_view room_id, std::string_view session_token);

}  // namespace kasagi::protocol
