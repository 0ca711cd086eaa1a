#include "protocol/codec.hpp"

#include <cstdint>
#include <limits>
#include "protocol/formats.hpp"

namespace kasagi::protocol {
namespace {

using boost::json::object;
using boost::json::value;

constexpr std::string_view kJsonSubprotocol = "kasagi.v1.json";
constexpr std::string_view kMsgpackSubprotocol = "kasagi.v1.msgpack";

// At most this many bytes of a client's string are quoted back in an error message.
constexpr std::size_t kMaxQuotedBytes = 64;

// Returns `v` as an unsigned integer, or nullopt when it is not a non-negative integer
// (floats such as 3.0 included: integers and floats stay distinct on the wire).
std::optional<std::uint64_t> as_uint(const value& v) {
  if (v.is_uint64()) return v.get_uint64();
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<std::uint64_t>(v.get_int64());
  return std::nullopt;
}

// Returns `s` cut to kMaxQuotedBytes without splitting a UTF-8 sequence.
std::string_view quotable(std::string_view s) {
  if (s.size() <= kMaxQuotedBytes) return s;
  std::size_t n = kMaxQuotedBytes;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

}  // namespace

std::string_view subprotocol(Format f) {
  return f == Format::json ? kJsonSubprotocol : kMsgpackSubprotocol;
}

std::optional<Format> format_from_subprotocol(std::string_view name) {
  if (name == kJsonSubprotocol) return Format::json;
  if (name == kMsgpackSubprotocol) return Format::msgpack;
  return std::nullopt;
}

DecodeResult decode(Format f, std::string_view bytes, const DecodeLimits& limits) {
  try {
    return f == Format::json ? detail::decode_json(bytes, limits)
                             : detail::decode_msgpack(bytes, limits);
  } catch (...) {  // bad_alloc: the formats catch everything else themselves
    return DecodeError{ErrorCode::bad_message, "frame could not be decoded", {}, {}};
  }
}

std::string encode(Format f, const Message& m) {
  return f == Format::json ? detail::encode_json(m) : detail::encode_msgpack(m);
}

namespace detail {

DecodeError frame_error(const object* frame, ErrorCode code, std::string message) {
  DecodeError err{code, std::move(message), {}, {}};
  if (!frame) return err;
  if (const value* v = frame->if_contains("requestId")) err.request_id = as_uint(*v);
  if (const value* v = frame->if_contains("roomId"); v && v->is_string())
    if (valid_room_id(v->get_string())) err.room_id = v->get_string();
  return err;
}

std::string too_deep_message(const DecodeLimits& limits) {
  return "frame is nested too deeply (payload values may nest at most " +
         std::to_string(limits.value.max_depth) + " levels)";
}

DecodeResult decode_frame(value&& frame, const DecodeLimits& limits) {
  if (!frame.is_object()) return frame_error(nullptr, ErrorCode::bad_message, "frame: must be a map");
  object& obj = frame.get_object();
  auto fail = [&](std::string message, ErrorCode code = ErrorCode::bad_message) -> DecodeResult {
    return frame_error(&obj, code, std::move(message));
  };

  Message m;
  const value* type = obj.if_contains("type");
  if (!type) return fail("type: missing");
  if (!type->is_string()) return fail("type: must be a string");
  auto t = type_from_string(type->get_string());
  if (!t)
    return fail("type: unknown message type \"" + std::string(quotable(type->get_string())) + "\"",
                ErrorCode::unknown_type);
  m.type = *t;

  if (const value* v = obj.if_contains("roomId")) {
    if (!v->is_string()) return fail("roomId: must be a string");
    if (!valid_room_id(v->get_string()))
      return fail("roomId: must be 1..128 characters of [A-Za-z0-9_.:-]");
    m.room_id = v->get_string();
  } else if (requires_room(m.type)) {
    return fail("roomId: required for " + std::string(to_string(m.type)));
  }

  for (const auto& [key, field] : kUintFields) {
    const value* v = obj.if_contains(key);
    if (!v) continue;
    m.*field = as_uint(*v);
    if (!(m.*field)) return fail(std::string(key) + ": must be a non-negative integer");
  }

  for (auto [key, field] : {std::pair{"epoch", &Message::epoch}, std::pair{"path", &Message::path}}) {
    const value* v = obj.if_contains(key);
    if (!v) continue;
    if (!v->is_string()) return fail(std::string(key) + ": must be a string");
    m.*field = std::string(v->get_string());
  }

  if (value* v = obj.if_contains("payload")) {
    if (!v->is_object()) return fail("payload: must be a map");
    if (auto why = state::normalize(*v, limits.value); !why.empty()) return fail("payload: " + why);
    m.payload = std::move(v->get_object());
  } else if (m.type == Type::state_update) {
    return fail("payload: required for STATE_UPDATE");
  }
  return m;
}

}  // namespace detail
}  // namespace kasagi::protocol
