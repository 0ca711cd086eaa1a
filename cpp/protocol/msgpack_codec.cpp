// The MessagePack format (subprotocol kasagi.v1.msgpack): one map per binary frame.
// Integers and floats stay distinct: a MessagePack int becomes an int64 (uint64 when it does
// not fit) and a float becomes a double, and the encoder writes them back the same way.
#include <bit>
#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>
#include <msgpack/object.hpp>
#include <msgpack/pack.hpp>
#include <msgpack/unpack.hpp>
#include "protocol/formats.hpp"

namespace kasagi::protocol::detail {
namespace {

using boost::json::value;

// msgpack::packer's output stream: appends to a string.
struct StringStream {
  std::string& out;
  void write(const char* data, std::size_t size) { out.append(data, size); }
};
using Packer = msgpack::packer<StringStream>;

void pack_string(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

// msgpack-c's pack_double writes a double with an integral value (3.0) as an integer, but
// floats must stay floats on the wire: float64 is written here instead. `out` is the
// string `pk` writes to.
void pack_float64(std::string& out, double d) {
  auto bits = std::bit_cast<std::uint64_t>(d);
  char buf[9];
  buf[0] = static_cast<char>(0xcb);
  for (int i = 0; i < 8; ++i) buf[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
  out.append(buf, sizeof buf);
}

// Packs `v` with `pk`, which writes to `out`.
void pack_value(Packer& pk, std::string& out, const value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      pk.pack_nil();
      break;
    case boost::json::kind::bool_:
      v.get_bool() ? pk.pack_true() : pk.pack_false();
      break;
    case boost::json::kind::int64:
      pk.pack_int64(v.get_int64());  // the packer picks the shortest int encoding
      break;
    case boost::json::kind::uint64:
      pk.pack_uint64(v.get_uint64());
      break;
    case boost::json::kind::double_:
      pack_float64(out, v.get_double());
      break;
    case boost::json::kind::string:
      pack_string(pk, v.get_string());
      break;
    case boost::json::kind::array:
      pk.pack_array(static_cast<std::uint32_t>(v.get_array().size()));
      for (const auto& item : v.get_array()) pack_value(pk, out, item);
      break;
    case boost::json::kind::object:
      pk.pack_map(static_cast<std::uint32_t>(v.get_object().size()));
      for (const auto& [key, item] : v.get_object()) {
        pack_string(pk, key);
        pack_value(pk, out, item);
      }
      break;
  }
}

// The text of a STR object. An empty string may have a null pointer, which must not reach
// memcpy (undefined behaviour, found by fuzz/decode.cpp): it becomes "".
std::string_view str_of(const msgpack::object& o) {
  return o.via.str.size ? std::string_view(o.via.str.ptr, o.via.str.size) : std::string_view("");
}

// Returns true when `s` is well-formed UTF-8 (no overlong forms, surrogates or code points
// above U+10FFFF), as JSON requires of every string.
bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int extra;
    unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return false;
    }
    if (end - p <= extra || p[1] < lo || p[1] > hi) return false;
    for (int i = 2; i <= extra; ++i)
      if ((p[i] & 0xC0) != 0x80) return false;
    p += extra + 1;
  }
  return true;
}

// Converts `o` into `out`. Returns an empty string, or why `o` has no JSON equivalent.
std::string to_value(const msgpack::object& o, value& out) {
  switch (o.type) {
    case msgpack::type::NIL:
      out = nullptr;
      return {};
    case msgpack::type::BOOLEAN:
      out = o.via.boolean;
      return {};
    case msgpack::type::POSITIVE_INTEGER:
      if (o.via.u64 <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        out = static_cast<std::int64_t>(o.via.u64);
      else
        out = o.via.u64;
      return {};
    case msgpack::type::NEGATIVE_INTEGER:
      out = o.via.i64;
      return {};
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      out = o.via.f64;
      return {};
    case msgpack::type::STR: {
      const std::string_view s = str_of(o);
      if (!valid_utf8(s)) return "strings must be valid UTF-8";
      out = s;
      return {};
    }
    case msgpack::type::ARRAY: {
      auto& array = out.emplace_array();
      array.resize(o.via.array.size);
      for (std::uint32_t i = 0; i < o.via.array.size; ++i)
        if (auto why = to_value(o.via.array.ptr[i], array[i]); !why.empty()) return why;
      return {};
    }
    case msgpack::type::MAP: {
      auto& object = out.emplace_object();
      object.reserve(o.via.map.size);
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR) return "map keys must be strings";
        const std::string_view key = str_of(kv.key);
        if (!valid_utf8(key)) return "strings must be valid UTF-8";
        if (auto why = to_value(kv.val, object[key]); !why.empty()) return why;
      }
      return {};
    }
    case msgpack::type::BIN:
      return "bin values are not allowed";
    case msgpack::type::EXT:
      return "ext values are not allowed";
  }
  return "unknown MessagePack type";
}

