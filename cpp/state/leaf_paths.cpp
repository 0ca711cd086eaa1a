#include "state/leaf_paths.hpp"

namespace kasagi::state {

void LeafPaths::assign(std::span<const std::string> prefix, const Value& patch) {
  used_ = 0;
  ends_.clear();
  stack_.assign(prefix.begin(), prefix.end());
  collect(patch);
}

void LeafPaths::add(std::span<const std::string> path) {
  for (const auto& segment : path) {
    if (used_ == segments_.size()) segments_.emplace_back();
    segments_[used_++].assign(segment);
  }
  ends_.push_back(used_);
}

void LeafPaths::collect(const Value& patch) {
  const Object* obj = patch.if_object();
  if (!obj || obj->empty()) return add(stack_);
  for (const auto& [key, value] : *obj) {
    stack_.emplace_back(key);
    collect(value);
    stack_.pop_back();
  }
}

}  // namespace kasagi::state
