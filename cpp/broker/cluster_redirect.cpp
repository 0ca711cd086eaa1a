#include "broker/cluster_redirect.hpp"

#include <charconv>
#include "broker/cluster_slots.hpp"

namespace kasagi::broker {

std::optional<Redirection> parse_redirection(std::string_view error) {
  if (error.starts_with("TRYAGAIN")) return Redirection{Redirection::Kind::tryagain, 0, {}};
  Redirection r;
  if (error.starts_with("MOVED ")) {
    r.kind = Redirection::Kind::moved;
    error.remove_prefix(6);
  } else if (error.starts_with("ASK ")) {
    r.kind = Redirection::Kind::ask;
    error.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const auto space = error.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const std::string_view slot = error.substr(0, space), node = error.substr(space + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(slot.data(), slot.data() + slot.size(), value);
  if (ec != std::errc() || end != slot.data() + slot.size() || value >= kClusterSlots) {
    return std::nullopt;
  }
  r.slot = static_cast<std::uint16_t>(value);
  const auto colon = node.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const std::string_view port = node.substr(colon + 1);
  auto [pend, pec] = std::from_chars(port.data(), port.data() + port.size(), r.node.port);
  if (pec != std::errc() || pend != port.data() + port.size() || r.node.port == 0) {
    return std::nullopt;
  }
  r.node.host = std::string(node.substr(0, colon));
  return r;
}

}  // namespace kasagi::broker
