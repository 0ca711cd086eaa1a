#include "state/merge_patch.hpp"

#include <cmath>
#include <cstdint>
#include <limits>

namespace kasagi::state {

bool apply_merge_patch(Value& target, const Value& patch) {
  if (!patch.is_object()) {
    if (target == patch) return false;
    target = patch;
    return true;
  }
  bool changed = false;
  if (!target.is_object()) {
    target.emplace_object();
    changed = true;
  }
  Object& obj = target.get_object();
  for (const auto& [key, value] : patch.get_object()) {
    if (value.is_null()) {
      changed |= obj.erase(key) != 0;
      continue;
    }
    if (Value* cur = obj.if_contains(key)) {
      changed |= apply_merge_patch(*cur, value);
      continue;
    }
    // A new key: a map patch is applied to an empty map so that its nulls are dropped.
    Value& fresh = obj[key];
    if (value.is_object())
      apply_merge_patch(fresh, value);
    else
      fresh = value;
    changed = true;
  }
  return changed;
}

Value merge_patch_diff(const Value& from, const Value& to) {
  if (!from.is_object() || !to.is_object()) return to;
  const Object& a = from.get_object();
  const Object& b = to.get_object();
  Object patch;
  for (const auto& [key, _] : a)
    if (!b.contains(key)) patch[key] = nullptr;
  for (const auto& [key, value] : b) {
    const Value* old = a.if_contains(key);
    if (!old) {
      patch[key] = value;
    } else if (old->is_object() && value.is_object()) {
      Value sub = merge_patch_diff(*old, value);
      if (!sub.get_object().empty()) patch[key] = std::move(sub);
    } else if (*old != value) {
      patch[key] = value;
    }
  }
  return patch;
}

namespace {

std::string too_deep(const ValueLimits& limits) {
  return "nested deeper than " + std::to_string(limits.max_depth) + " levels";
}

// Returns an empty string when `v` (at nesting level `depth`, counting the maps and arrays
// around it) is valid, or the reason it is not.
std::string normalize_at(Value& v, std::size_t depth, const ValueLimits& limits) {
  switch (v.kind()) {
    case boost::json::kind::uint64:
      if (v.get_uint64() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        return "integer out of range";
      v = static_cast<std::int64_t>(v.get_uint64());
      return {};
    case boost::json::kind::double_:
      return std::isfinite(v.get_double()) ? std::string() : "non-finite number";
    case boost::json::kind::array:
      if (depth + 1 > limits.max_depth) return too_deep(limits);
      for (auto& item : v.get_array())
        if (auto why = normalize_at(item, depth + 1, limits); !why.empty()) return why;
      return {};
    case boost::json::kind::object:
      if (depth + 1 > limits.max_depth) return too_deep(limits);
      for (auto& member : v.get_object())
        if (auto why = normalize_at(member.value(), depth + 1, limits); !why.empty()) return why;
      return {};
    default:  // null, bool, int64, string
      return {};
  }
}

}  // namespace

std::string normalize(Value& v, const ValueLimits& limits) { return normalize_at(v, 0, limits); }

}  // namespace kasagi::state
