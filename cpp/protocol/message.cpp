#include "protocol/message.hpp"

#include <array>

namespace kasagi::protocol {
namespace {

// Wire names, indexed by the enum values.
constexpr std::array<std::string_view, kTypeCount> kTypeNames = {
    "JOIN_ROOM",    "LEAVE_ROOM",    "STATE_UPDATE", "RESYNC", "PING", "FULL_STATE",
    "DELTA_UPDATE", "PLAYER_JOINED", "PLAYER_LEFT",  "ACK",    "PONG", "ERROR",
    "ROOM_EVENT",
};
constexpr std::array<std::string_view, kErrorCodeCount> kErrorCodeNames = {
    "BAD_MESSAGE", "UNKNOWN_TYPE", "NOT_IN_ROOM", "ROOM_FULL",   "FORBIDDEN",
    "CONFLICT",    "RATE_LIMITED", "TOO_LARGE",   "UNAVAILABLE", "INTERNAL",
};

constexpr std::size_t kMaxRoomIdBytes = 128;

bool room_id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == ':' || c == '-';
}

}  // namespace

std::string_view to_string(Type t) { return kTypeNames[static_cast<std::size_t>(t)]; }

std::string_view to_string(ErrorCode c) { return kErrorCodeNames[static_cast<std::size_t>(c)]; }

std::optional<Type> type_from_string(std::string_view s) {
  for (std::size_t i = 0; i < kTypeNames.size(); ++i)
    if (kTypeNames[i] == s) return static_cast<Type>(i);
  return std::nullopt;
}

std::optional<ErrorCode> error_code_from_string(std::string_view s) {
  for (std::size_t i = 0; i < kErrorCodeNames.size(); ++i)
    if (kErrorCodeNames[i] == s) return static_cast<ErrorCode>(i);
  return std::nullopt;
}

bool is_client_type(Type t) {
  switch (t) {
    case Type::join_room:
    case Type::leave_room:
    case Type::state_update:
    case Type::resync:
    case Type::ping:
      return true;
    default:
      return false;
  }
}

bool valid_room_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxRoomIdBytes) return false;
  for (char c : id)
    if (!room_id_char(c)) return false;
  return true;
}

Message make_error(ErrorCode code, std::string_view text, std::string_view room_id,
                   std::optional<std::uint64_t> request_id) {
  Message m;
  m.type = Type::error;
  m.room_id = room_id;
  m.request_id = request_id;
  state::Object payload;
  payload.emplace("code", to_string(code));
  payload.emplace("message", text);
  m.payload = std::move(payload);
  return m;
}

Message make_resume_join(std::string_view room_id, std::string_view session_token) {
  Message m;
  m.type = Type::join_room;
  m.room_id = room_id;
  m.payload = state::Object{{"sessionToken", session_token}};
  return m;
}

}  // namespace kasagi::protocol
