#include "room/path_rules.hpp"

namespace kasagi::room {

std::optional<PathRules> PathRules::parse(const std::vector<std::string>& patterns,
                                          std::string& error) {
  PathRules rules;
  for (const auto& p : patterns) {
    auto path = state::parse_pointer(p);
    if (!path || path->empty()) {
      error = "invalid writable path pattern '" + p + "': must be a non-empty JSON Pointer";
      return std::nullopt;
    }
    rules.patterns_.push_back(std::move(*path));
  }
  return rules;
}

bool PathRules::allows(const state::Path& leaf, std::string_view self) const {
  for (const auto& pattern : patterns_) {
    if (pattern.size() > leaf.size()) continue;
    bool match = true;
    for (std::size_t i = 0; i < pattern.size() && match; ++i) {
      const auto& seg = pattern[i];
      match = seg == "*" || (seg == "$self" ? leaf[i] == self : leaf[i] == seg);
    }
    if (match) return true;
  }
  return false;
}

}  // namespace kasagi::room
