// Remembers, for every leaf location written recently, the version that last wrote it and
// who wrote it, so an optimistic STATE_UPDATE ("I based this on version v") can be refused
// with CONFLICT when someone else changed a field it writes after v.
//
// The locations form a tree of path segments (players -> id -> field), so recording a
// write walks the path once, with no key to build, and a location written before (the
// common case: players rewrite their own fields) costs no allocation.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include "state/leaf_paths.hpp"

namespace kasagi::room {

class ConflictIndex {
 public:
  using Leaf = std::span<const std::string>;

  // `window`: how many versions of history are kept; older entries are forgotten, and a
  // check based on a version older than what was forgotten is answered "conflict".
  explicit ConflictIndex(std::uint32_t window) : window_(window) {}

  // Records that `writer` ("" = the server) wrote `leaf` (or every leaf of `leaves`) in
  // `version`.
  void record(Leaf leaf, std::uint64_t version, std::string_view writer);
  void record(const state::LeafPaths& leaves, std::uint64_t version, std::string_view writer);

  // Returns true if any location overlapping one of `leaves` (the same location, one of its
  // ancestors, or one of its descendants) was written after `since` by someone other than
  // `writer`, or if `since` is more than `window` versions behind `current` (too old to
  // decide).
  bool conflicts(const state::LeafPaths& leaves, std::uint64_t since, std::uint64_t current,
                 std::string_view writer) const;

 private:
  struct Node {
    std::uint64_t version = 0;  // of the last write of this location; 0: none remembered
    std::string writer;
    std::map<std::string, Node, std::less<>> children;
  };
  void write(Leaf leaf, std::uint64_t version, std::string_view writer);
  void prune(Node& node, std::uint64_t horizon);
  static bool newer_below(const Node& node, std::uint64_t since, std::string_view writer);

  std::uint32_t window_;
  std::uint64_t forgotten_up_to_ = 0;  // writes with version <= this were dropped
  Node root_;                          // the root location itself is never written
  std::size_t entries_ = 0;            // nodes with a write remembered
};

}  // namespace kasagi::room
