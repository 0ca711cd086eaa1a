// What the clients of one I/O thread measured. Counters that describe throughput only count
// events inside the measured window (after the warm-up); failures count over the whole run.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>
#include "tools/latency_histogram.hpp"

namespace kasagi::tools {

using Clock = std::chrono::steady_clock;

// The measured part of a run: [begin, end) on the steady clock every client shares.
struct Window {
  Clock::time_point begin = Clock::time_point::max();
  Clock::time_point end = Clock::time_point::max();
  bool contains(Clock::time_point t) const { return t >= begin && t < end; }
};

// Nanoseconds on the steady clock: the send timestamp carried in every update.
inline std::int64_t steady_ns(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// What the clients of one server instance (one --port) saw: in a multi-instance run, every
// instance's clients must get deltas, whether it holds the room's authority or relays.
struct TargetStats {
  std::uint64_t clients_joined = 0;          // whole run
  std::uint64_t deliveries = 0;              // inside the window
  std::uint64_t clients_without_deltas = 0;  // joined, yet received none inside the window

  void merge(const TargetStats& o) {
    clients_joined += o.clients_joined;
    deliveries += o.deliveries;
    clients_without_deltas += o.clients_without_deltas;
  }
};

struct ClientStats {
  static constexpr std::size_t kMaxErrorSamples = 5;  // enough to tell what went wrong

  // Inside the window.
  std::uint64_t updates_sent = 0;     // STATE_UPDATE / PUBLISH
  std::uint64_t deliveries = 0;       // DELTA_UPDATE frames / pub/sub messages received
  std::uint64_t delivery_bytes = 0;   // their size on the wire (WebSocket message / RESP)
  std::uint64_t payload_bytes = 0;    // Redis only: the published payload inside them
  LatencyHistogram latency;           // send of an update -> another member sees it
  LatencyHistogram send_lag;          // scheduled send time -> actual: the loadgen's own delay

  // Whole run.
  std::uint64_t errors = 0;           // ERROR messages / error replies / undecodable frames
  std::uint64_t disconnects = 0;      // connections lost before the end of the run
  std::uint64_t sends_skipped = 0;    // schedule slots dropped: the loadgen fell behind
  std::uint64_t sends_dropped = 0;    // updates dropped: the connection's send queue was full
  std::vector<std::string> error_samples;
  std::vector<TargetStats> by_target;  // Kasagi only: indexed like the --port list

  TargetStats& target(std::size_t i) {
    if (by_target.size() <= i) by_target.resize(i + 1);
    return by_target[i];
  }

  void note_error(std::string text) {
    ++errors;
    if (error_samples.size() < kMaxErrorSamples) error_samples.push_back(std::move(text));
  }

  void merge(const ClientStats& o) {
    updates_sent += o.updates_sent;
    deliveries += o.deliveries;
    delivery_bytes += o.delivery_bytes;
    payload_bytes += o.payload_bytes;
    latency.merge(o.latency);
    send_lag.merge(o.send_lag);
    errors += o.errors;
    disconnects += o.disconnects;
    sends_skipped += o.sends_skipped;
    sends_dropped += o.sends_dropped;
    for (const auto& s : o.error_samples)
      if (error_samples.size() < kMaxErrorSamples) error_samples.push_back(s);
    for (std::size_t i = 0; i < o.by_target.size(); ++i) target(i).merge(o.by_target[i]);
  }
};

}  // namespace kasagi::tools
