// Encoding and decoding of messages, JSON and MessagePack. Sans-I/O: bytes in, messages out,
// so the fuzzers and the property tests drive it directly.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include "protocol/message.hpp"
#include "state/merge_patch.hpp"

namespace kasagi::protocol {

enum class Format : std::uint8_t { json, msgpack };

// Subprotocol names: "kasagi.v1.json", "kasagi.v1.msgpack".
std::string_view subprotocol(Format f);
std::optional<Format> format_from_subprotocol(std::string_view name);

struct DecodeLimits {
  state::ValueLimits value;  // applied to payload values
};

// Why a frame could not be turned into a message, with whatever could still be read of it so
// that the ERROR can echo requestId and roomId.
struct DecodeError {
  ErrorCode code = ErrorCode::bad_message;  // bad_message or unknown_type
  std::string message;                      // human-readable, e.g. "roomId: must be a string"
  std::optional<std::uint64_t> request_id;
  std::string room_id;
};

using DecodeResult = std::variant<Message, DecodeError>;

// Decodes one frame. Checks the envelope: `type` a known type name (else UNKNOWN_TYPE),
// `roomId` a valid room id, `payload` a map, uint fields non-negative integers, `epoch` and
// `path` strings; roomId required for JOIN_ROOM, LEAVE_ROOM, STATE_UPDATE and RESYNC;
// payload required for STATE_UPDATE. Unknown envelope keys are ignored. Payload values are
// normalized (state::normalize). Never throws.
DecodeResult decode(Format f, std::string_view bytes, const DecodeLimits& limits = {});

// Encodes one message: a JSON text (Format::json) or MessagePack bytes (Format::msgpack).
std::string encode(Format f, const Message& m);

// One document value as MessagePack, the way room snapshots and the delta log store it
// (broker/broker.hpp). decode_value returns nullopt for bytes that are not one valid value.
std::string encode_value(const state::Value& v);
std::optional<state::Value> decode_value(std::string_view bytes);

}  // namespace kasagi::protocol
