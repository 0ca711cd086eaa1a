// Who is behind a connection, as a verified token says (docs/security.md, "Claims"): the
// player id, the rooms it may join, whether it may write, and every claim as given, for
// validation hooks. An anonymous connection (no authentication configured) has the default
// Identity: any room, may write, the room picks its player id.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>
#include "state/value.hpp"

namespace kasagi::room {

struct Identity {
  std::string player_id;  // from `sub`; empty: the room picks a random one
  std::optional<std::vector<std::string>> rooms;  // from `rooms`; nullopt: any room
  bool may_write = true;                          // from `write`
  state::Object claims;                           // all verified claims (empty: anonymous)

  // True if `room_id` matches one of `rooms` (`*` matches any run of characters).
  bool may_join(std::string_view room_id) const;

  // Reads the Kasagi claims out of a verified token's claims. Returns the identity, or why
  // the claims cannot be used (a claim of the wrong type, a malformed player id).
  static std::variant<Identity, std::string> from_claims(state::Object claims);
};

// True if `text` matches `pattern`, where `*` matches any run of characters (none included)
// and every other character itself.
bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace kasagi::room
