// A recording of chosen rooms' deltas (docs/tracing.md): an append-only file of MessagePack
// maps, one record after another, which kasagi.trace reads back into pandas.
//
// Records: a "header" when the file is opened; a "state" when a room's recording starts (its
// document at that version, where a replay begins); a "delta" per DELTA_UPDATE that leaves
// the room (version, baseVersion, tick, epoch, wall-clock time, its size in each encoding,
// the leaf paths it changes, the patch).
//
// Rooms hand records over on their own threads and never wait for the disk: one writer
// thread appends them, at least every 100 ms so that a reader sees a live recording. Past
// `max_pending_bytes` waiting for a slow disk, records are dropped and counted.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include "protocol/message.hpp"
#include "state/value.hpp"
#include "telemetry/metrics.hpp"

namespace kasagi::trace {

class TraceFile {
 public:
  // Opens `path` for appending and writes the header record. Throws std::runtime_error when
  // the file cannot be opened.
  TraceFile(const std::string& path, std::string_view instance, metrics::Metrics& metrics,
            std::size_t max_pending_bytes = 64u << 20);
  ~TraceFile();  // writes what is pending, then closes the file
  TraceFile(const TraceFile&) = delete;
  TraceFile& operator=(const TraceFile&) = delete;

  // A room's document at `version`, when its recording starts.
  void state(std::string_view room, std::uint64_t version, std::uint64_t tick,
             std::string_view epoch, const state::Object& doc);
  // A DELTA_UPDATE as it left its room at `sent` (now() taken before the first send: a
  // client may read it before the sends are done), and its size in JSON and MessagePack.
  void delta(const protocol::Message& delta, double sent, std::size_t json_bytes,
             std::size_t msgpack_bytes);

  // The time as traces record it: seconds since the Unix epoch.
  static double now();

 private:
  void append(const state::Object& record);
  void run();

  std::FILE* file_;
  metrics::Metrics& metrics_;
  const std::size_t max_pending_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::string pending_;  // records not yet written
  bool stopping_ = false;
  bool warned_ = false;  // the first drop is logged, the others counted
  std::thread writer_;
};

}  // namespace kasagi::trace
