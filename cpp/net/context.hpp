// What every connection of one server shares: settings, metrics, the rooms, and the set of
// live sessions (for drain and stop). Owned by server::Server, which outlives all of them.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include "net/io_pool.hpp"
#include "room/registry.hpp"
#include "telemetry/metrics.hpp"

namespace kasagi::net {

class RoomActor;
class WsSession;

struct NetSettings {
  std::chrono::milliseconds handshake_timeout{10'000};
  std::chrono::milliseconds idle_timeout{30'000};
  std::uint32_t max_message_bytes = 64 * 1024;
  std::uint32_t max_frame_bytes = 1024 * 1024;
  double rate_limit = 100.0;
  double rate_burst = 200.0;
  std::chrono::milliseconds rate_limit_close_after{10'000};
  std::uint32_t send_queue_max_bytes = 4 * 1024 * 1024;
  std::uint32_t send_queue_max_messages = 4096;
  std::chrono::milliseconds slow_consumer_window{10'000};
  std::uint32_t max_rooms_per_connection = 16;
  std::uint32_t max_state_depth = 32;
};

struct Context {
  Context(IoPool& io, NetSettings s, metrics::Metrics& m, room::Registry<RoomActor>& r)
      : pool(io), settings(s), metrics(m), rooms(r) {}

  IoPool& pool;
  NetSettings settings;
  metrics::Metrics& metrics;
  room::Registry<RoomActor>& rooms;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::atomic<bool> draining{false};

  // Live WebSocket sessions, so drain() and stop() can reach them.
  std::mutex sessions_mutex;
  std::unordered_map<WsSession*, std::weak_ptr<WsSession>> sessions;
};

}  // namespace kasagi::net
