// Remembers, for every leaf location written recently, the version that last wrote it and
// who wrote it, so an optimistic STATE_UPDATE ("I based this on version v") can be refused
// with CONFLICT when someone else changed a field it writes after v.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>
#include "state/json_pointer.hpp"

namespace kasagi::room {

class ConflictIndex {
 public:
  // `window`: how many versions of history are kept; older entries are forgotten, and a
  // check based on a version older than what was forgotten is answered "conflict".
  explicit ConflictIndex(std::uint32_t window) : window_(window) {}

  // Records that `writer` ("" = the server) wrote `leaves` in `version`.
  void record(const std::vector<state::Path>& leaves, std::uint64_t version,
              std::string_view writer);

  // Returns true if any location overlapping one of `leaves` (the same location, one of its
  // ancestors, or one of its descendants) was written after `since` by someone other than
  // `writer`, or if `since` is more than `window` versions behind `current` (too old to
  // decide).
  bool conflicts(const std::vector<state::Path>& leaves, std::uint64_t since,
                 std::uint64_t current, std::string_view writer) const;

 private:
  struct Write {
    std::uint64_t version;
    std::string writer;
  };
  void prune(std::uint64_t current);

  std::uint32_t window_;
  std::uint64_t forgotten_up_to_ = 0;  // entries with version <= this were dropped
  std::map<std::string, Write, std::less<>> writes_;  // key: JSON Pointer of the leaf
  std::string key_;  // record()'s scratch buffer
};

}  // namespace kasagi::room
