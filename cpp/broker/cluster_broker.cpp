#include "broker/cluster_broker.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <future>
#include <set>
#include <stdexcept>
#include <boost/asio/post.hpp>
#include "telemetry/log.hpp"

namespace kasagi::broker {
namespace {

// As RedisBroker: commands issued in this window after construction wait for the first
// slot map (a server starting alongside the Cluster), at most this many.
constexpr auto kFirstMapWait = std::chrono::milliseconds(5000);
constexpr std::size_t kQueueLimit = 10000;
// MOVED/ASK hops per command: one is normal, two happen when a slot moves twice in a row;
// more means nodes that disagree, and the map is refreshed instead.
constexpr int kMaxRedirects = 5;
// TRYAGAIN answers retried per command, the first after kFirstRetry, each wait doubling to
// kLastRetry: about 1.5 s in all, the time a reshard takes to move one slot's keys.
constexpr int kMaxRetries = 10;
constexpr auto kFirstRetry = std::chrono::milliseconds(20);
constexpr auto kLastRetry = std::chrono::milliseconds(200);

std::string name_of(const HostPort& n) { return n.host + ":" + std::to_string(n.port); }

std::vector<HostPort> checked(std::vector<HostPort> seeds) {
  if (seeds.empty()) throw std::invalid_argument("cluster: no node address given");
  return seeds;
}

}  // namespace

// One refresh: CLUSTER SLOTS asked of every candidate at once; the first good answer wins.
struct ClusterBroker::Question {
  std::size_t pending = 0;  // candidates that have not answered or failed yet
  bool answered = false;
};

ClusterBroker::ClusterBroker(std::vector<HostPort> seeds, std::string password,
                             BrokerOptions options, metrics::Metrics& metrics)
    : seeds_(checked(std::move(seeds))),
      password_(std::move(password)),
      options_(std::move(options)),
      metrics_(metrics),
      guard_(io_.get_executor()),
      queue_until_(Clock::now() + kFirstMapWait),
      thread_([this] { io_.run(); }) {
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
  const HostPort* master = map_->master(slot_of(room));
  return master != nullptr ? broker_at(*master) : nullptr;
}

std::uint16_t ClusterBroker::slot_of(const std::string& room) const {
  return key_slot(room_key(options_.key_prefix, room, "owner"));  // all its keys' slot
}

// The broker of the node at `node`, made on first use (a master, or an importing node
// named by ASK) and kept.
RedisBroker* ClusterBroker::broker_at(const HostPort& node) {
  auto& broker = nodes_[name_of(node)];
  if (!broker) {
    RedisUrl url;
    url.host = node.host;
    url.port = node.port;
    url.password = password_;
    // Called on that broker's thread.
    ClusterLink link{
        .refresh =
            [this] {
              boost::asio::post(io_, [this] {
                if (!stopped_) refresh();
              });
            },
        .redirected =
            [this](Call call, Redirection r) {
              boost::asio::post(io_, [this, call = std::move(call), r = std::move(r)]() mutable {
                follow(std::move(call), std::move(r));
              });
            }};
    broker = std::make_unique<RedisBroker>(std::move(url), options_, metrics_, std::move(link));
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
// Redirections

// A command answered MOVED, ASK or TRYAGAIN by the node it was sent to.
void ClusterBroker::follow(Call call, Redirection r) {
  if (stopped_) return;
  metrics_.redis_redirects.fetch_add(1, std::memory_order_relaxed);
  switch (r.kind) {
    case Redirection::Kind::moved:
      if (++call->redirects > kMaxRedirects) return give_up(call, "MOVED");
      // The slot is served there now; other slots may have moved with it.
      if (map_) {
        map_->moved(r.slot, r.node);
        reroute();
      }
      refresh();
      return broker_at(r.node)->resend(std::move(call));
    case Redirection::Kind::ask:
      if (++call->redirects > kMaxRedirects) return give_up(call, "ASK");
      call->asking = true;  // this command only: the slot is still the migrating node's
      return broker_at(r.node)->resend(std::move(call));
    case Redirection::Kind::tryagain:
      if (++call->retries > kMaxRetries) return give_up(call, "TRYAGAIN");
      return retry_later(std::move(call));
  }
}

// Sends `call` again after a wait that doubles with each TRYAGAIN, routed by the map then.
void ClusterBroker::retry_later(Call call) {
  auto wait = kFirstRetry * (1 << std::min(call->retries - 1, 8));
  wait = std::min<std::chrono::milliseconds>(wait, kLastRetry);
  const auto due = Clock::now() + wait;
  const bool earliest = retries_.empty() || due < retries_.begin()->first;
  retries_.emplace(due, std::move(call));
  if (earliest) arm_retry_timer();
}

// Wakes run_retries() when the earliest retry is due.
void ClusterBroker::arm_retry_timer() {
  retry_timer_.expires_at(retries_.begin()->first);
  retry_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !stopped_) run_retries();
  });
}

