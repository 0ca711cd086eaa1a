// Redis Cluster key routing: the hash slot of a key (CRC16 of its hash tag, as
// CLUSTER KEYSLOT computes it) and the map from slots to masters (from CLUSTER SLOTS).
// Every key of a room carries the room id as its hash tag, so a room lives in one slot.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include "broker/redis_url.hpp"

struct redisReply;

namespace kasagi::broker {

inline constexpr std::uint16_t kClusterSlots = 16384;

// The slot of `key`: CRC16 (XMODEM) of the text between the first '{' and the next '}'
// when that is not empty, else of the whole key; modulo 16384.
std::uint16_t key_slot(std::string_view key);

// Which master serves each slot.
class SlotMap {
 public:
  // Reads a CLUSTER SLOTS reply from `asked` (named by an empty host in the reply);
  // nullopt when it is malformed. Slots no range names stay unassigned.
  static std::optional<SlotMap> parse(const redisReply& reply, const HostPort& asked);

  // The master of `slot`, or nullptr when no master serves it.
  const HostPort* master(std::uint16_t slot) const;
  // Records a MOVED redirection: `slot` is served by `master` now.
  void moved(std::uint16_t slot, HostPort master);
  // The distinct masters, in slot order.
  std::vector<HostPort> masters() const;

 private:
  // The index of `master` in nodes_, added when new.
  std::int16_t node_index(HostPort master);

  std::vector<HostPort> nodes_;               // the masters seen
  std::array<std::int16_t, kClusterSlots> slot_node_{};  // index in nodes_, or -1
};

}  // namespace kasagi::broker
