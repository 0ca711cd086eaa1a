// Server-wide counters, gauges and the tick-duration histogram, rendered in Prometheus text
// format for GET /metrics. Plain relaxed atomics: every thread increments them without
// locks; a scrape reads a slightly torn but monotonic picture, which Prometheus tolerates.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include "protocol/message.hpp"

namespace kasagi::metrics {

using Counter = std::atomic<std::uint64_t>;
using Gauge = std::atomic<std::int64_t>;

// Latency-style histogram with fixed upper bounds (seconds).
class Histogram {
 public:
  static constexpr std::array<double, 12> kBounds = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5};
  void observe(double seconds);
  void render(std::string& out, const char* name, const char* help) const;

 private:
  std::array<Counter, kBounds.size() + 1> buckets_{};  // last one is +Inf
  Counter count_{0};
  std::atomic<double> sum_{0.0};
};

// Why a connection or request was turned away before it became a WebSocket session.
enum class Refusal : std::uint8_t { connections_per_ip, headers, origin, token, tls };
inline constexpr int kRefusalCount = 5;
std::string_view to_string(Refusal r);

struct Metrics {
  Gauge connections{0};
  Counter connections_total{0};
  Gauge rooms{0};
  Gauge members{0};  // players attached to a live connection, summed over rooms
  std::array<Counter, protocol::kTypeCount> messages_in{};
  std::array<Counter, protocol::kTypeCount> bytes_in{};
  std::array<Counter, protocol::kTypeCount> messages_out{};
  std::array<Counter, protocol::kTypeCount> bytes_out{};
  Counter deltas{0};  // deltas produced by rooms (each encoded once per format in use)
  std::array<Counter, protocol::kErrorCodeCount> errors{};
  Counter send_queue_drops{0};       // frames dropped from full send queues
  Counter slow_consumer_resyncs{0};  // queues replaced by a FULL_STATE
  Counter slow_consumer_disconnects{0};
  Counter rate_limit_disconnects{0};
  Counter fragment_disconnects{0};
  std::array<Counter, kRefusalCount> refusals{};
  Histogram tick_duration;  // time a room spends coalescing, encoding and fanning out a delta
  Histogram hook_duration;  // one room hook call (room/room_hooks.hpp), Python included
  Counter hook_failures{0};  // hook calls that raised or returned something unusable
  Counter trace_records{0};  // records written to trace_file (telemetry/trace_file.hpp)
  Counter trace_dropped{0};  // records dropped because the disk did not keep up
  // Authority across instances (net/room_actor.hpp)
  Counter authority_takeovers{0};  // rooms recovered from a snapshot and log
  Counter replays{0};              // log entries replayed while recovering rooms
  Counter lease_losses{0};         // authorities deposed (their lease was taken)
  Counter log_repairs{0};          // snapshots that repaired a log after failed appends
  // The Redis broker (cpp/broker/redis_broker.cpp).
  Histogram redis_roundtrip;         // command sent -> reply
  Counter redis_publish{0};          // messages published on room channels
  Counter redis_received{0};         // room channel messages received
  Counter redis_reconnects{0};       // connections re-established after a loss
  Counter redis_probe_failures{0};   // pub/sub found silently dead by the probe
  Counter redis_replayed{0};         // commands sent again on a new connection after a loss
  Counter redis_redirects{0};        // Cluster MOVED/ASK/TRYAGAIN answers followed

  void count_in(protocol::Type t, std::size_t bytes) {
    messages_in[static_cast<int>(t)].fetch_add(1, std::memory_order_relaxed);
    bytes_in[static_cast<int>(t)].fetch_add(bytes, std::memory_order_relaxed);
  }
  void count_out(protocol::Type t, std::size_t bytes, std::size_t messages = 1) {
    messages_out[static_cast<int>(t)].fetch_add(messages, std::memory_order_relaxed);
    bytes_out[static_cast<int>(t)].fetch_add(bytes, std::memory_order_relaxed);
  }
  void count_refusal(Refusal r) {
    refusals[static_cast<int>(r)].fetch_add(1, std::memory_order_relaxed);
  }
  void count_error(protocol::ErrorCode c) {
    errors[static_cast<int>(c)].fetch_add(1, std::memory_order_relaxed);
  }

  // The whole registry in Prometheus text exposition format 0.0.4.
  std::string render() const;
};

}  // namespace kasagi::metrics