// Tells msgpack::unpack to reference strings in the input instead of copying them: the
// input outlives the msgpack objects, which are converted before decode returns.
bool reference_input(msgpack::type::object_type, std::size_t, void*) { return true; }

// Converts the frame's top-level map into `frame` key by key, so that an error in one value
// still lets the others (requestId, roomId) be echoed. Returns the first error, if any.
std::string to_frame(const msgpack::object& o, boost::json::object& frame) {
  std::string first_error;
  for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
    const auto& kv = o.via.map.ptr[i];
    if (kv.key.type != msgpack::type::STR || !valid_utf8(str_of(kv.key))) {
      if (first_error.empty()) first_error = "frame: map keys must be UTF-8 strings";
      continue;
    }
    const std::string_view key = str_of(kv.key);
    value v;
    if (auto why = to_value(kv.val, v); !why.empty()) {
      if (first_error.empty()) first_error = std::string(key) + ": " + why;
      continue;
    }
    frame.insert_or_assign(key, std::move(v));
  }
  return first_error;
}

// The common case, without the generic frame: a well-formed frame whose keys are all
// envelope keys, each once, with values of the right type, becomes its Message directly.
// Returns nullopt for anything else (an unknown or repeated key, a wrong type, a payload
// value normalize() would change or refuse, ...): decode_frame then decides, so errors
// and their messages come from one place for both formats.
std::optional<Message> to_message(const msgpack::object& o, const DecodeLimits& limits) {
  enum : unsigned { k_type = 1, k_room = 2, k_payload = 4, k_path = 8, k_epoch = 16, k_uint = 32 };
  Message m;
  unsigned seen = 0;
  auto first = [&seen](unsigned bit) {  // marks `bit` seen; false if it was already
    const bool again = seen & bit;
    seen |= bit;
    return !again;
  };
  for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
    const auto& [k, v] = o.via.map.ptr[i];
    if (k.type != msgpack::type::STR) return std::nullopt;
    const std::string_view key = str_of(k);
    const bool text = v.type == msgpack::type::STR;
    if (key == "type") {
      if (!text || !first(k_type)) return std::nullopt;
      auto t = type_from_string(str_of(v));
      if (!t) return std::nullopt;
      m.type = *t;
    } else if (key == "roomId") {
      if (!text || !first(k_room) || !valid_room_id(str_of(v))) return std::nullopt;
      m.room_id = str_of(v);
    } else if (key == "payload") {
      if (v.type != msgpack::type::MAP || !first(k_payload)) return std::nullopt;
      value payload;
      if (!to_value(v, payload).empty()) return std::nullopt;
      if (!state::normalize(payload, limits.value).empty()) return std::nullopt;
      m.payload = std::move(payload.get_object());
    } else if (key == "path" || key == "epoch") {
      const bool path = key == "path";
      if (!text || !first(path ? k_path : k_epoch) || !valid_utf8(str_of(v))) return std::nullopt;
      (path ? m.path : m.epoch) = std::string(str_of(v));
    } else {
      std::size_t j = 0;
      while (j < std::size(kUintFields) && kUintFields[j].key != key) ++j;
      if (j == std::size(kUintFields) || v.type != msgpack::type::POSITIVE_INTEGER ||
          !first(k_uint << j)) {
        return std::nullopt;
      }
      m.*(kUintFields[j].field) = v.via.u64;
    }
  }
  if (!(seen & k_type) || (!(seen & k_room) && requires_room(m.type)) ||
      (!(seen & k_payload) && m.type == Type::state_update)) {
    return std::nullopt;
  }
  return m;
}

