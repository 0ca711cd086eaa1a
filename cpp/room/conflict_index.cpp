#include "room/conflict_index.hpp"

namespace kasagi::room {

void ConflictIndex::record(const std::vector<state::Path>& leaves, std::uint64_t version,
                           std::string_view writer) {
  for (const auto& leaf : leaves) {
    // A key written before (the common case: players rewrite their own fields) costs no
    // allocation: the pointer is built in key_'s buffer and looked up as it is.
    key_.clear();
    state::append_pointer(key_, leaf);
    auto it = writes_.find(key_);
    if (it == writes_.end()) it = writes_.try_emplace(key_).first;
    it->second.version = version;
    if (it->second.writer != writer) it->second.writer.assign(writer);
  }
  // Prune in batches so the cost is amortized O(1) per write.
  if (writes_.size() > 1024 && version > window_ &&
      version - window_ > forgotten_up_to_ + window_ / 4) {
    prune(version);
  }
}

void ConflictIndex::prune(std::uint64_t current) {
  const std::uint64_t horizon = current - window_;
  for (auto it = writes_.begin(); it != writes_.end();) {
    if (it->second.version <= horizon) it = writes_.erase(it);
    else ++it;
  }
  forgotten_up_to_ = horizon;
}

bool ConflictIndex::conflicts(const std::vector<state::Path>& leaves, std::uint64_t since,
                              std::uint64_t current, std::string_view writer) const {
  if (since < forgotten_up_to_ || (current > window_ && since < current - window_)) return true;
  auto newer_by_other = [&](const Write& w) { return w.version > since && w.writer != writer; };
  for (const auto& leaf : leaves) {
    const std::string key = state::format_pointer(leaf);
    // The location itself and its ancestors ("/a", "/a/b" for "/a/b/c").
    for (std::size_t cut = 1; cut <= key.size(); ++cut) {
      if (cut != key.size() && key[cut] != '/') continue;
      auto it = writes_.find(std::string_view(key).substr(0, cut));
      if (it != writes_.end() && newer_by_other(it->second)) return true;
    }
    // Its descendants: keys starting with key + "/" ('0' is the character after '/').
    for (auto it = writes_.lower_bound(key + "/"); it != writes_.end() &&
                                                   it->first < key + "0";
         ++it) {
      if (newer_by_other(it->second)) return true;
    }
  }
  return false;
}

}  // namespace kasagi::room
