#include "server/server.hpp"

#include <chrono>
#include <cstdio>
#include <future>
#include <stdexcept>

#include "net/context.hpp"
#include "net/io_pool.hpp"
#include "net/listener.hpp"
#include "net/room_actor.hpp"
#include "net/ws_session.hpp"
#include "room/path_rules.hpp"
#include "room/registry.hpp"
#include "telemetry/log.hpp"

namespace kasagi::server {

namespace {

using std::chrono::duration;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

std::string format_number(double v) {  // 20 -> "20", 0.5 -> "0.5"
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

milliseconds ms(double seconds) { return duration_cast<milliseconds>(duration<double>(seconds)); }

net::NetSettings net_settings(const ServerConfig& c) {
  net::NetSettings s;
  s.handshake_timeout = ms(c.handshake_timeout);
  s.idle_timeout = ms(c.idle_timeout);
  s.max_message_bytes = c.max_message_bytes;
  s.max_frame_bytes = c.max_frame_bytes;
  s.rate_limit = c.rate_limit;
  s.rate_burst = c.rate_burst;
  s.rate_limit_close_after = ms(c.rate_limit_close_after);
  s.send_queue_max_bytes = c.send_queue_max_bytes;
  s.send_queue_max_messages = c.send_queue_max_messages;
  s.slow_consumer_window = ms(c.slow_consumer_window);
  s.max_rooms_per_connection = c.max_rooms_per_connection;
  s.max_state_depth = c.max_state_depth;
  return s;
}

room::RoomSettings room_settings(const ServerConfig& c) {
  room::RoomSettings s;
  s.tick_rate = c.tick_rate;
  s.max_members = c.max_members_per_room;
  s.delta_history = c.delta_history;
  s.conflict_window = c.conflict_window;
  s.max_state_depth = c.max_state_depth;
  s.session_grace = duration_cast<room::Clock::duration>(duration<double>(c.session_grace));
  s.writable_paths = c.writable_paths;
  return s;
}

}  // namespace

Server::Server(ServerConfig config) : config_(std::move(config)) {
  std::string error;
  if (!room::PathRules::parse(config_.writable_paths, error)) throw std::invalid_argument(error);
  if (!log::set_level(config_.log_level)) {
    throw std::invalid_argument("log_level must be one of debug, info, warning, error, off");
  }
  if (config_.tick_rate < 0) throw std::invalid_argument("tick_rate must be >= 0");
  if (config_.max_frame_bytes < config_.max_message_bytes) {
    throw std::invalid_argument("max_frame_bytes must be >= max_message_bytes");
  }
}

Server::~Server() { stop(); }

void Server::start() {
  if (running_) throw std::logic_error("server already started");
  const unsigned n = config_.threads ? config_.threads
                                     : std::max(1u, std::thread::hardware_concurrency());
  pool_ = std::make_unique<net::IoPool>(n);
  std::string error;
  auto rules = *room::PathRules::parse(config_.writable_paths, error);
  const auto settings = room_settings(config_);
  const auto ttl = duration_cast<room::Clock::duration>(duration<double>(config_.room_empty_ttl));
  rooms_ = std::make_unique<room::Registry<net::RoomActor>>(
      config_.max_rooms,
      [this, rules, settings, ttl](const std::string& id, std::uint64_t uid) {
        auto actor = std::make_shared<net::RoomActor>(pool_->next(), *rooms_, id, uid, settings, rules,
                                                      metrics_, ttl);
        actor->start();
        return actor;
      });
  ctx_ = std::make_unique<net::Context>(*pool_, net_settings(config_), metrics_, *rooms_);
  try {
    listener_ = std::make_shared<net::Listener>(*ctx_, config_.host, config_.port);
  } catch (const std::exception& e) {
    ctx_.reset();
    rooms_.reset();
    pool_.reset();
    throw std::runtime_error("cannot listen on " + config_.host + ":" +
                             std::to_string(config_.port) + ": " + e.what());
  }
  port_ = listener_->port();
  listener_->run();
  threads_.reserve(n);
  for (unsigned i = 0; i < n; ++i) {
    threads_.emplace_back([this, i] { pool_->context(i).run(); });
  }
  running_ = true;
  log::info("listening on " + config_.host + ":" + std::to_string(port_) + " with " +
            std::to_string(n) + " I/O threads, tick rate " + format_number(config_.tick_rate) +
            " Hz");
}

void Server::close_all_sessions() {
  std::vector<std::shared_ptr<net::WsSession>> live;
  {
    std::lock_guard lock(ctx_->sessions_mutex);
    for (auto& [raw, weak] : ctx_->sessions) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) s->close(boost::beast::websocket::close_code::going_away, "going away");
}

void Server::drain(double timeout) {
  if (!running_) return;
  log::info("draining: closing " + std::to_string(metrics_.connections.load()) +
            " connections with 1001 going away");
  // The listener stays open until stop(): load balancers keep getting /healthz answered
  // (503 "draining") and new WebSocket upgrades are refused with 503.
  ctx_->draining = true;
  close_all_sessions();
  const auto deadline = std::chrono::steady_clock::now() + ms(timeout);
  while (metrics_.connections.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop();
}

void Server::stop() {
  if (!running_) return;
  running_ = false;
  ctx_->draining = true;
  listener_->close();
  close_all_sessions();
  // Give the close frames a moment to leave, then end the threads.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  while (metrics_.connections.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pool_->stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  rooms_->clear();
  listener_.reset();
  // Destroying the io_contexts destroys the handlers still queued, and with them the last
  // sessions and rooms, while the context and metrics they point to are still alive.
  pool_.reset();
  ctx_.reset();
  rooms_.reset();
  log::info("stopped");
}

std::string Server::metrics() const { return metrics_.render(); }

Stats Server::stats() const {
  return {metrics_.connections.load(), metrics_.rooms.load(), metrics_.members.load()};
}

std::optional<RoomSnapshot> Server::room_state(const std::string& id) {
  if (!running_) return std::nullopt;
  auto actor = rooms_->find(id);
  if (!actor) return std::nullopt;
  // Shared, not on this stack: if the room is slow and we give up waiting, its handler
  // still has somewhere to write.
  auto promise = std::make_shared<std::promise<RoomSnapshot>>();
  auto future = promise->get_future();
  actor->post([promise](room::Room& r, room::Clock::time_point) {
    promise->set_value(RoomSnapshot{r.state(), r.version(), r.tick(), r.epoch()});
  });
  if (future.wait_for(std::chrono::seconds(10)) != std::future_status::ready) return std::nullopt;
  return future.get();
}

}  // namespace kasagi::server
