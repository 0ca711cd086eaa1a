// The composition root: turns a ServerConfig into a running server (listener, rooms, I/O
// threads) and takes it down again, gracefully or not.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>
#include "server/config.hpp"
#include "state/value.hpp"
#include "telemetry/metrics.hpp"

namespace boost::asio::ssl {
class context;
}

namespace kasagi::net {
class IoPool;
class JwtVerifier;
class Listener;
class RoomActor;
struct Context;
}  // namespace kasagi::net

namespace kasagi::broker {
class Broker;
}

namespace kasagi::room {
template <class Actor>
class Registry;
struct RoomType;
}

namespace kasagi::server {

class MemoryReleaser;

struct Stats {
  std::int64_t connections = 0;
  std::int64_t rooms = 0;
  std::int64_t members = 0;
};

struct RoomSnapshot {
  state::Object state;
  std::uint64_t version = 0;
  std::uint64_t tick = 0;
  std::string epoch;
};

class Server {
 public:
  // Throws std::invalid_argument when the configuration is unusable. `broker`: share rooms
  // through this broker (several servers in one process on one MemoryBroker) instead of
  // the one config.redis names (or, without it, none: the server is alone).
  explicit Server(ServerConfig config, std::shared_ptr<broker::Broker> broker = nullptr);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Registers a room type (room/room_hooks.hpp), before start(). Throws
  // std::invalid_argument when it has no name or no pattern, std::logic_error when started.
  void add_room_type(room::RoomType type);

  // Binds and starts the I/O threads; returns at once. Throws std::runtime_error when the
  // address cannot be bound, std::logic_error when already started.
  void start();

  // The bound port (valid after start()).
  std::uint16_t port() const { return port_; }
  bool running() const { return running_; }

  // Graceful shutdown: stops accepting, closes every connection with 1001 "going away",
  // waits up to `timeout` seconds for them to go, then stops. Blocks.
  void drain(double timeout);

  // Immediate shutdown: connections are closed with 1001 without waiting for them. Blocks
  // until every thread has ended. Safe to call twice.
  void stop();

  std::string metrics() const;
  Stats stats() const;

  // The authoritative state of room `id` (read on its strand), or nullopt if there is none
  // (or its strand did not answer within 10 s).
  std::optional<RoomSnapshot> room_state(const std::string& id);

  // The verified token claims of every open WebSocket connection ({} for anonymous ones),
  // in no particular order: a debugging aid, and what room hooks see as `claims`.
  std::vector<state::Object> session_claims() const;

 private:
  void close_all_sessions();

  ServerConfig config_;
  std::shared_ptr<const net::JwtVerifier> jwt_;     // null: no tokens required
  std::shared_ptr<boost::asio::ssl::context> tls_;  // null: plain TCP
  metrics::Metrics metrics_;
  std::shared_ptr<broker::Broker> broker_;
  bool owns_broker_ = false;
  std::unique_ptr<net::IoPool> pool_;
  std::unique_ptr<net::IoPool> hook_pool_;  // rooms with hooks; null when no type has any
  std::vector<std::shared_ptr<const room::RoomType>> types_;
  std::unique_ptr<room::Registry<net::RoomActor>> rooms_;
  std::unique_ptr<net::Context> ctx_;
  std::shared_ptr<net::Listener> listener_;
  std::vector<std::thread> threads_;  // the I/O threads, then the hook threads
  std::unique_ptr<MemoryReleaser> releaser_;
  std::uint16_t port_ = 0;
  bool running_ = false;
};

}  // namespace kasagi::server