void ClusterBroker::run_retries() {
  const auto now = Clock::now();
  while (!retries_.empty() && retries_.begin()->first <= now) {
    Call call = std::move(retries_.begin()->second);
    retries_.erase(retries_.begin());
    send_routed(std::move(call));
  }
  if (!retries_.empty()) arm_retry_timer();
}

// Sends `call` to the broker of its room's master now, or completes it unavailable when
// no master is known for it.
void ClusterBroker::send_routed(Call call) {
  RedisBroker* b = map_ ? broker_of(call->room) : nullptr;
  if (b == nullptr) return call->complete(nullptr);
  b->resend(std::move(call));
}

void ClusterBroker::give_up(const Call& call, const char* why) {
  log::warning("redis cluster: a command of room " + call->room + " got " + why +
               " too many times; it fails, and the slot map is read again");
  call->complete(nullptr);
  refresh();
}

// ---------------------------------------------------------------------------------------
// Subscriptions: each room's go through the broker of its master, and move with it.

void ClusterBroker::subscribe(const std::string& room, std::weak_ptr<Subscriber> subscriber) {
  boost::asio::post(io_, [this, room, subscriber = std::move(subscriber)] {
    if (stopped_) return;
    auto [it, added] = rooms_.try_emplace(room);
    Room& r = it->second;
    if (added) r.slot = slot_of(room);
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

// Brings every room's subscription in line with the map: a room whose master changed
// moves; a room on the same master as before is subscribed there again if the server had
// dropped it (its slot left and came back between two maps).
void ClusterBroker::reroute() {
  std::set<std::string> unchanged;
  for (auto& [room, r] : rooms_) {
    const HostPort* master = map_->master(r.slot);
    const std::string target = master != nullptr ? name_of(*master) : "";
    if (target != r.node) {
      move_subscription(room, r, !r.node.empty());
    } else if (!target.empty()) {
      unchanged.insert(target);
    }
  }
  for (const auto& name : unchanged) nodes_[name]->check_subscriptions();
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

// The nodes to ask: the known masters and the seeds, each once.
std::vector<HostPort> ClusterBroker::candidates() const {
  std::vector<HostPort> out = map_ ? map_->masters() : std::vector<HostPort>{};
  for (const auto& seed : seeds_) {
    if (std::find(out.begin(), out.end(), seed) == out.end()) out.push_back(seed);
  }
  return out;
}

// Asks every candidate at once; one question at a time (a trigger during one asks again
// once it is answered).
void ClusterBroker::refresh() {
  if (question_) {
    refresh_again_ = true;
    return;
  }
  const auto nodes = candidates();
  question_ = std::make_shared<Question>();
  question_->pending = nodes.size();
  // Connections to nodes that are no longer candidates are closed.
  for (auto it = asked_.begin(); it != asked_.end();) {
    const bool wanted = std::any_of(nodes.begin(), nodes.end(),
                                    [&](const HostPort& n) { return name_of(n) == it->first; });
    if (!wanted && it->second.conn) it->second.conn->close();
    it = wanted ? std::next(it) : asked_.erase(it);
  }
  const auto q = question_;
  for (const auto& node : nodes) ask(q, node);
}

void ClusterBroker::ask(const std::shared_ptr<Question>& q, const HostPort& node) {
  Asked& asked = asked_[name_of(node)];
  if (asked.endpoint) return ask_on(q, node, asked);
  resolver_.async_resolve(
      node.host, std::to_string(node.port),
      [this, q, node](const boost::system::error_code& ec,
                      const boost::asio::ip::tcp::resolver::results_type& results) {
        if (stopped_) return;
        if (ec || results.empty()) return no_answer(q);
        Asked& asked = asked_[name_of(node)];
        asked.endpoint = results.begin()->endpoint();
        ask_on(q, node, asked);
      });
}

// Sends CLUSTER SLOTS on the node's connection, opened (with AUTH) if there is none. A node
// that does not answer within command_timeout loses its connection, opened again next time.
void ClusterBroker::ask_on(const std::shared_ptr<Question>& q, const HostPort& node,
                           Asked& asked) {
  if (!asked.conn || asked.conn->gone()) {
    asked.conn = RedisConnection::open(io_, *asked.endpoint, options_.command_timeout,
                                       {.connected = {}, .lost = {}, .push = {}});
    // Sent once connected (hiredis keeps it); an error fails the CLUSTER SLOTS after it.
    if (!password_.empty()) asked.conn->command({"AUTH", password_}, [](const redisReply*) {});
  }
  asked.conn->command({"CLUSTER", "SLOTS"}, [this, q, node](const redisReply* r) {
    if (stopped_ || q->answered) return;
    auto map = r != nullptr ? SlotMap::parse(*r, node) : std::nullopt;
    if (!map || map->masters().empty()) return no_answer(q);
    q->answered = true;
    question_.reset();
    last_failure_.clear();
    apply(std::move(*map));
    if (std::exchange(refresh_again_, false)) refresh();
  });
}

void ClusterBroker::no_answer(const std::shared_ptr<Question>& q) {
  if (q->answered || --q->pending > 0) return;
  question_.reset();
  refresh_again_ = false;
  const std::string why = "no node answered CLUSTER SLOTS";
  if (why != last_failure_) log::warning("redis cluster: " + why + "; retrying");
  last_failure_ = why;  // the periodic refresh tries again
}

void ClusterBroker::apply(SlotMap map) {
  const bool first = !map_;
  map_ = std::move(map);
  if (first) log::info("redis cluster: " + std::to_string(map_->masters().size()) + " masters");
  reroute();
  // A node that is no longer a master (a replica promoted in its place): the commands
  // waiting for its connection go to the masters that serve their rooms now.
  const auto masters = map_->masters();
  for (auto& [name, broker] : nodes_) {
    if (std::any_of(masters.begin(), masters.end(),
                    [&](const HostPort& m) { return name_of(m) == name; })) {
      continue;
    }
    broker->hand_over([this](std::vector<Call> calls) {
      boost::asio::post(io_, [this, calls = std::move(calls)] {
        if (stopped_) return;
        for (const auto& call : calls) send_routed(call);
      });
    });
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
    retries_.clear();
    resolver_.cancel();
    refresh_timer_.cancel();
    queue_timer_.cancel();
    retry_timer_.cancel();
    for (auto& [name, asked] : asked_) {
      if (asked.conn) asked.conn->close();
    }
    // The masters' brokers stop first: none of them posts here afterwards.
    for (auto& [name, broker] : nodes_) broker->shutdown();
    guard_.reset();
    stopped.set_value();
  });
  stopped.get_future().wait();
  io_.stop();
  thread_.join();
}

}  // namespace kasagi::broker
