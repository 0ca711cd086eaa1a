#include "telemetry/trace_file.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include "protocol/codec.hpp"
#include "state/json_pointer.hpp"
#include "telemetry/log.hpp"

namespace kasagi::trace {
namespace {

// The JSON Pointers of the leaves a merge patch writes or deletes (a nested map is a
// change inside it, anything else replaces or removes what was there).
void leaf_paths(const state::Object& patch, std::string& prefix, state::Array& out) {
  for (const auto& [key, value] : patch) {
    const auto size = prefix.size();
    state::append_token(prefix, key);
    if (value.is_object() && !value.get_object().empty()) {
      leaf_paths(value.get_object(), prefix, out);
    } else {
      out.emplace_back(prefix);
    }
    prefix.resize(size);
  }
}

std::int64_t as_int(std::uint64_t v) { return static_cast<std::int64_t>(v); }

}  // namespace

TraceFile::TraceFile(const std::string& path, std::string_view instance, metrics::Metrics& metrics,
                     std::size_t max_pending_bytes)
    : file_(std::fopen(path.c_str(), "ab")), metrics_(metrics), max_pending_(max_pending_bytes) {
  if (!file_) {
    throw std::runtime_error("trace_file: cannot open " + path + ": " + std::strerror(errno));
  }
  append({{"kind", "header"},
          {"format", "kasagi-trace"},
          {"formatVersion", 1},
          {"source", "server"},
          {"instance", instance},
          {"t", now()}});
  writer_ = std::thread([this] { run(); });
}

TraceFile::~TraceFile() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  writer_.join();
  std::fclose(file_);
}

void TraceFile::state(std::string_view room, std::uint64_t version, std::uint64_t tick,
                      std::string_view epoch, const state::Object& doc) {
  append({{"kind", "state"},
          {"room", room},
          {"version", as_int(version)},
          {"tick", as_int(tick)},
          {"epoch", epoch},
          {"t", now()},
          {"state", doc}});
}

double TraceFile::now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void TraceFile::delta(const protocol::Message& delta, double sent, std::size_t json_bytes,
                      std::size_t msgpack_bytes) {
  state::Array paths;
  std::string prefix;
  if (delta.payload) leaf_paths(*delta.payload, prefix, paths);
  append({{"kind", "delta"},
          {"room", delta.room_id},
          {"version", as_int(delta.version.value_or(0))},
          {"baseVersion", as_int(delta.base_version.value_or(0))},
          {"tick", as_int(delta.tick.value_or(0))},
          {"epoch", delta.epoch.value_or("")},
          {"t", sent},
          {"bytes", {{"json", as_int(json_bytes)}, {"msgpack", as_int(msgpack_bytes)}}},
          {"paths", std::move(paths)},
          {"patch", delta.payload ? *delta.payload : state::Object()}});
}

void TraceFile::append(const state::Object& record) {
  std::string bytes = protocol::encode_value(record);
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (pending_.size() + bytes.size() > max_pending_) {
      metrics_.trace_dropped.fetch_add(1, std::memory_order_relaxed);
      if (!warned_) log::warning("trace_file: the disk is not keeping up; dropping records");
      warned_ = true;
      return;
    }
    pending_ += bytes;
    wake = pending_.size() >= (256u << 10);
  }
  metrics_.trace_records.fetch_add(1, std::memory_order_relaxed);
  if (wake) wake_.notify_one();
}

void TraceFile::run() {
  std::string batch;
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait_for(lock, std::chrono::milliseconds(100),
                   [this] { return stopping_ || pending_.size() >= (256u << 10); });
    batch.swap(pending_);
    const bool last = stopping_;
    lock.unlock();
    if (!batch.empty()) {
      if (std::fwrite(batch.data(), 1, batch.size(), file_) != batch.size() ||
          std::fflush(file_) != 0) {
        log::error(std::string("trace_file: write failed: ") + std::strerror(errno));
      }
      batch.clear();
    }
    if (last) return;
    lock.lock();
  }
}

}  // namespace kasagi::trace
