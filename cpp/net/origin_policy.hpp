// Which browser pages may open a WebSocket: the Origin allowlist (allowed_origins).
#pragma once
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>
#include <boost/beast/core/string.hpp>

namespace kasagi::net {

// True if a request with this `Origin` header may connect: no allowlist, no Origin header
// (not a browser: Origin protects browsers' users, other clients can send anything), or an
// Origin equal to one listed (ignoring case, as host names do).
inline bool origin_allowed(const std::vector<std::string>& allowed, bool has_origin,
                           std::string_view origin) {
  if (allowed.empty() || !has_origin) return true;
  return std::any_of(allowed.begin(), allowed.end(), [&](const std::string& a) {
    return boost::beast::iequals(a, origin);
  });
}

}  // namespace kasagi::net
