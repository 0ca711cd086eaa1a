#include "server/server.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <sstream>
#include <stdexcept>

#include "broker/cluster_broker.hpp"
#include "broker/redis_broker.hpp"
#include "net/context.hpp"
#include "net/io_pool.hpp"
#include "net/jwt.hpp"
#include "net/listener.hpp"
#include "net/room_actor.hpp"
#include "net/tls.hpp"
#include "net/ws_session.hpp"
#include "room/identity.hpp"
#include "room/path_rules.hpp"
#include "room/room_hooks.hpp"
#include "room/random_id.hpp"
#include "room/registry.hpp"
#include "server/memory_releaser.hpp"
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

// How long a busy I/O thread waits to gather work (IoPool::run): io_batch_wait, at most 2 %
// of a tick interval, none when deltas leave at once.
std::chrono::microseconds batch_wait(const ServerConfig& c) {
  if (c.tick_rate <= 0) return {};
  const double wait = std::min(c.io_batch_wait, 0.02 / c.tick_rate);
  return duration_cast<std::chrono::microseconds>(duration<double>(wait));
}

// Rooms are shared through Redis: a Redis URL, Sentinels or a Cluster.
bool uses_redis(const ServerConfig& c) {
  return !c.redis.empty() || !c.sentinel.empty() || !c.cluster.empty();
}

// "auto" resolved: redis with Redis, none without.
std::string durability(const ServerConfig& c) {
  if (c.durability != "auto") return c.durability;
  return uses_redis(c) ? "redis" : "none";
}

// The Sentinel settings; throws std::invalid_argument when they are malformed.
broker::SentinelSettings sentinel_settings(const ServerConfig& c) {
  if (c.master_name.empty()) throw std::invalid_argument("master_name: must not be empty");
  return {.sentinels = broker::parse_host_list(c.sentinel, "sentinel"),
          .master_name = c.master_name,
          .password = c.sentinel_password};
}

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
  s.allowed_origins = c.allowed_origins;
  s.max_header_bytes = c.max_header_bytes;
  s.max_header_count = c.max_header_count;
  s.max_fragments = c.max_fragments;
  s.permessage_deflate = c.permessage_deflate;
  s.read_bytes_per_second = c.read_bytes_per_second;
  s.max_connections_per_ip = c.max_connections_per_ip;
  s.join_rate_per_ip = c.join_rate_per_ip;
  s.join_burst_per_ip = c.join_burst_per_ip;
  return s;
}

// The token verifier the configuration asks for, or null when tokens are not required.
// Throws std::invalid_argument naming the setting when the key file is unusable.
std::shared_ptr<const net::JwtVerifier> make_jwt_verifier(const ServerConfig& c) {
  if (c.jwt_secret.empty() && c.jwt_public_key.empty()) return nullptr;
  std::string pem;
  if (!c.jwt_public_key.empty()) {
    std::ifstream in(c.jwt_public_key, std::ios::binary);
    std::ostringstream text;
    if (!(in && text << in.rdbuf())) {
      throw std::invalid_argument("jwt_public_key: cannot read " + c.jwt_public_key);
    }
    pem = text.str();
  }
  try {
    return std::make_shared<const net::JwtVerifier>(c.jwt_secret, pem);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("jwt_public_key: " + c.jwt_public_key + ": " + e.what());
  }
}

room::RoomSettings room_settings(const ServerConfig& c) {
  room::RoomSettings s;
  s.tick_rate = c.tick_rate;
  s.max_members = c.max_members_per_room;
  s.delta_history = c.delta_history;
  s.delta_history_bytes = c.delta_history_bytes;
  s.conflict_window = c.conflict_window;
  s.max_state_depth = c.max_state_depth;
  s.session_grace = duration_cast<room::Clock::duration>(duration<double>(c.session_grace));
  s.writable_paths = c.writable_paths;
  s.ack_when_durable = durability(c) != "none";
  return s;
}

net::SharingSettings sharing_settings(const ServerConfig& c) {
  net::SharingSettings s;
  s.lease_ttl = ms(c.lease_ttl);
  s.snapshot_every = c.snapshot_every;
  s.snapshot_interval = ms(c.snapshot_interval);
  s.empty_ttl = ms(c.room_empty_ttl);
  return s;
}

broker::BrokerOptions broker_options(const ServerConfig& c) {
  broker::BrokerOptions o;
  o.key_prefix = c.key_prefix;
  o.ops_max_len = c.ops_max_len;
  o.wait_replicas = durability(c) == "replicated" ? 1 : 0;
  o.wait_timeout = ms(c.wait_timeout);
  o.replay_timeout = ms(c.redis_replay_timeout);
  return o;
}

