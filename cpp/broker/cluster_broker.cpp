#include "broker/cluster_broker.hpp"

#include <hiredis/hiredis.h>

#include <future>
#include <stdexcept>
#include <boost/asio/post.hpp>
#include "telemetry/log.hpp"

namespace kasagi::broker {
namespace {

// As RedisBroker: commands issued in this window after construction wait for the first
// slot map (a server starting alongside the Cluster), at most this many.
constexpr auto kFirstMapWait = std::chrono::milliseconds(5000);
constexpr std::size_t kQueueLimit = 10000;

std::string name_of(const HostPort& n) { return n.host + ":" + std::to_string(n.port); }

std::vector<HostPort> checked(std::vector<HostPort> seeds) {
  if (seeds.empty()) throw std::invalid_argument("cluster: no node address given");
  return seeds;
}

}  // namespace

ClusterBroker::ClusterBroker(std::vector<HostPort> seeds, std::string password,
                             BrokerOptions options, metrics::Metrics& metrics)
    : seeds_(checked(std::move(seeds))),
      password_(std::move(password)),
      options_(std::move(options)),
      metrics_(metrics),
      guard_(io_.get_executor()),
      queue_until_(Clock::now() + kFirstMapWait),
      thread_([this] { io_.run(); }) {
  // Called on the masters' brokers' threads when a command was redirected.
  options_.on_redirect = [this] {
    boost::asio::post(io_, [this] {
      if (!stopped_) refresh();
    });
  };
  boost::asio::post(io_, [this] {
    refresh();
    schedule_refresh();
  });
}

ClusterBroker::~ClusterBroker() { shutdown(); }

// ---------------------------------------------------------------------------------------
// Routing

void ClusterBroker::route(const std::string& room, Routed op) {
  boost::asio::post(io_, [this, room, op = std::move(op)]() mutable {
    if (stopped_) return;
    if (map_) return op(broker_of(room));
    if (Clock::now() >= queue_until_ || queue_.size() >= kQueueLimit) return op(nullptr);
    queue_.emplace_back(room, std::move(op));
    if (queue_.size() > 1) return;
    queue_timer_.expires_at(queue_until_);
    queue_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopped_ || map_) return;
      auto expired = std::move(queue_);
      queue_.clear();
      for (auto& [room, op] : expired) op(nullptr);
    });
  });
}

// The broker of the master that serves the room's slot (made on first use), or nullptr.
RedisBroker* ClusterBroker::broker_of(const std::string& room) {
  const HostPort* master = map_->master(key_slot(room_key(options_.key_prefix, room, "owner")));
  if (master == nullptr) return nullptr;
  auto& broker = nodes_[name_of(*master)];
  if (!broker) {
    RedisUrl url;
    url.host = master->host;
    url.port = master->port;
    url.password = password_;
    broker = std::make_unique<RedisBroker>(std::move(url), options_, metrics_, true);
  }
  return broker.get();
}

void ClusterBroker::claim(const std::string& room, const std::string& token,
                          std::chrono::milliseconds ttl, Claimed done) {
  route(room, [room, token, ttl, done = std::move(done)](RedisBroker* b) mutable {
    if (b == nullptr) return done(Status::unavailable, {});
    b->claim(room, token, ttl, std::move(done));
  });
}

void ClusterBroker::release(const std::string& room, const std::string& token) {
  route(room, [room, token](RedisBroker* b) {
    if (b != nullptr) b->release(room, token);
  });
}

void ClusterBroker::load(const std::string& room, Loaded done) {
  route(room, [room, done = std::move(done)](RedisBroker* b) mutable {
    if (b == nullptr) return done(Status::unavailable, {});
    b->load(room, std::move(done));
  });
}

void ClusterBroker::append(const std::string& room, const std::string& token, OpEntry entry,
                           std::string message, Done done) {
  route(room, [room, token, entry = std::move(entry), message = std::move(message),
               done = std::move(done)](RedisBroker* b) mutable {
    if (b == nullptr) return done(Status::unavailable);
    b->append(room, token, std::move(entry), std::move(message), std::move(done));
  });
}

void ClusterBroker::save_snapshot(const std::string& room, const std::string& token,
                                  Snapshot snapshot, Done done) {
  route(room, [room, token, snapshot = std::move(snapshot),
               done = std::move(done)](RedisBroker* b) mutable {
    if (b == nullptr) return done(Status::unavailable);
    b->save_snapshot(room, token, std::move(snapshot), std::move(done));
  });
}

void ClusterBroker::publish(const std::string& room, std::string message) {
  route(room, [room, message = std::move(message)](RedisBroker* b) mutable {
    if (b != nullptr) b->publish(room, std::move(message));
  });
}

// ---------------------------------------------------------------------------------------
// Subscriptions: each room's go through the broker of its master, and move with it.

void ClusterBroker::subscribe(const std::string& room, std::weak_ptr<Subscriber> subscriber) {
  boost::asio::post(io_, [this, room, subscriber = std::move(subscriber)] {
    if (stopped_) return;
    Room& r = rooms_[room];
    r.subscribers.push_back(subscriber);
    if (!r.node.empty()) return nodes_[r.node]->subscribe(room, subscriber);
    if (map_) move_subscription(room, r, false);  // else: once the map comes
  });
}

