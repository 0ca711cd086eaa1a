#include "broker/channel_message.hpp"

#include <msgpack/object.hpp>
#include <msgpack/pack.hpp>
#include <msgpack/unpack.hpp>

namespace kasagi::broker {
namespace {

struct StringStream {
  std::string& out;
  void write(const char* data, std::size_t size) { out.append(data, size); }
};

void pack_str(msgpack::packer<StringStream>& pk, std::string_view s) {
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

bool as_uint(const msgpack::object& o, std::uint64_t& out) {
  if (o.type != msgpack::type::POSITIVE_INTEGER) return false;
  out = o.via.u64;
  return true;
}

bool as_bytes(const msgpack::object& o, std::string& out) {
  if (o.type == msgpack::type::STR) {
    out.assign(o.via.str.ptr, o.via.str.size);
  } else if (o.type == msgpack::type::BIN) {
    out.assign(o.via.bin.ptr, o.via.bin.size);
  } else {
    return false;
  }
  return true;
}

}  // namespace

std::string encode(const ChannelMessage& m) {
  std::string out;
  out.reserve(32 + m.frame.size() + m.from.size() + m.to.size() + m.claims.size());
  StringStream stream{out};
  msgpack::packer<StringStream> pk(stream);
  pk.pack_array(8);
  pk.pack_uint8(static_cast<std::uint8_t>(m.kind));
  pack_str(pk, m.from);
  pack_str(pk, m.to);
  pk.pack_uint64(m.conn);
  pk.pack_uint8(static_cast<std::uint8_t>(m.op));
  pk.pack_bin(static_cast<std::uint32_t>(m.frame.size()));
  pk.pack_bin_body(m.frame.data(), static_cast<std::uint32_t>(m.frame.size()));
  pk.pack_array(static_cast<std::uint32_t>(m.conns.size()));
  for (auto c : m.conns) pk.pack_uint64(c);
  pk.pack_bin(static_cast<std::uint32_t>(m.claims.size()));
  pk.pack_bin_body(m.claims.data(), static_cast<std::uint32_t>(m.claims.size()));
  return out;
}

std::optional<ChannelMessage> decode_channel_message(std::string_view bytes) {
  const std::size_t n = bytes.size();
  msgpack::unpack_limit limit(n, n, n, n, n, 4);
  msgpack::object_handle handle;
  try {
    std::size_t offset = 0;
    handle = msgpack::unpack(bytes.data(), n, offset, nullptr, nullptr, limit);
    if (offset != n) return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  const auto& root = handle.get();
  if (root.type != msgpack::type::ARRAY || root.via.array.size < 7 || root.via.array.size > 8) {
    return std::nullopt;
  }
  const auto* f = root.via.array.ptr;
  ChannelMessage m;
  std::uint64_t kind = 0, op = 0;
  if (!as_uint(f[0], kind) || kind > static_cast<std::uint64_t>(ChannelKind::broadcast) ||
      !as_bytes(f[1], m.from) || !as_bytes(f[2], m.to) || !as_uint(f[3], m.conn) ||
      !as_uint(f[4], op) || op > static_cast<std::uint64_t>(InputOp::detach) ||
      !as_bytes(f[5], m.frame) || f[6].type != msgpack::type::ARRAY) {
    return std::nullopt;
  }
  m.kind = static_cast<ChannelKind>(kind);
  m.op = static_cast<InputOp>(op);
  for (std::uint32_t i = 0; i < f[6].via.array.size; ++i) {
    std::uint64_t c = 0;
    if (!as_uint(f[6].via.array.ptr[i], c)) return std::nullopt;
    m.conns.push_back(c);
  }
  if (root.via.array.size == 8 && !as_bytes(f[7], m.claims)) return std::nullopt;
  return m;
}

}  // namespace kasagi::broker
