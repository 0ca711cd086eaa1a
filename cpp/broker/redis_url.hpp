// Parsing of the Redis address setting: redis://[[user]:password@]host[:port][/db].
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kasagi::broker {

struct RedisUrl {
  std::string host;
  std::uint16_t port = 6379;
  std::string user;      // "" = the default user (AUTH with the password alone)
  std::string password;  // "" = no AUTH
  unsigned db = 0;       // SELECTed when not 0
};

// Returns the parts of `url`. The user and password may be percent-encoded (for '@', ':' or
// '/' in a password); an IPv6 host is written in brackets ("redis://[::1]:6379").
// Throws std::invalid_argument, naming the problem, for anything else.
RedisUrl parse_redis_url(std::string_view url);

struct HostPort {
  std::string host;
  std::uint16_t port = 0;
  bool operator==(const HostPort&) const = default;
};

// Parses "HOST:PORT[,HOST:PORT...]" (an IPv6 host in brackets; spaces around commas are
// ignored), the addresses of Sentinels or Cluster seeds. `what` names the setting in
// errors. Throws std::invalid_argument, naming the problem, for an empty list or a bad entry.
std::vector<HostPort> parse_host_list(std::string_view list, std::string_view what);

}  // namespace kasagi::broker