DecodeError not_msgpack(std::string_view why) {
  return frame_error(nullptr, ErrorCode::bad_message,
                     "frame is not valid MessagePack: " + std::string(why));
}

}  // namespace

std::string encode_msgpack(const Message& m) {
  std::string out;
  out.reserve(256);
  StringStream stream{out};
  Packer pk(stream);
  std::uint32_t fields = 1 + !m.room_id.empty() + m.payload.has_value() + m.version.has_value() +
                         m.base_version.has_value() + m.tick.has_value() + m.epoch.has_value() +
                         m.request_id.has_value() + m.timestamp.has_value() + m.path.has_value();
  pk.pack_map(fields);
  pack_string(pk, "type");
  pack_string(pk, to_string(m.type));
  if (!m.room_id.empty()) {
    pack_string(pk, "roomId");
    pack_string(pk, m.room_id);
  }
  if (m.payload) {
    pack_string(pk, "payload");
    pk.pack_map(static_cast<std::uint32_t>(m.payload->size()));
    for (const auto& [key, item] : *m.payload) {
      pack_string(pk, key);
      pack_value(pk, out, item);
    }
  }
  auto pack_uint = [&](std::string_view key, const std::optional<std::uint64_t>& v) {
    if (!v) return;
    pack_string(pk, key);
    pk.pack_uint64(*v);
  };
  auto pack_text = [&](std::string_view key, const std::optional<std::string>& v) {
    if (!v) return;
    pack_string(pk, key);
    pack_string(pk, *v);
  };
  pack_uint("version", m.version);
  pack_uint("baseVersion", m.base_version);
  pack_uint("tick", m.tick);
  pack_text("epoch", m.epoch);
  pack_uint("requestId", m.request_id);
  pack_uint("timestamp", m.timestamp);
  pack_text("path", m.path);
  return out;
}

DecodeResult decode_msgpack(std::string_view bytes, const DecodeLimits& limits) {
  // No legitimate frame holds a string, or more elements, than it has bytes, so the frame's
  // size bounds what the unpacker may allocate for a hostile length prefix.
  const std::size_t n = bytes.size();
  msgpack::unpack_limit limit(n, n, n, n, n, frame_depth_limit(limits));
  // One zone per thread, emptied after each frame: its first chunk is reused, so a frame
  // costs no zone allocation (the objects are converted before decode returns).
  thread_local msgpack::zone zone;
  struct Clear {
    ~Clear() { zone.clear(); }
  } clear_after;
  msgpack::object root;
  std::size_t offset = 0;
  try {
    root = msgpack::unpack(zone, bytes.data(), n, offset, reference_input, nullptr, limit);
  } catch (const msgpack::insufficient_bytes&) {
    return not_msgpack("truncated");
  } catch (const msgpack::depth_size_overflow&) {
    return frame_error(nullptr, ErrorCode::bad_message, too_deep_message(limits));
  } catch (const msgpack::size_overflow&) {
    return not_msgpack("a length exceeds the frame's size");
  } catch (const msgpack::unpack_error& e) {
    return not_msgpack(e.what());
  }
  if (offset != n) return not_msgpack("trailing bytes after the first value");
  if (root.type != msgpack::type::MAP)
    return frame_error(nullptr, ErrorCode::bad_message, "frame: must be a map");
  if (auto m = to_message(root, limits)) return std::move(*m);
  value frame(boost::json::object_kind);
  if (auto why = to_frame(root, frame.get_object()); !why.empty())
    return frame_error(&frame.get_object(), ErrorCode::bad_message, std::move(why));
  return decode_frame(std::move(frame), limits);
}

}  // namespace kasagi::protocol::detail

namespace kasagi::protocol {

std::string encode_value(const state::Value& v) {
  std::string out;
  detail::StringStream stream{out};
  detail::Packer pk(stream);
  detail::pack_value(pk, out, v);
  return out;
}

std::optional<state::Value> decode_value(std::string_view bytes) {
  msgpack::object_handle handle;
  try {
    std::size_t offset = 0;
    handle = msgpack::unpack(bytes.data(), bytes.size(), offset);
    if (offset != bytes.size()) return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  state::Value out;
  if (!detail::to_value(handle.get(), out).empty()) return std::nullopt;
  return out;
}

}  // namespace kasagi::protocol