void ClusterBroker::unsubscribe(const std::string& room, const Subscriber* subscriber) {
  boost::asio::post(io_, [this, room, subscriber] {
    auto it = rooms_.find(room);
    if (stopped_ || it == rooms_.end()) return;
    Room& r = it->second;
    std::erase_if(r.subscribers, [subscriber](const auto& w) {
      auto s = w.lock();
      return !s || s.get() == subscriber;
    });
    if (!r.node.empty()) nodes_[r.node]->unsubscribe(room, subscriber);
    if (r.subscribers.empty()) rooms_.erase(it);
  });
}

// Subscribes the room with the broker of its current master, leaving the old one; with
// `gap`, its subscribers get on_gap() once the new subscription is confirmed.
void ClusterBroker::move_subscription(const std::string& room, Room& r, bool gap) {
  std::erase_if(r.subscribers, [](const auto& w) { return w.expired(); });
  if (!r.node.empty()) {
    for (const auto& w : r.subscribers) {
      if (auto s = w.lock()) nodes_[r.node]->unsubscribe(room, s.get());
    }
  }
  RedisBroker* b = broker_of(room);
  r.node.clear();
  if (b == nullptr) return;  // no master for its slot now: the next map
  for (const auto& [name, broker] : nodes_) {
    if (broker.get() == b) r.node = name;
  }
  for (const auto& w : r.subscribers) {
    if (gap) {
      b->resubscribe(room, w);
    } else {
      b->subscribe(room, w);
    }
  }
}

// ---------------------------------------------------------------------------------------
// The slot map

void ClusterBroker::schedule_refresh() {
  refresh_timer_.expires_after(options_.probe_interval);
  refresh_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    refresh();
    schedule_refresh();
  });
}

// The nodes to ask: the known masters first (they are most likely up), then the seeds.
std::vector<HostPort> ClusterBroker::candidates() const {
  std::vector<HostPort> out = map_ ? map_->masters() : std::vector<HostPort>{};
  out.insert(out.end(), seeds_.begin(), seeds_.end());
  return out;
}

void ClusterBroker::refresh() {
  if (refreshing_) {
    refresh_again_ = true;  // a redirection during a question: ask once more after it
    return;
  }
  refreshing_ = true;
  ask(0);
}

// Asks one node for CLUSTER SLOTS; on failure the next one, until every one was tried.
void ClusterBroker::ask(std::size_t attempt) {
  const auto nodes = candidates();
  if (attempt >= nodes.size()) {
    refreshing_ = refresh_again_ = false;
    const std::string why = "no node answered CLUSTER SLOTS";
    if (why != last_failure_) log::warning("redis cluster: " + why + "; retrying");
    last_failure_ = why;
    return;  // the periodic refresh tries again
  }
  const HostPort node = nodes[(next_candidate_ + attempt) % nodes.size()];
  auto next = [this, attempt] {
    ++next_candidate_;
    ask(attempt + 1);
  };
  resolver_.async_resolve(
      node.host, std::to_string(node.port),
      [this, node, next](const boost::system::error_code& ec,
                         const boost::asio::ip::tcp::resolver::results_type& results) {
        if (stopped_) return;
        if (ec || results.empty()) return next();
        auto conn = RedisConnection::open(io_, results.begin()->endpoint(),
                                          options_.command_timeout, {});
        asking_ = conn;
        if (!password_.empty()) conn->command({"AUTH", password_}, [](const redisReply*) {});
        conn->command({"CLUSTER", "SLOTS"}, [this, node, next, conn](const redisReply* r) {
          conn->close();
          if (stopped_) return;
          auto map = r != nullptr ? SlotMap::parse(*r, node) : std::nullopt;
          if (!map || map->masters().empty()) return next();
          refreshing_ = false;
          last_failure_.clear();
          apply(std::move(*map));
          if (std::exchange(refresh_again_, false)) refresh();
        });
      });
}

void ClusterBroker::apply(SlotMap map) {
  const bool first = !map_;
  map_ = std::move(map);
  if (first) log::info("redis cluster: " + std::to_string(map_->masters().size()) + " masters");
  for (auto& [room, r] : rooms_) {
    const HostPort* master =
        map_->master(key_slot(room_key(options_.key_prefix, room, "owner")));
    const std::string target = master != nullptr ? name_of(*master) : "";
    if (target != r.node) move_subscription(room, r, !r.node.empty());
  }
  auto queued = std::move(queue_);
  queue_.clear();
  queue_timer_.cancel();
  for (auto& [room, op] : queued) op(broker_of(room));
}

// ---------------------------------------------------------------------------------------
// Shutdown

void ClusterBroker::shutdown() {
  if (!thread_.joinable()) return;
  std::promise<void> stopped;
  boost::asio::post(io_, [this, &stopped] {
    stopped_ = true;
    queue_.clear();
    rooms_.clear();
    resolver_.cancel();
    refresh_timer_.cancel();
    queue_timer_.cancel();
    if (asking_) asking_->close();
    // The masters' brokers stop first: none of them calls on_redirect afterwards.
    for (auto& [name, broker] : nodes_) broker->shutdown();
    guard_.reset();
    stopped.set_value();
  });
  stopped.get_future().wait();
  io_.stop();
  thread_.join();
}

}  // namespace kasagi::broker
