// Declarative write rules: which locations of a room's document a client may change with
// STATE_UPDATE. Checked in C++ on every update, with no Python call.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include "state/json_pointer.hpp"

namespace kasagi::room {

// A pattern is a JSON Pointer whose segments may be `*` (any one key) or `$self` (the
// writer's playerId). A write is allowed when every leaf it touches lies at or below a
// location some pattern matches. Default: {"/players/$self"}.
class PathRules {
 public:
  // Returns nullopt and sets `error` when a pattern is not a valid JSON Pointer.
  static std::optional<PathRules> parse(const std::vector<std::string>& patterns,
                                        std::string& error);

  // True if `leaf` is at or below a location matched by a pattern, for writer `self`.
  bool allows(const state::Path& leaf, std::string_view self) const;

 private:
  std::vector<state::Path> patterns_;
};

}  // namespace kasagi::room
