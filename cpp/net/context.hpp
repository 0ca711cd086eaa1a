// What every connection of one server shares: settings, metrics, the rooms, and the set of
// live sessions (for drain and stop). Owned by server::Server, which outlives all of them.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>
#include "broker/broker.hpp"
#include "net/io_pool.hpp"
#include "net/ip_limits.hpp"
#include "net/room_actor.hpp"
#include "net/static_files.hpp"
#include "room/registry.hpp"
#include "telemetry/metrics.hpp"
#include "telemetry/trace_file.hpp"

namespace boost::asio::ssl {
class context;
}

namespace kasagi::net {

class JwtVerifier;
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
  // Abuse limits (docs/security.md)
  std::vector<std::string> allowed_origins;  // empty: any
  std::uint32_t max_header_bytes = 8 * 1024;
  std::uint32_t max_header_count = 64;
  std::uint32_t max_fragments = 64;
  bool permessage_deflate = false;
  std::uint32_t read_bytes_per_second = 1024 * 1024;
  std::uint32_t max_connections_per_ip = 256;
  double join_rate_per_ip = 20.0;
  double join_burst_per_ip = 100.0;
};

struct Context {
  Context(IoPool& io, NetSettings s, metrics::Metrics& m, room::Registry<RoomActor>& r,
          std::shared_ptr<broker::Broker> b, std::string instance, SharingSettings sh)
      : pool(io),
        settings(s),
        metrics(m),
        rooms(r),
        broker(std::move(b)),
        instance_id(std::move(instance)),
        sharing(sh),
        per_ip(s.max_connections_per_ip, s.join_rate_per_ip, s.join_burst_per_ip) {}

  IoPool& pool;
  NetSettings settings;
  metrics::Metrics& metrics;
  room::Registry<RoomActor>& rooms;
  std::shared_ptr<broker::Broker> broker;  // shares rooms with other instances; null: alone
  std::string instance_id;                 // this process, as other instances know it
  SharingSettings sharing;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::atomic<bool> draining{false};
  std::optional<StaticFiles> static_files;  // static_dir's files; none when it is not set
  // Where the deltas of rooms matching trace_rooms (globs; empty: all) are recorded; null:
  // nowhere (telemetry/trace_file.hpp).
  std::shared_ptr<trace::TraceFile> trace;
  std::vector<std::string> trace_rooms;

  // Set by the server before it listens (docs/security.md).
  std::shared_ptr<const JwtVerifier> jwt;          // null: no token required
  std::shared_ptr<boost::asio::ssl::context> tls;  // null: plain TCP
  IpLimits per_ip;

  // Live WebSocket sessions, so drain() and stop() can reach them.
  std::mutex sessions_mutex;
  std::unordered_map<WsSession*, std::weak_ptr<WsSession>> sessions;
};

}  // namespace kasagi::net
