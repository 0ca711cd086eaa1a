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
  }
};

}  // namespace kasagi::tools
