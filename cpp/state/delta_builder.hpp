// The delta engine: applies many merge patches to a document during one tick and then
// produces the single minimal merge patch ("delta") that takes the document from its state
// at the start of the tick to its state now. A field written three times appears once with
// its last value; a field changed and changed back does not appear at all.
//
// How: the first time a patch overwrites a location in this tick, the location's previous
// value is remembered (a copy of that subtree only). take() diffs each remembered location
// against its current value. Cost: O(size of what was overwritten), not O(document). The
// tree of locations is kept from one batch to the next, emptied: rewriting the same fields
// every tick allocates no node.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include "state/json_pointer.hpp"
#include "state/value.hpp"

namespace kasagi::state {

class DeltaBuilder {
 public:
  // Applies `patch` (a merge patch) at `path` inside `doc`, creating intermediate maps as
  // needed (a non-map in the way is replaced by a map). `patch` may be any value: a
  // non-object replaces the value at `path`, null deletes it (path must then be non-empty).
  // Returns true if `doc` changed.
  bool apply(Object& doc, std::span<const std::string> path, const Value& patch);

  // True when nothing was changed since the last take().
  bool empty() const;

  // Returns the minimal merge patch from the document as it was at the previous take() (or
  // construction) to `doc` now, and starts a new batch. Returns an empty object when the
  // changes cancelled out.
  Object take(const Object& doc);

 private:
  struct Node {
    bool captured = false;          // the old value of this location is remembered
    std::optional<Value> old;       // that old value; nullopt = the key did not exist
    mutable std::uint32_t at = 0;   // where the key was last found in its map (a guess)
    std::map<std::string, Node, std::less<>> children;
  };
  Node root_;
  bool dirty_ = false;
};

}  // namespace kasagi::state
