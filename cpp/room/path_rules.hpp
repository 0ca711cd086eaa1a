// Declarative write rules: which locations of a room's document a client may change with
// STATE_UPDATE, and what values they may hold there. Checked in C++ on every update, with
// no Python call (a room type's hooks, if any, run only after its rules accepted a patch).
#pragma once
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include "state/json_pointer.hpp"
#include "state/value.hpp"

namespace kasagi::room {

// A pattern is a JSON Pointer whose segments may be `*` (any one key) or `$self` (the
// writer's playerId). A write is allowed when every leaf it touches lies at or below a
// location some pattern matches. Default: {"/players/$self"}.
//
// A rule may also constrain the value written at the location it matches: its types (any
// of null, bool, int, number (int or float), string, array, map) and, for numbers, a
// minimum and a maximum (inclusive). A leaf is judged by the longest pattern that matches
// it (the first declared among equals), so `/players/$self` with `/players/$self/x` as a
// number between 0 and 100 lets a player write anything in its entry, x only as such a
// number. Writing below a typed location makes the value there a map.
class PathRules {
 public:
  struct Rule {
    state::Path pattern;
    unsigned types = 0;  // bits of kinds(); 0 = any value
    std::optional<double> min, max;
  };

  // Returns nullopt and sets `error` when a pattern is not a valid JSON Pointer.
  static std::optional<PathRules> parse(const std::vector<std::string>& patterns,
                                        std::string& error);

  // Adds one rule. Returns false and sets `error` when `pattern` is not a non-empty JSON
  // Pointer or a type name is unknown.
  bool add(const std::string& pattern, const std::vector<std::string>& types,
           std::optional<double> min, std::optional<double> max, std::string& error);

  // True if `leaf` is at or below a location matched by a pattern, for writer `self`.
  bool allows(std::span<const std::string> leaf, std::string_view self) const;

  // Checks a write of `value` at `leaf` (a leaf of a patch: `value` is what the patch puts
  // there) by writer `self`. Returns "" if allowed, or why not: "is not writable by this
  // player", "must be a number", "must be at most 100", ...
  std::string check(std::span<const std::string> leaf, const state::Value& value,
                    std::string_view self) const;

  // The type names add() accepts, in bit order.
  static const std::vector<std::string_view>& kinds();

 private:
  const Rule* match(std::span<const std::string> leaf, std::string_view self) const;
  std::vector<Rule> rules_;
};

}  // namespace kasagi::room
