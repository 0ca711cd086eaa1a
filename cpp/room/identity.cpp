#include "room/identity.hpp"

#include "protocol/message.hpp"

namespace kasagi::room {

bool glob_match(std::string_view pattern, std::string_view text) {
  // Greedy with backtracking to the last `*`: linear in practice, O(n*m) at worst.
  std::size_t p = 0, t = 0;
  std::size_t star = std::string_view::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool Identity::may_join(std::string_view room_id) const {
  if (!rooms) return true;
  for (const auto& pattern : *rooms) {
    if (glob_match(pattern, room_id)) return true;
  }
  return false;
}

std::variant<Identity, std::string> Identity::from_claims(state::Object claims) {
  Identity id;
  if (const auto* sub = claims.if_contains("sub")) {
    // The player id becomes a key of the document and a JSON Pointer segment: keep it to
    // the characters room ids may use.
    if (!sub->is_string() || !protocol::valid_room_id(sub->get_string())) {
      return std::string("claim sub: must be 1..128 characters of [A-Za-z0-9_.:-]");
    }
    id.player_id = std::string(sub->get_string());
  }
  if (const auto* rooms = claims.if_contains("rooms")) {
    const auto* list = rooms->if_array();
    if (!list) return std::string("claim rooms: must be an array of room patterns");
    id.rooms.emplace();
    for (const auto& pattern : *list) {
      if (!pattern.is_string()) return std::string("claim rooms: must be an array of strings");
      id.rooms->emplace_back(pattern.get_string());
    }
  }
  if (const auto* write = claims.if_contains("write")) {
    if (!write->is_bool()) return std::string("claim write: must be true or false");
    id.may_write = write->get_bool();
  }
  id.claims = std::move(claims);
  return id;
}

}  // namespace kasagi::room
