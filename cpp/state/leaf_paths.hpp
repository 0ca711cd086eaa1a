// The leaves a merge patch writes, as paths, in one buffer that a caller keeps from one
// patch to the next: a room checks and records every leaf of every update, and this way
// that costs no allocation once the buffer has grown to its patches' shape.
#pragma once
#include <cstddef>
#include <span>
#include <string>
#include <vector>
#include "state/value.hpp"

namespace kasagi::state {

class LeafPaths {
 public:
  // Replaces the contents with the path of every leaf `patch` writes when applied at
  // `prefix`: non-empty maps are descended into; every other value (null and {} included)
  // is a leaf. An empty map is a leaf because it creates a map where there was none (or a
  // scalar), so path rules and conflict checks must see it.
  void assign(std::span<const std::string> prefix, const Value& patch);

  // Appends one more leaf.
  void add(std::span<const std::string> path);

  std::size_t size() const { return ends_.size(); }
  std::span<const std::string> operator[](std::size_t i) const {
    const std::size_t begin = i == 0 ? 0 : ends_[i - 1];
    return std::span(segments_).subspan(begin, ends_[i] - begin);
  }

 private:
  void collect(const Value& patch);

  // The leaves' segments one after the other; the strings beyond `used_` are spares that
  // keep their buffers.
  std::vector<std::string> segments_;
  std::size_t used_ = 0;
  std::vector<std::size_t> ends_;  // where each leaf's segments end in segments_
  std::vector<std::string> stack_;  // the path being walked (collect's scratch)
};

}  // namespace kasagi::state
