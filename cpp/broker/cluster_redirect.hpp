// Redis Cluster redirections: the error replies by which a node says that a command's slot
// is served elsewhere (MOVED: for good, update the map; ASK: during a migration, send this
// one command, preceded by ASKING, to the importing node) or is being migrated with its
// keys split between two nodes (TRYAGAIN: send it again shortly).
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>
#include "broker/redis_url.hpp"

namespace kasagi::broker {

struct Redirection {
  enum class Kind { moved, ask, tryagain };
  Kind kind = Kind::moved;
  std::uint16_t slot = 0;  // moved, ask
  HostPort node;           // moved, ask: the node to send to (host "" if the error had none)
};

// Reads "MOVED <slot> <host>:<port>", "ASK <slot> <host>:<port>" or "TRYAGAIN ..."; nullopt
// for any other error (or a malformed one). The host may be empty (":7001": the node does
// not know its own address) or an IPv6 address (the port follows the last ':').
std::optional<Redirection> parse_redirection(std::string_view error);

}  // namespace kasagi::broker
