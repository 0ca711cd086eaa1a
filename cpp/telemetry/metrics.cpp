#include "telemetry/metrics.hpp"

#include <cstdio>

namespace kasagi::metrics {
namespace {

void append_number(std::string& out, double v) {
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%.17g", v);
  out.append(buf, static_cast<std::size_t>(n));
}

template <class T>
void simple(std::string& out, const char* name, const char* type, const char* help,
            const T& value) {
  out += "# HELP "; out += name; out += ' '; out += help; out += '\n';
  out += "# TYPE "; out += name; out += ' '; out += type; out += '\n';
  out += name; out += ' ';
  out += std::to_string(value.load(std::memory_order_relaxed));
  out += '\n';
}

template <class Array, class NameOf>
void labelled(std::string& out, const char* name, const char* help, const char* label,
              const Array& values, NameOf name_of) {
  out += "# HELP "; out += name; out += ' '; out += help; out += '\n';
  out += "# TYPE "; out += name; out += " counter\n";
  for (std::size_t i = 0; i < values.size(); ++i) {
    out += name; out += '{'; out += label; out += "=\"";
    out += name_of(i);
    out += "\"} ";
    out += std::to_string(values[i].load(std::memory_order_relaxed));
    out += '\n';
  }
}

}  // namespace

std::string_view to_string(Refusal r) {
  switch (r) {
    case Refusal::connections_per_ip: return "connections_per_ip";
    case Refusal::headers: return "headers";
    case Refusal::origin: return "origin";
    case Refusal::token: return "token";
    case Refusal::tls: return "tls";
  }
  return "unknown";
}

void Histogram::observe(double seconds) {
  std::size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  double s = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(s, s + seconds, std::memory_order_relaxed)) {
  }
}

void Histogram::render(std::string& out, const char* name, const char* help) const {
  out += "# HELP "; out += name; out += ' '; out += help; out += '\n';
  out += "# TYPE "; out += name; out += " histogram\n";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= kBounds.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    out += name; out += "_bucket{le=\"";
    if (i < kBounds.size()) append_number(out, kBounds[i]); else out += "+Inf";
    out += "\"} "; out += std::to_string(cumulative); out += '\n';
  }
  out += name; out += "_sum "; append_number(out, sum_.load(std::memory_order_relaxed)); out += '\n';
  out += name; out += "_count "; out += std::to_string(count_.load(std::memory_order_relaxed));
  out += '\n';
}

std::string Metrics::render() const {
  std::string out;
  out.reserve(8192);
  auto type_name = [](std::size_t i) {
    return std::string(protocol::to_string(static_cast<protocol::Type>(i)));
  };
  auto code_name = [](std::size_t i) {
    return std::string(protocol::to_string(static_cast<protocol::ErrorCode>(i)));
  };
  simple(out, "kasagi_connections", "gauge", "Open WebSocket connections.", connections);
  simple(out, "kasagi_connections_total", "counter", "WebSocket connections accepted.",
         connections_total);
  simple(out, "kasagi_rooms", "gauge", "Rooms alive on this server.", rooms);
  simple(out, "kasagi_members", "gauge", "Players attached to a live connection.", members);
  labelled(out, "kasagi_messages_in_total", "Messages received, by type.", "type", messages_in,
           type_name);
  labelled(out, "kasagi_bytes_in_total", "Bytes received, by message type.", "type", bytes_in,
           type_name);
  labelled(out, "kasagi_messages_out_total", "Messages queued to clients, by type.", "type",
           messages_out, type_name);
  labelled(out, "kasagi_bytes_out_total", "Bytes queued to clients, by message type.", "type",
           bytes_out, type_name);
  simple(out, "kasagi_deltas_total", "counter", "Deltas produced by rooms.", deltas);
  simple(out, "kasagi_authority_takeovers_total", "counter",
         "Rooms this instance recovered from a snapshot and log as their new authority.",
         authority_takeovers);
  simple(out, "kasagi_replays_total", "counter", "Log entries replayed while recovering rooms.",
         replays);
  simple(out, "kasagi_lease_losses_total", "counter",
         "Times this instance lost a room's authority lease to another instance.", lease_losses);
  simple(out, "kasagi_log_repairs_total", "counter",
         "Snapshots written to repair a room log after appends failed.", log_repairs);
  labelled(out, "kasagi_errors_total", "ERROR messages sent, by code.", "code", errors, code_name);
  simple(out, "kasagi_send_queue_drops_total", "counter",
         "Frames dropped from full per-connection send queues.", send_queue_drops);
  simple(out, "kasagi_slow_consumer_resyncs_total", "counter",
         "Send queues replaced by a FULL_STATE resync.", slow_consumer_resyncs);
  simple(out, "kasagi_slow_consumer_disconnects_total", "counter",
         "Connections closed for staying behind.", slow_consumer_disconnects);
  simple(out, "kasagi_rate_limit_disconnects_total", "counter",
         "Connections closed for exceeding the message rate for too long.",
         rate_limit_disconnects);
  simple(out, "kasagi_fragment_disconnects_total", "counter",
         "Connections closed for sending a message in too many fragments.",
         fragment_disconnects);
  labelled(out, "kasagi_refusals_total",
           "Connections or handshakes refused before a session began, by reason.", "reason",
           refusals, [](std::size_t i) { return std::string(to_string(static_cast<Refusal>(i))); });
  tick_duration.render(out, "kasagi_tick_duration_seconds",
                       "Time to coalesce, encode and fan out one room delta.");
  hook_duration.render(out, "kasagi_hook_duration_seconds",
                       "Time of one room hook call (on_join, on_update, on_tick...), the wait "
                       "for the GIL included.");
  simple(out, "kasagi_hook_failures_total", "counter",
         "Room hook calls that raised or returned something unusable.", hook_failures);
  simple(out, "kasagi_trace_records_total", "counter",
         "Records handed to the trace file (state and delta records of traced rooms).",
         trace_records);
  simple(out, "kasagi_trace_dropped_total", "counter",
         "Trace records dropped because the disk did not keep up.", trace_dropped);
  redis_roundtrip.render(out, "kasagi_redis_roundtrip_seconds",
                         "Time from sending a Redis command to its reply.");
  simple(out, "kasagi_redis_publish_total", "counter",
         "Messages published on Redis room channels.", redis_publish);
  simple(out, "kasagi_redis_received_total", "counter",
         "Messages received on Redis room channels.", redis_received);
  simple(out, "kasagi_redis_reconnects_total", "counter",
         "Redis connections re-established after a loss.", redis_reconnects);
  simple(out, "kasagi_redis_probe_failures_total", "counter",
         "Times the pub/sub probe found the subscription silently dead.", redis_probe_failures);
  simple(out, "kasagi_redis_replayed_total", "counter",
         "Redis commands sent again on a new connection after theirs was lost before the reply.",
         redis_replayed);
  simple(out, "kasagi_redis_redirects_total", "counter",
         "Redis Cluster MOVED, ASK and TRYAGAIN answers followed.", redis_redirects);
  return out;
}

}  // namespace kasagi::metrics
