// Parsing of the Redis address setting: redis://[[user]:password@]host[:port][/db].
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

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

}  // namespace kasagi::broker
