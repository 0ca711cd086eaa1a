// %XX escapes of URLs (RFC 3986), decoded the same way for the WebSocket target's query
// (net/auth), static file paths (net/static_files) and redis:// credentials
// (broker/redis_url).
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace kasagi::protocol {

// `in` with every %XX escape decoded, or nullopt when one is malformed (not two hex digits).
inline std::optional<std::string> percent_decode(std::string_view in) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return std::nullopt;
    const int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

}  // namespace kasagi::protocol