// The static_dir's files, or none when it is not set. Throws std::invalid_argument when it
// is not a directory.
std::optional<net::StaticFiles> static_files(const ServerConfig& c) {
  if (c.static_dir.empty()) return std::nullopt;
  return net::StaticFiles(c.static_dir);
}

}  // namespace

Server::Server(ServerConfig config, std::shared_ptr<broker::Broker> broker)
    : config_(std::move(config)), broker_(std::move(broker)) {
  std::string error;
  if (!room::PathRules::parse(config_.writable_paths, error)) throw std::invalid_argument(error);
  if (!log::set_level(config_.log_level)) {
    throw std::invalid_argument("log_level must be one of debug, info, warning, error, off");
  }
  if (config_.tick_rate < 0) throw std::invalid_argument("tick_rate must be >= 0");
  if (config_.max_frame_bytes < config_.max_message_bytes) {
    throw std::invalid_argument("max_frame_bytes must be >= max_message_bytes");
  }
  const auto& d = config_.durability;
  if (d != "auto" && d != "none" && d != "redis" && d != "replicated") {
    throw std::invalid_argument("durability must be one of auto, none, redis, replicated");
  }
  if (!config_.redis.empty() + !config_.sentinel.empty() + !config_.cluster.empty() > 1) {
    throw std::invalid_argument("redis, sentinel and cluster: give one of them");
  }
  if (!config_.cluster.empty()) broker::parse_host_list(config_.cluster, "cluster");
  if (!config_.sentinel.empty()) sentinel_settings(config_);  // fails now, not at start()
  if ((d == "redis" || d == "replicated") && !uses_redis(config_) && !broker_) {
    throw std::invalid_argument("durability " + d + " needs redis to be set");
  }
  if (config_.ops_max_len < 2ull * config_.snapshot_every) {
    throw std::invalid_argument("ops_max_len must be at least twice snapshot_every");
  }
  if (config_.lease_ttl < 0.3) throw std::invalid_argument("lease_ttl must be >= 0.3");
  static_files(config_);  // fails now rather than at start()
  if (config_.tls_cert.empty() != config_.tls_key.empty()) {
    throw std::invalid_argument("tls_cert and tls_key: give both or neither");
  }
  // Read now, so a wrong path fails at construction rather than at the first client.
  jwt_ = make_jwt_verifier(config_);
  if (!config_.tls_cert.empty()) tls_ = net::make_tls_context(config_.tls_cert, config_.tls_key);
}

Server::~Server() { stop(); }

void Server::add_room_type(room::RoomType type) {
  if (running_) throw std::logic_error("room types are registered before start()");
  if (type.name.empty()) throw std::invalid_argument("a room type needs a name");
  if (type.patterns.empty()) {
    throw std::invalid_argument("room type " + type.name + " needs at least one room id pattern");
  }
  types_.push_back(std::make_shared<const room::RoomType>(std::move(type)));
}

