// The subset of the server configuration a room obeys (see kasagi.config.Config for the
// meaning and default of each field).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace kasagi::room {

using Clock = std::chrono::steady_clock;

struct RoomSettings {
  double tick_rate = 20.0;
  std::uint32_t max_members = 100;
  std::uint32_t delta_history = 256;
  std::uint32_t delta_history_bytes = 1024 * 1024;
  std::uint32_t conflict_window = 4096;
  std::uint32_t max_state_depth = 32;
  Clock::duration session_grace = std::chrono::seconds(60);
  std::vector<std::string> writable_paths = {"/players/$self"};
  bool ack_when_durable = false;  // durability redis/replicated: ACK after the broker stored it
};

}  // namespace kasagi::room
