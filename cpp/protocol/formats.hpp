// Internal to the codec: the two wire formats behind codec.hpp. Each format turns bytes
// into a frame value and hands it to decode_frame, so the envelope is checked by one code
// path for both; each encodes a Message directly, without an intermediate value.
// (MessagePack first tries a direct conversion that accepts only well-formed frames of
// envelope keys; every other frame, and every error, goes through decode_frame.)
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include "protocol/codec.hpp"

namespace kasagi::protocol::detail {

std::string encode_json(const Message& m);
std::string encode_msgpack(const Message& m);

DecodeResult decode_json(std::string_view bytes, const DecodeLimits& limits);
DecodeResult decode_msgpack(std::string_view bytes, const DecodeLimits& limits);

// Checks the envelope of a parsed frame and builds the message (codec.cpp). Returns the
// message, or the first problem found.
DecodeResult decode_frame(boost::json::value&& frame, const DecodeLimits& limits);

// The envelope's unsigned integer fields: wire key and member.
struct UintField {
  std::string_view key;
  std::optional<std::uint64_t> Message::*field;
};
inline constexpr UintField kUintFields[] = {
    {"version", &Message::version},     {"baseVersion", &Message::base_version},
    {"tick", &Message::tick},           {"requestId", &Message::request_id},
    {"timestamp", &Message::timestamp},
};

// True for the types whose frames must carry a roomId.
inline bool requires_room(Type t) {
  return t == Type::join_room || t == Type::leave_room || t == Type::state_update ||
         t == Type::resync;
}

// Returns a DecodeError that echoes the frame's requestId and roomId when they are valid.
DecodeError frame_error(const boost::json::object* frame, ErrorCode code, std::string message);

// How deep the parsers let a frame nest. Twice the payload's limit, so that a payload
// somewhat too deep still parses and is refused by state::normalize with an error that
// echoes requestId, while the parsers still bound the work on hostile input.
inline std::size_t frame_depth_limit(const DecodeLimits& limits) {
  return 2 * limits.value.max_depth + 1;
}

// The message for a frame the parser stopped at frame_depth_limit.
std::string too_deep_message(const DecodeLimits& limits);

}  // namespace kasagi::protocol::detail
