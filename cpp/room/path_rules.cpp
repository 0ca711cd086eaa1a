#include "room/path_rules.hpp"

#include <cmath>
#include <sstream>

namespace kasagi::room {

namespace {

enum Kind : unsigned { k_null = 1, k_bool = 2, k_int = 4, k_number = 8, k_string = 16,
                       k_array = 32, k_map = 64 };

// The kind bits `v` satisfies (an int is a number too).
unsigned kinds_of(const state::Value& v) {
  switch (v.kind()) {
    case boost::json::kind::null: return k_null;
    case boost::json::kind::bool_: return k_bool;
    case boost::json::kind::int64:
    case boost::json::kind::uint64: return k_int | k_number;
    case boost::json::kind::double_: return k_number;
    case boost::json::kind::string: return k_string;
    case boost::json::kind::array: return k_array;
    case boost::json::kind::object: return k_map;
  }
  return 0;
}

std::string type_list(unsigned types) {
  std::string out;
  const auto& names = PathRules::kinds();
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!(types & (1u << i))) continue;
    if (!out.empty()) out += " or ";
    out += names[i];
  }
  return out;
}

std::string number(double d) {
  std::ostringstream s;
  s << d;
  return s.str();
}

}  // namespace

const std::vector<std::string_view>& PathRules::kinds() {
  static const std::vector<std::string_view> names = {"null",   "bool",  "int", "number",
                                                      "string", "array", "map"};
  return names;
}

std::optional<PathRules> PathRules::parse(const std::vector<std::string>& patterns,
                                          std::string& error) {
  PathRules rules;
  for (const auto& p : patterns) {
    if (!rules.add(p, {}, std::nullopt, std::nullopt, error)) return std::nullopt;
  }
  return rules;
}

bool PathRules::add(const std::string& pattern, const std::vector<std::string>& types,
                    std::optional<double> min, std::optional<double> max, std::string& error) {
  auto path = state::parse_pointer(pattern);
  if (!path || path->empty()) {
    error = "invalid writable path pattern '" + pattern + "': must be a non-empty JSON Pointer";
    return false;
  }
  Rule rule{std::move(*path), 0, min, max};
  for (const auto& t : types) {
    const auto& names = kinds();
    std::size_t i = 0;
    while (i < names.size() && names[i] != t) ++i;
    if (i == names.size()) {
      error = "path rule '" + pattern + "': unknown type '" + t +
              "' (one of null, bool, int, number, string, array, map)";
      return false;
    }
    rule.types |= 1u << i;
  }
  if ((min && !std::isfinite(*min)) || (max && !std::isfinite(*max)) ||
      (min && max && *min > *max)) {
    error = "path rule '" + pattern + "': min and max must be finite, min <= max";
    return false;
  }
  rules_.push_back(std::move(rule));
  return true;
}

const PathRules::Rule* PathRules::match(std::span<const std::string> leaf,
                                        std::string_view self) const {
  const Rule* best = nullptr;
  for (const auto& rule : rules_) {
    const auto& pattern = rule.pattern;
    if (pattern.size() > leaf.size()) continue;
    if (best && best->pattern.size() >= pattern.size()) continue;
    bool match = true;
    for (std::size_t i = 0; i < pattern.size() && match; ++i) {
      const auto& seg = pattern[i];
      match = seg == "*" || (seg == "$self" ? leaf[i] == self : leaf[i] == seg);
    }
    if (match) best = &rule;
  }
  return best;
}

bool PathRules::allows(std::span<const std::string> leaf, std::string_view self) const {
  return match(leaf, self) != nullptr;
}

std::string PathRules::check(std::span<const std::string> leaf, const state::Value& value,
                             std::string_view self) const {
  const Rule* rule = match(leaf, self);
  if (!rule) return "is not writable by this player";
  if (!rule->types && !rule->min && !rule->max) return {};
  // Below the rule's location the patch puts a map there.
  const bool deeper = rule->pattern.size() < leaf.size();
  const unsigned got = deeper ? unsigned(k_map) : kinds_of(value);
  if (rule->types && !(rule->types & got)) return "must be " + type_list(rule->types);
  if (!deeper && (got & k_number) && (rule->min || rule->max)) {
    const double d = value.is_double() ? value.get_double()
                     : value.is_int64() ? static_cast<double>(value.get_int64())
                                        : static_cast<double>(value.get_uint64());
    if (rule->min && d < *rule->min) return "must be at least " + number(*rule->min);
    if (rule->max && d > *rule->max) return "must be at most " + number(*rule->max);
  }
  return {};
}

}  // namespace kasagi::room
