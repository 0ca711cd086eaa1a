#include "broker/redis_url.hpp"

#include <charconv>
#include <stdexcept>
#include "protocol/percent_decode.hpp"

namespace kasagi::broker {
namespace {

[[noreturn]] void bad(std::string_view url, const std::string& why) {
  throw std::invalid_argument("invalid Redis URL '" + std::string(url) + "': " + why +
                              " (expected redis://[[user]:password@]host[:port][/db])");
}

template <class T>
bool parse_number(std::string_view s, T& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

// Decodes %XX escapes into `out`; returns false for a malformed one.
bool percent_decode(std::string_view in, std::string& out) {
  auto decoded = protocol::percent_decode(in);
  if (decoded) out = std::move(*decoded);
  return decoded.has_value();
}

}  // namespace

RedisUrl parse_redis_url(std::string_view url) {
  constexpr std::string_view kScheme = "redis://";
  if (!url.starts_with(kScheme)) bad(url, "it must start with redis://");
  std::string_view rest = url.substr(kScheme.size());
  RedisUrl out;

  // Credentials end at the last '@' (an unencoded '@' in a password is then still accepted).
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = cred.find(':');
    const bool has_user = colon != std::string_view::npos;
    std::string_view user = has_user ? cred.substr(0, colon) : std::string_view{};
    std::string_view password = has_user ? cred.substr(colon + 1) : cred;
    if (!percent_decode(user, out.user) || !percent_decode(password, out.password)) {
      bad(url, "malformed %-escape in the credentials");
    }
  }

  std::string_view hostport = rest.substr(0, rest.find('/'));
  if (hostport.size() < rest.size()) {
    std::string_view db = rest.substr(hostport.size() + 1);
    if (!db.empty() && !parse_number(db, out.db)) bad(url, "the database must be a number");
  }

  std::string_view port;
  if (hostport.starts_with('[')) {
    auto close = hostport.find(']');
    if (close == std::string_view::npos) bad(url, "missing ']' after the IPv6 address");
    out.host = hostport.substr(1, close - 1);
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) bad(url, "unexpected text after ']'");
      port = after.substr(1);
      if (port.empty()) bad(url, "empty port");
    }
  } else {
    auto colon = hostport.find(':');
    out.host = hostport.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = hostport.substr(colon + 1);
      if (port.empty()) bad(url, "empty port");
    }
  }
  if (out.host.empty()) bad(url, "missing host");
  if (!port.empty() && (!parse_number(port, out.port) || out.port == 0)) {
    bad(url, "the port must be a number from 1 to 65535");
  }
  return out;
}

std::vector<HostPort> parse_host_list(std::string_view list, std::string_view what) {
  auto bad_entry = [&](std::string_view entry, const std::string& why) {
    throw std::invalid_argument(std::string(what) + ": '" + std::string(entry) + "' " + why +
                                " (expected HOST:PORT[,HOST:PORT...])");
  };
  std::vector<HostPort> out;
  if (list.find_first_not_of(' ') == std::string_view::npos) {
    throw std::invalid_argument(std::string(what) + ": no address given (expected "
                                "HOST:PORT[,HOST:PORT...])");
  }
  while (true) {
    const auto comma = list.find(',');
    std::string_view entry = list.substr(0, comma);
    while (!entry.empty() && entry.front() == ' ') entry.remove_prefix(1);
    while (!entry.empty() && entry.back() == ' ') entry.remove_suffix(1);
    HostPort hp;
    std::string_view port;
    if (entry.starts_with('[')) {  // [IPv6]:port
      const auto close = entry.find(']');
      if (close == std::string_view::npos || entry.substr(close + 1, 1) != ":") {
        bad_entry(entry, "is not [IPv6]:PORT");
      }
      hp.host = entry.substr(1, close - 1);
      port = entry.substr(close + 2);
    } else {
      const auto colon = entry.rfind(':');
      if (colon == std::string_view::npos) bad_entry(entry, "has no port");
      hp.host = entry.substr(0, colon);
      port = entry.substr(colon + 1);
    }
    if (hp.host.empty()) bad_entry(entry, "has no host");
    if (!parse_number(port, hp.port) || hp.port == 0) {
      bad_entry(entry, "needs a port from 1 to 65535");
    }
    out.push_back(std::move(hp));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace kasagi::broker
