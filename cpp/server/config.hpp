// Every setting of a Kasagi server. The documented defaults live in one place, the Python
// dataclass kasagi.config.Config (docs/configuration.md is generated from it); the values
// below must equal them, which tests/unit/test_config.py checks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kasagi::server {

struct ServerConfig {
  // Network
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;           // 0 = pick a free port (Server::port() tells which)
  unsigned threads = 0;                // I/O threads; 0 = one per core
  double io_batch_wait = 0.001;        // seconds a busy I/O thread waits to gather work
  std::string static_dir;              // files served over HTTP besides /sync; empty = none

  // Security (docs/security.md)
  std::string jwt_secret;              // HS256 secret; set: a valid token is required
  std::string jwt_public_key;          // PEM file: RS256 (RSA) or ES256 (P-256); set: required
  std::vector<std::string> allowed_origins;  // browser origins allowed to connect; empty = any
  std::string tls_cert;                // PEM certificate chain; with tls_key the port is TLS
  std::string tls_key;                 // PEM private key

  // Rooms
  double tick_rate = 20.0;             // deltas per second per room; 0 = send at once
  double room_empty_ttl = 30.0;        // seconds an empty room is kept before discarding it
  std::uint32_t max_rooms = 10000;     // rooms per server (UNAVAILABLE beyond)
  std::uint32_t max_members_per_room = 100;   // ROOM_FULL beyond
  std::uint32_t delta_history = 256;   // deltas kept per room for lastVersion resume
  std::uint32_t delta_history_bytes = 1024 * 1024;  // and at most this many encoded bytes
  std::uint32_t conflict_window = 4096;  // versions within which CONFLICT can be decided
  std::vector<std::string> writable_paths = {"/players/$self"};  // path rules for STATE_UPDATE
  std::uint32_t max_state_depth = 32;  // nesting depth of maps/arrays in a document
  unsigned hook_threads = 2;           // threads running the rooms whose type has hooks

  // Sessions
  double session_grace = 60.0;         // seconds a disconnected player is kept for resume
  double idle_timeout = 30.0;          // seconds of silence before a connection is closed
  double handshake_timeout = 10.0;     // seconds to complete the HTTP + WebSocket handshake
  std::uint32_t max_rooms_per_connection = 16;

  // Limits on input
  std::uint32_t max_message_bytes = 64 * 1024;     // larger: ERROR TOO_LARGE, message dropped
  std::uint32_t max_frame_bytes = 1024 * 1024;     // larger: connection closed with 1009
  double rate_limit = 100.0;           // messages per second per connection (token bucket)
  double rate_burst = 200.0;           // bucket size
  double rate_limit_close_after = 10.0;  // seconds of continuous limiting before closing (1008)
  std::uint32_t max_header_bytes = 8 * 1024;  // HTTP request line + headers (431 beyond)
  std::uint32_t max_header_count = 64;        // HTTP header fields (431 beyond)
  std::uint32_t max_fragments = 64;    // small pieces per WebSocket message (1008 beyond)
  bool permessage_deflate = false;     // WebSocket compression offered
  std::uint32_t read_bytes_per_second = 1024 * 1024;  // per connection; 0 = unlimited
  std::uint32_t max_connections_per_ip = 256;         // 0 = unlimited
  double join_rate_per_ip = 20.0;      // JOIN_ROOM per second per IP; 0 = unlimited
  double join_burst_per_ip = 100.0;    // its bucket size

  // Output
  std::uint32_t send_queue_max_bytes = 4 * 1024 * 1024;  // per connection
  std::uint32_t send_queue_max_messages = 4096;          // per connection
  double slow_consumer_window = 10.0;  // a second overflow within this many seconds disconnects

  // Sharing rooms across instances
  std::string redis;                   // redis://HOST:PORT/DB; empty = embedded broker
  std::string sentinel;                // HOST:PORT,... of Sentinels (instead of redis)
  std::string master_name = "kasagi-master";  // the master the Sentinels watch
  std::string cluster;                 // HOST:PORT,... of Redis Cluster nodes (instead of redis)
  std::string redis_password;          // AUTH on the master (Sentinel) or every node (Cluster)
  std::string sentinel_password;       // AUTH on the Sentinels
  std::string key_prefix;
  std::string durability = "auto";     // auto, none, redis, replicated
  double lease_ttl = 3.0;              // seconds
  std::uint32_t snapshot_every = 100;  // versions
  double snapshot_interval = 10.0;     // seconds
  std::uint32_t ops_max_len = 1000;    // log entries kept per room
  double wait_timeout = 1.0;           // seconds (durability replicated)
  double redis_replay_timeout = 5.0;   // seconds a lost connection's commands wait for the next

  // Lifecycle
  double drain_timeout = 5.0;          // seconds to wait for clients to close on shutdown
  std::string log_level = "info";      // debug, info, warning, error, off

  // Tracing (docs/tracing.md)
  std::string trace_file;              // deltas of traced rooms appended here; empty = off
  std::vector<std::string> trace_rooms;  // room-id globs to trace; empty = every room
};

}  // namespace kasagi::server