void Server::start() {
  if (running_) throw std::logic_error("server already started");
  auto files = static_files(config_);
  const auto instance = room::random_hex(6);
  std::shared_ptr<trace::TraceFile> recording;  // opened first: a bad path starts nothing
  if (!config_.trace_file.empty()) {
    recording = std::make_shared<trace::TraceFile>(config_.trace_file, instance, metrics_);
  }
  const unsigned n = config_.threads ? config_.threads
                                     : std::max(1u, std::thread::hardware_concurrency());
  pool_ = std::make_unique<net::IoPool>(n);
  std::string error;
  auto rules = *room::PathRules::parse(config_.writable_paths, error);
  const auto settings = room_settings(config_);
  // Without Redis and without a broker shared in this process, the server is alone: its
  // rooms need no lease, log or snapshot, so it has no broker at all.
  if ((!broker_ || owns_broker_) && !config_.cluster.empty()) {
    broker_ = std::make_shared<broker::ClusterBroker>(
        broker::parse_host_list(config_.cluster, "cluster"), config_.redis_password,
        broker_options(config_), metrics_);
    owns_broker_ = true;
  } else if ((!broker_ || owns_broker_) && !config_.sentinel.empty()) {
    broker_ = std::make_shared<broker::RedisBroker>(
        sentinel_settings(config_), config_.redis_password, broker_options(config_), metrics_);
    owns_broker_ = true;
  } else if ((!broker_ || owns_broker_) && !config_.redis.empty()) {
    broker_ = std::make_shared<broker::RedisBroker>(config_.redis, broker_options(config_),
                                                    metrics_);
    owns_broker_ = true;
  }
  // Rooms whose type has hooks run on hook threads of their own: a hook may be slow and
  // takes the GIL, and neither may hold up an I/O thread (docs/hooks.md).
  const bool hooks = std::any_of(types_.begin(), types_.end(),
                                 [](const auto& t) { return bool(t->make_hooks); });
  // One context run by every hook thread, each room on its strand: a hook that blocks holds
  // up its own room and one thread, not the rooms that happen to share that thread.
  const unsigned hook_threads = std::max(1u, config_.hook_threads);
  if (hooks) hook_pool_ = std::make_unique<net::IoPool>(1, static_cast<int>(hook_threads));
  rooms_ = std::make_unique<room::Registry<net::RoomActor>>(
      config_.max_rooms, [this, rules, settings](const std::string& id, std::uint64_t uid) {
        std::shared_ptr<const room::RoomType> type;
        for (const auto& t : types_) {
          for (const auto& pattern : t->patterns) {
            if (!type && room::glob_match(pattern, id)) type = t;
          }
        }
        auto executor = boost::asio::make_strand(
            type && type->make_hooks ? hook_pool_->context(0).get_executor() : pool_->next());
        auto actor = std::make_shared<net::RoomActor>(executor, *ctx_, id, uid, settings,
                                                      rules, std::move(type));
        actor->start();
        return actor;
      });
  ctx_ = std::make_unique<net::Context>(*pool_, net_settings(config_), metrics_, *rooms_,
                                        broker_, instance, sharing_settings(config_));
  ctx_->static_files = std::move(files);
  ctx_->trace = std::move(recording);
  ctx_->trace_rooms = config_.trace_rooms;
  ctx_->jwt = jwt_;
  ctx_->tls = tls_;
  try {
    listener_ = std::make_shared<net::Listener>(*ctx_, config_.host, config_.port);
  } catch (const std::exception& e) {
    ctx_.reset();
    rooms_.reset();
    hook_pool_.reset();
    pool_.reset();
    throw std::runtime_error("cannot listen on " + config_.host + ":" +
                             std::to_string(config_.port) + ": " + e.what());
  }
  port_ = listener_->port();
  listener_->run();
  threads_.reserve(n);
  const auto wait = batch_wait(config_);
  for (unsigned i = 0; i < n; ++i) {
    threads_.emplace_back([this, i, wait] { pool_->run(i, wait); });
  }
  for (unsigned i = 0; hook_pool_ && i < hook_threads; ++i) {
    threads_.emplace_back([this] { hook_pool_->context(0).run(); });
  }
  releaser_ = std::make_unique<MemoryReleaser>(std::chrono::seconds(5), 16u << 20);
  running_ = true;
  log::info(std::string("listening on ") + (tls_ ? "TLS " : "") + config_.host + ":" +
            std::to_string(port_) + " with " +
            std::to_string(n) + " I/O threads" +
            (hook_pool_ ? " (+" + std::to_string(hook_threads) + " for hooks)" : "") +
            ", tick rate " + format_number(config_.tick_rate) +
            " Hz");
  if (ctx_->static_files) log::info("serving files from " + ctx_->static_files->root().string());
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
  if (hook_pool_) hook_pool_->stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  releaser_.reset();
  // No broker callback may reach an io_context after this: ours stops; a shared one only
  // finds rooms that are gone (it holds them weakly).
  if (owns_broker_ && broker_) {
    broker_->shutdown();
    broker_.reset();
  }
  rooms_->clear();
  listener_.reset();
  // Destroying the io_contexts destroys the handlers still queued, and with them the last
  // sessions and rooms, while the context and metrics they point to are still alive.
  hook_pool_.reset();
  pool_.reset();
  ctx_.reset();
  rooms_.reset();
  log::info("stopped");
}

std::string Server::metrics() const { return metrics_.render(); }

Stats Server::stats() const {
  return {metrics_.connections.load(), metrics_.rooms.load(), metrics_.members.load()};
}

std::vector<state::Object> Server::session_claims() const {
  std::vector<state::Object> out;
  if (!running_) return out;
  std::lock_guard lock(ctx_->sessions_mutex);
  for (auto& [raw, weak] : ctx_->sessions) {
    if (auto s = weak.lock()) out.push_back(s->identity().claims);  // immutable: no race
  }
  return out;
}

std::optional<RoomSnapshot> Server::room_state(const std::string& id) {
  if (!running_) return std::nullopt;
  auto actor = rooms_->find(id);
  if (!actor) return std::nullopt;
  // Shared, not on this stack: if the room is slow and we give up waiting, its handler
  // still has somewhere to write.
  auto promise = std::make_shared<std::promise<std::optional<RoomSnapshot>>>();
  auto future = promise->get_future();
  actor->inspect([promise](const room::Room* r) {
    if (!r) return promise->set_value(std::nullopt);  // another instance is its authority
    promise->set_value(RoomSnapshot{r->state(), r->version(), r->tick(), r->epoch()});
  });
  if (future.wait_for(std::chrono::seconds(10)) != std::future_status::ready) return std::nullopt;
  return future.get();
}

}  // namespace kasagi::server
