// JSON Merge Patch (RFC 7386) over documents: apply and diff. Sans-I/O, no allocation
// beyond the values themselves.
#pragma once
#include <string>
#include "state/value.hpp"

namespace kasagi::state {

// Applies `patch` to `target` in place, as RFC 7386 section 2 defines it: a map merges key by
// key, null deletes a key, anything else (scalars, arrays) replaces. A non-object `patch`
// replaces `target` whole. Returns true if `target` changed (writing an equal value is not a
// change).
bool apply_merge_patch(Value& target, const Value& patch);

// Returns the minimal merge patch that turns `from` into `to`: only the changed leaves,
// null for removed keys, and an empty object when they are equal. When either is not an
// object the patch is `to` itself (a whole replacement).
Value merge_patch_diff(const Value& from, const Value& to);

// Limits a value taken from the network must respect before it may enter a document.
struct ValueLimits {
  std::size_t max_depth = 32;  // maps and arrays nested deeper are refused
};

// Checks that `v` may be stored in a document: finite floats, integers within int64, depth
// within limits. Rewrites uint64 values that fit into int64 so equal numbers compare equal.
// Returns an empty string when valid, or a short reason ("integer out of range").
std::string normalize(Value& v, const ValueLimits& limits = {});

}  // namespace kasagi::state
