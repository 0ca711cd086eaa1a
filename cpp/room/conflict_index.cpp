#include "room/conflict_index.hpp"

namespace kasagi::room {

void ConflictIndex::write(Leaf leaf, std::uint64_t version, std::string_view writer) {
  Node* node = &root_;
  for (const auto& key : leaf) {
    auto it = node->children.find(key);
    if (it == node->children.end()) it = node->children.try_emplace(key).first;
    node = &it->second;
  }
  if (node == &root_) return;  // no location below the root: nothing a check looks at
  if (node->version == 0) ++entries_;
  node->version = version;
  if (node->writer != writer) node->writer.assign(writer);
}

void ConflictIndex::record(Leaf leaf, std::uint64_t version, std::string_view writer) {
  write(leaf, version, writer);
  // Prune in batches so the cost is amortized O(1) per write.
  if (entries_ > 1024 && version > window_ &&
      version - window_ > forgotten_up_to_ + window_ / 4) {
    forgotten_up_to_ = version - window_;
    prune(root_, forgotten_up_to_);
  }
}

void ConflictIndex::record(const state::LeafPaths& leaves, std::uint64_t version,
                           std::string_view writer) {
  for (std::size_t i = 0; i < leaves.size(); ++i) record(leaves[i], version, writer);
}

// Forgets the writes below `node` with version <= `horizon`, and drops the nodes left
// with nothing to remember.
void ConflictIndex::prune(Node& node, std::uint64_t horizon) {
  for (auto it = node.children.begin(); it != node.children.end();) {
    Node& child = it->second;
    prune(child, horizon);
    if (child.version != 0 && child.version <= horizon) {
      child.version = 0;
      --entries_;
    }
    if (child.version == 0 && child.children.empty())
      it = node.children.erase(it);
    else
      ++it;
  }
}

// True if a location strictly below `node` was written after `since` by another writer.
bool ConflictIndex::newer_below(const Node& node, std::uint64_t since, std::string_view writer) {
  for (const auto& [key, child] : node.children) {
    if (child.version > since && child.writer != writer) return true;
    if (newer_below(child, since, writer)) return true;
  }
  return false;
}

bool ConflictIndex::conflicts(const state::LeafPaths& leaves, std::uint64_t since,
                              std::uint64_t current, std::string_view writer) const {
  if (since < forgotten_up_to_ || (current > window_ && since < current - window_)) return true;
  for (std::size_t i = 0; i < leaves.size(); ++i) {
    // The location itself and its ancestors (/a, /a/b for /a/b/c), then its descendants.
    const Node* node = &root_;
    for (const auto& key : leaves[i]) {
      auto it = node->children.find(key);
      if (it == node->children.end()) {
        node = nullptr;
        break;
      }
      node = &it->second;
      if (node->version > since && node->writer != writer) return true;
    }
    if (node && newer_below(*node, since, writer)) return true;
  }
  return false;
}

}  // namespace kasagi::room
