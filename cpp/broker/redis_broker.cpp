#include "broker/redis_broker.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <future>
#include <stdexcept>
#include <type_traits>
#include <boost/asio/post.hpp>
#include "broker/redis_records.hpp"
#include "telemetry/log.hpp"

namespace kasagi::broker {
namespace {

// Reconnection backoff: doubles from the first to the last, each delay drawn from its
// upper half (jitter: instances that lost Redis together do not return in lockstep).
constexpr auto kFirstBackoff = std::chrono::milliseconds(50);
constexpr auto kLastBackoff = std::chrono::milliseconds(2000);
// Commands issued in this window after construction wait for the first connection (Redis
// starting alongside), at most this many: a bound on memory, far above a server's first
// burst of joins. Later ones complete unavailable at once while disconnected.
constexpr auto kFirstConnectWait = std::chrono::milliseconds(5000);
constexpr std::size_t kQueueLimit = 10000;

// The Status of a script that returns 1 (done) or 0 (fenced); no reply or an error reply
// is unavailable.
Status script_status(const redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_INTEGER) return Status::unavailable;
  return r->integer == 1 ? Status::ok : Status::fenced;
}

std::string random_id() {
  std::random_device rd;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
  return buf;
}

// Sentinel mode: the master's address comes later; its password now.
RedisUrl master_url(std::string password) {
  RedisUrl url;
  url.password = std::move(password);
  return url;
}

SentinelSettings checked(SentinelSettings s) {
  if (s.sentinels.empty()) throw std::invalid_argument("sentinel: no Sentinel address given");
  if (s.master_name.empty()) throw std::invalid_argument("master_name: must not be empty");
  return s;
}

}  // namespace

RedisBroker::RedisBroker(std::string url, BrokerOptions options, metrics::Metrics& metrics)
    : RedisBroker(parse_redis_url(url), std::nullopt, std::move(options), metrics, false) {}

RedisBroker::RedisBroker(RedisUrl url, BrokerOptions options, metrics::Metrics& metrics,
                         bool sharded_pubsub)
    : RedisBroker(std::move(url), std::nullopt, std::move(options), metrics, sharded_pubsub) {}

RedisBroker::RedisBroker(SentinelSettings sentinel, std::string password, BrokerOptions options,
                         metrics::Metrics& metrics)
    : RedisBroker(master_url(std::move(password)), checked(std::move(sentinel)),
                  std::move(options), metrics, false) {}

RedisBroker::RedisBroker(RedisUrl url, std::optional<SentinelSettings> sentinel,
                         BrokerOptions options, metrics::Metrics& metrics, bool sharded_pubsub)
    : url_(std::move(url)),
      where_(sentinel ? "master '" + sentinel->master_name + "' (Sentinel)"
                      : url_.host + ":" + std::to_string(url_.port)),
      options_(std::move(options)),
      sharded_(sharded_pubsub),
      metrics_(metrics),
      probe_channel_(options_.key_prefix + "kasagi:probe:" + random_id()),
      guard_(io_.get_executor()),
      sentinel_(sentinel ? std::make_unique<SentinelDiscovery>(io_, std::move(*sentinel),
                                                               options_.command_timeout)
                         : nullptr),
      backoff_(kFirstBackoff),
      rng_(std::random_device{}()),
      queue_until_(Clock::now() + kFirstConnectWait),
      thread_([this] { io_.run(); }) {
  // Called on our thread.
  if (sentinel_) sentinel_->on_switch([this](const HostPort& m) { master_switched(m); });
  boost::asio::post(io_, [this] { connect(); });
}

RedisBroker::~RedisBroker() { shutdown(); }

// Returns f wrapped so that it does nothing once the connections it belongs to are gone
// (or the broker is stopped): handlers of an old connection attempt are then inert.
template <class F>
auto RedisBroker::guarded(F f) {
  return [this, generation = generation_, f = std::move(f)](auto&&... args) mutable {
    if (generation == generation_ && !stopped_) f(std::forward<decltype(args)>(args)...);
  };
}

// ---------------------------------------------------------------------------------------
// Connection life cycle

void RedisBroker::connect() {
  link_ = Link::connecting;
  ++generation_;
  cmd_ready_ = sub_ready_ = false;
  // The whole attempt (resolve, connect, handshake) has the time of one command.
  retry_timer_.expires_after(options_.command_timeout);
  retry_timer_.async_wait(guarded([this](const boost::system::error_code& ec) {
    if (!ec) lose("no connection within command_timeout");
  }));
  if (!sentinel_) return resolve();
  sentinel_->ask(guarded([this](std::optional<HostPort> master, const std::string& why) {
    if (!master) return lose("no Sentinel named the master: " + why);
    url_.host = master->host;
    url_.port = master->port;
    where_ = master->host + ":" + std::to_string(master->port);
    resolve();
  }));
}

void RedisBroker::resolve() {
  resolver_.async_resolve(
      url_.host, std::to_string(url_.port),
      guarded([this](const boost::system::error_code& ec,
                     const boost::asio::ip::tcp::resolver::results_type& results) {
        if (ec || results.empty()) return lose("cannot resolve " + url_.host);
        auto it = results.begin();
        std::advance(it, endpoint_index_ % results.size());
        open_connections(it->endpoint());
      }));
}

// Sentinel mode, while connected: asks the Sentinels again every probe_interval.
void RedisBroker::check_master() {
  master_timer_.expires_after(options_.probe_interval);
  master_timer_.async_wait(guarded([this](const boost::system::error_code& ec) {
    if (ec) return;
    verify_master();
    check_master();
  }));
}

// Moves to the master the Sentinels name if it is another one. No answer keeps the
// current master (the probe watches it).
void RedisBroker::verify_master() {
  sentinel_->ask(guarded([this](std::optional<HostPort> master, const std::string&) {
    if (master && (master->host != url_.host || master->port != url_.port)) {
      lose("the Sentinels name " + master->host + ":" + std::to_string(master->port) +
           " as the master now");
    }
  }));
}

// A Sentinel announced a failover: move at once, or retry at once if disconnected.
void RedisBroker::master_switched(const HostPort& master) {
  if (stopped_) return;
  if (link_ == Link::up) {
    if (master.host == url_.host && master.port == url_.port) return;
    return lose("a Sentinel announced " + master.host + ":" + std::to_string(master.port) +
                " as the master");
  }
  if (link_ == Link::down) {
    retry_timer_.cancel();  // its handler belongs to the old generation: inert
    connect();
  }
}

void RedisBroker::open_connections(const boost::asio::ip::tcp::endpoint& endpoint) {
  cmd_ = RedisConnection::open(io_, endpoint, options_.command_timeout,
                               {.connected = guarded([this] {
                                  handshake(*cmd_);
                                  load_scripts();
                                }),
                                .lost = guarded([this](const std::string& why) {
                                  lose("command connection: " + why);
                                }),
                                .push = {}});
  sub_ = SubscriberConnection::open(
      io_, endpoint,
      {.connected = guarded([this] {
         handshake(*sub_);
         sub_->subscribe(probe_channel_);  // classic in every mode; confirmed in on_push
       }),
       .lost = guarded([this](const std::string& why) { lose("subscriber connection: " + why); }),
       .push = guarded([this](const redisReply* r) { on_push(*r); })});
}

// Sends AUTH and SELECT as the URL asks; an error reply fails the attempt.
template <class Connection>
void RedisBroker::handshake(Connection& conn) {
  auto check = guarded([this](const redisReply* r) {
    if (r != nullptr && r->type == REDIS_REPLY_ERROR) lose(r->str);
  });
  if (!url_.password.empty()) {
    if (url_.user.empty()) {
      conn.command({"AUTH", url_.password}, check);
    } else {
      conn.command({"AUTH", url_.user, url_.password}, check);
    }
  }
  if (url_.db != 0) conn.command({"SELECT", std::to_string(url_.db)}, check);
  // A Sentinel's answer may be stale (a failover under way): the master must say so itself.
  if (sentinel_ && std::is_same_v<Connection, RedisConnection>) {
    conn.command({"ROLE"}, guarded([this](const redisReply* r) {
      if (r == nullptr) return;  // the connection is gone: `lost` says so
      const bool master = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                          reply_text(*r->element[0]) == "master";
      if (!master) lose(where_ + " is not a master (yet)");
    }));
  }
}

// Scripts are loaded on every new command connection (the server may have restarted or
// changed), before any EVALSHA: a NOSCRIPT retry would break the call order.
void RedisBroker::load_scripts() {
  for (std::size_t i = 0; i < scripts::kAll.size(); ++i) {
    cmd_->command({"SCRIPT", "LOAD", scripts::kAll[i]}, guarded([this, i](const redisReply* r) {
      if (r == nullptr) return;  // the connection is gone: `lost` says so
      if (r->type != REDIS_REPLY_STRING) return lose("SCRIPT LOAD failed");
      sha_[i] = reply_text(*r);
      if (i + 1 < scripts::kAll.size()) return;
      cmd_ready_ = true;
      maybe_up();
    }));
  }
}

void RedisBroker::maybe_up() {
  if (!cmd_ready_ || !sub_ready_ || link_ != Link::connecting) return;
  link_ = Link::up;
  retry_timer_.cancel();
  backoff_ = kFirstBackoff;
  if (ever_up_) {
    metrics_.redis_reconnects.fetch_add(1, std::memory_order_relaxed);
    log::info("redis: reconnected to " + where_);
  } else {
    log::info("redis: connected to " + where_);
  }
  ever_up_ = true;
  last_failure_.clear();
  probe_seen_ = probe_seq_;
  probe_sent_.clear();
  probe_tick();
  if (sentinel_) check_master();
  for (auto it = rooms_.begin(); it != rooms_.end();) reconcile(it++);
  auto queued = std::move(queue_);
  queue_.clear();
  queue_timer_.cancel();
  for (auto& op : queued) op(true);
}

// Closes both connections (commands in flight complete unavailable) and schedules the next
// attempt.
void RedisBroker::lose(std::string_view why) {
  if (link_ == Link::down) return;
  // One line per loss, and per distinct reason that attempts fail (a wrong password).
  if (link_ == Link::up) {
    log::warning("redis: lost " + where_ + " (" + std::string(why) + "); reconnecting");
  } else {
    if (why != last_failure_) {
      log::warning("redis: cannot connect to " + where_ + " (" + std::string(why) +
                   "); retrying");
    }
    ++endpoint_index_;  // the next attempt tries the host's next address
  }
  last_failure_ = why;
  link_ = Link::down;
  ++generation_;
  resolver_.cancel();
  probe_timer_.cancel();
  master_timer_.cancel();
  probe_sent_.clear();
  for (auto& [channel, room] : rooms_) {
    room.state = Channel::none;
    room.gap = room.gap || ever_up_;
  }
  auto cmd = std::move(cmd_);
  auto sub = std::move(sub_);
  if (cmd) cmd->close();
  if (sub) sub->close();

  std::uniform_int_distribution<Clock::rep> upper_half(backoff_.count() / 2, backoff_.count());
  const Clock::duration delay(upper_half(rng_));
  backoff_ = std::min<Clock::duration>(backoff_ * 2, kLastBackoff);
  retry_timer_.expires_after(delay);
  retry_timer_.async_wait(guarded([this](const boost::system::error_code& ec) {
    if (!ec) connect();
  }));
}

// ---------------------------------------------------------------------------------------
// Commands

void RedisBroker::submit(Op op) {
  boost::asio::post(io_, [this, op = std::move(op)]() mutable {
    if (stopped_) return;
    if (link_ == Link::up) return op(true);
    if (ever_up_ || Clock::now() >= queue_until_ || queue_.size() >= kQueueLimit) {
      return op(false);
    }
    queue_.push_back(std::move(op));
    if (queue_.size() > 1) return;
    queue_timer_.expires_at(queue_until_);
    queue_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopped_) return;
      auto expired = std::move(queue_);
      queue_.clear();
      for (auto& op : expired) op(false);
    });
  });
}

// Sends a command on the command connection (which is up); times its round trip. `done`
// is dropped once the broker is stopped.
void RedisBroker::send(const std::vector<std::string_view>& args, OnReply done,
                       Clock::duration extra) {
  cmd_->command(
      args,
      [this, start = Clock::now(), done = std::move(done)](const redisReply* r) {
        if (stopped_) return;
        if (r != nullptr) {
          const std::chrono::duration<double> took = Clock::now() - start;
          metrics_.redis_roundtrip.observe(took.count());
        }
        done(r);
      },
      extra);
}

void RedisBroker::eval(scripts::Script script, const std::vector<std::string_view>& keys,
                       const std::vector<std::string_view>& args, OnReply done) {
  const std::string nkeys = std::to_string(keys.size());
  std::vector<std::string_view> argv{"EVALSHA", sha_[script], nkeys};
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  send(argv, [this, done = std::move(done)](const redisReply* r) {
    const std::string_view error =
        r != nullptr && r->type == REDIS_REPLY_ERROR ? std::string_view(r->str, r->len) : "";
    // Someone ran SCRIPT FLUSH: a new connection loads the scripts again.
    if (error.starts_with("NOSCRIPT")) lose("the scripts were flushed");
    // A demoted master: find the new one (Sentinel mode) or wait for this one to return.
    if (error.starts_with("READONLY")) lose("the server became a replica");
    // Cluster mode: the slot moved or is moving; the next map routes the room elsewhere.
    if (options_.on_redirect && (error.starts_with("MOVED") || error.starts_with("ASK") ||
                                 error.starts_with("TRYAGAIN") ||
                                 error.starts_with("CLUSTERDOWN"))) {
      options_.on_redirect();
    }
    done(r);
  });
}

void RedisBroker::claim(const std::string& room, const std::string& token,
                        std::chrono::milliseconds ttl, Claimed done) {
  submit([this, owner = room_key(options_.key_prefix, room, "owner"), token,
          ttl = std::to_string(ttl.count()), done = std::move(done)](bool connected) mutable {
    if (!connected) return done(Status::unavailable, {});
    eval(scripts::kClaimScript, {owner}, {token, ttl},
         [done = std::move(done)](const redisReply* r) {
           if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
             return done(Status::unavailable, {});
           }
           const bool ok = r->element[0]->integer == 1;
           done(ok ? Status::ok : Status::fenced, std::string(reply_text(*r->element[1])));
         });
  });
}

void RedisBroker::release(const std::string& room, const std::string& token) {
  submit([this, owner = room_key(options_.key_prefix, room, "owner"), token](bool connected) {
    if (connected) eval(scripts::kReleaseScript, {owner}, {token}, [](const redisReply*) {});
  });
}

void RedisBroker::load(const std::string& room, Loaded done) {
  submit([this, snapshot = room_key(options_.key_prefix, room, "snapshot"),
          ops = room_key(options_.key_prefix, room, "ops"),
          done = std::move(done)](bool connected) mutable {
    if (!connected) return done(Status::unavailable, {});
    eval(scripts::kLoadScript, {snapshot, ops}, {}, [done = std::move(done)](const redisReply* r) {
      if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        return done(Status::unavailable, {});
      }
      RoomLog log;
      log.snapshot = parse_snapshot(*r->element[0]);
      log.ops = parse_ops(*r->element[1], log.snapshot ? log.snapshot->version : 0);
      done(Status::ok, std::move(log));
    });
  });
}

void RedisBroker::append(const std::string& room, const std::string& token, OpEntry entry,
                         std::string message, Done done) {
  const auto& prefix = options_.key_prefix;
  submit([this, owner = room_key(prefix, room, "owner"), ops = room_key(prefix, room, "ops"),
          channel = room_key(prefix, room, "channel"), token, message = std::move(message),
          fields = op_fields(entry), done = std::move(done)](bool connected) mutable {
    if (!connected) return done(Status::unavailable);
    const std::string max_len = std::to_string(options_.ops_max_len);
    std::vector<std::string_view> args{token, max_len, channel, message};
    args.insert(args.end(), fields.begin(), fields.end());
    write(sharded_ ? scripts::kAppendShardedScript : scripts::kAppendScript, {owner, ops}, args,
          [this](const redisReply* r) {
            const Status s = script_status(r);
            if (s == Status::ok) metrics_.redis_publish.fetch_add(1, std::memory_order_relaxed);
            return s;
          },
          std::move(done));
  });
}

// Runs a script that writes; `status` reads its reply. With wait_replicas, a WAIT follows
// it, and `done` gets ok only once enough replicas confirmed the write (so that it
// survives a failover).
void RedisBroker::write(scripts::Script script, const std::vector<std::string_view>& keys,
                        const std::vector<std::string_view>& args,
                        std::function<Status(const redisReply*)> status, Done done) {
  const auto replicas = options_.wait_replicas;
  if (replicas == 0) {
    return eval(script, keys, args,
                [status = std::move(status), done = std::move(done)](const redisReply* r) {
                  done(status(r));
                });
  }
  // The write's result, read when the WAIT that follows it completes.
  auto stored = std::make_shared<Status>(Status::unavailable);
  eval(script, keys, args,
       [stored, status = std::move(status)](const redisReply* r) { *stored = status(r); });
  send({"WAIT", std::to_string(replicas), std::to_string(options_.wait_timeout.count())},
       [stored, replicas, done = std::move(done)](const redisReply* r) {
         if (*stored != Status::ok) return done(*stored);
         const bool enough = r != nullptr && r->type == REDIS_REPLY_INTEGER &&
                             r->integer >= static_cast<long long>(replicas);
         done(enough ? Status::ok : Status::unavailable);
       },
       options_.wait_timeout);
}

void RedisBroker::save_snapshot(const std::string& room, const std::string& token,
                                Snapshot snapshot, Done done) {
  submit([this, owner = room_key(options_.key_prefix, room, "owner"),
          key = room_key(options_.key_prefix, room, "snapshot"), token,
          fields = snapshot_fields(snapshot), done = std::move(done)](bool connected) mutable {
    if (!connected) return done(Status::unavailable);
    std::vector<std::string_view> args{token};
    args.insert(args.end(), fields.begin(), fields.end());
    write(scripts::kSaveSnapshotScript, {owner, key}, args, script_status, std::move(done));
  });
}

void RedisBroker::publish(const std::string& room, std::string message) {
  submit([this, channel = room_key(options_.key_prefix, room, "channel"),
          message = std::move(message)](bool connected) {
    if (!connected) return;
    send({sharded_ ? "SPUBLISH" : "PUBLISH", channel, message}, [](const redisReply*) {});
    metrics_.redis_publish.fetch_add(1, std::memory_order_relaxed);
  });
}

// ---------------------------------------------------------------------------------------
// Pub/sub

void RedisBroker::subscribe(const std::string& room, std::weak_ptr<Subscriber> subscriber) {
  boost::asio::post(io_, [this, channel = room_key(options_.key_prefix, room, "channel"),
                          subscriber = std::move(subscriber)] {
    if (stopped_) return;
    auto [it, added] = rooms_.try_emplace(channel);
    // Subscribing while disconnected: what was published meanwhile is lost.
    if (added) it->second.gap = ever_up_ && link_ != Link::up;
    it->second.subscribers.push_back(subscriber);
    reconcile(it);
  });
}

void RedisBroker::resubscribe(const std::string& room, std::weak_ptr<Subscriber> subscriber) {
  boost::asio::post(io_, [this, channel = room_key(options_.key_prefix, room, "channel"),
                          subscriber = std::move(subscriber)] {
    if (stopped_) return;
    auto it = rooms_.try_emplace(channel).first;
    it->second.gap = true;
    it->second.subscribers.push_back(subscriber);
    // Already subscribed here (it came back before it left): the gap is due now.
    if (it->second.state == Channel::subscribed) {
      it->second.gap = false;
      if (auto s = subscriber.lock()) s->on_gap();
    }
    reconcile(it);
  });
}

void RedisBroker::unsubscribe(const std::string& room, const Subscriber* subscriber) {
  boost::asio::post(io_, [this, channel = room_key(options_.key_prefix, room, "channel"),
                          subscriber] {
    auto it = rooms_.find(channel);
    if (stopped_ || it == rooms_.end()) return;
    std::erase_if(it->second.subscribers, [subscriber](const auto& w) {
      auto s = w.lock();
      return !s || s.get() == subscriber;
    });
    reconcile(it);
  });
}

// Brings the server-side subscription of a channel in line with its subscribers, one
// (UN)SUBSCRIBE in flight at a time: hiredis mixes up the callbacks of a channel that is
// unsubscribed and subscribed again before the first confirmation.
void RedisBroker::reconcile(Rooms::iterator it) {
  Room& r = it->second;
  const bool wanted = !r.subscribers.empty();
  if (link_ != Link::up) {
    if (!wanted) rooms_.erase(it);
    return;
  }
  if (r.state == Channel::none && wanted) {
    r.state = Channel::subscribing;
    sub_->subscribe(it->first, sharded_);
  } else if (r.state == Channel::none) {
    rooms_.erase(it);
  } else if (r.state == Channel::subscribed && !wanted) {
    r.state = Channel::unsubscribing;
    sub_->unsubscribe(it->first, sharded_);
  }
}

// A reply on the subscriber connection: [kind, channel, payload or count].
void RedisBroker::on_push(const redisReply& reply) {
  if (reply.type == REDIS_REPLY_ERROR) {
    // A subscription refused: in a Cluster, MOVED for a room channel whose slot left.
    const std::string error(reply.str, reply.len);
    if (options_.on_redirect && error.starts_with("MOVED")) options_.on_redirect();
    return lose("subscription refused: " + error);
  }
  if (reply.type != REDIS_REPLY_ARRAY || reply.elements != 3) return;
  std::string_view kind = reply_text(*reply.element[0]);
  const bool sharded = kind == "smessage" || kind == "ssubscribe" || kind == "sunsubscribe";
  if (sharded) kind.remove_prefix(1);
  const std::string_view channel = reply_text(*reply.element[1]);
  if (channel == probe_channel_) {
    if (kind == "message") probe_received(reply_text(*reply.element[2]));
    if (kind == "subscribe") {
      sub_ready_ = true;
      maybe_up();
    }
    return;
  }
  auto it = rooms_.find(std::string(channel));
  if (it == rooms_.end()) return;
  Room& r = it->second;
  if (kind == "message") return deliver(it, std::string(reply_text(*reply.element[2])));
  if (kind == "subscribe") {
    r.state = Channel::subscribed;
    if (std::exchange(r.gap, false)) {
      for (const auto& w : r.subscribers) {
        if (auto s = w.lock()) s->on_gap();
      }
    }
  } else if (kind == "unsubscribe" && sharded && r.state == Channel::subscribed) {
    // The server dropped it: the slot migrated. The Cluster broker moves the room to the
    // slot's new master (with on_gap there); subscribing here again would only get MOVED.
    r.state = Channel::none;
    r.gap = true;
    if (options_.on_redirect) options_.on_redirect();
    return;
  } else if (kind == "unsubscribe") {
    r.state = Channel::none;
  }
  reconcile(it);
}

void RedisBroker::deliver(Rooms::iterator it, std::string message) {
  metrics_.redis_received.fetch_add(1, std::memory_order_relaxed);
  auto& subscribers = it->second.subscribers;
  std::erase_if(subscribers, [](const auto& w) { return w.expired(); });
  for (const auto& w : subscribers) {
    if (auto s = w.lock()) s->on_message(message);
  }
  if (subscribers.empty()) reconcile(it);
}

// ---------------------------------------------------------------------------------------
// Probe

void RedisBroker::probe_tick() {
  probe_timer_.expires_after(options_.probe_interval);
  probe_timer_.async_wait(guarded([this](const boost::system::error_code& ec) {
    if (ec) return;
    if (!probe_sent_.empty() &&
        Clock::now() - probe_sent_.front().second > options_.probe_timeout) {
      return probe_failed("a probe message did not arrive");
    }
    const std::uint64_t seq = ++probe_seq_;
    send({"PUBLISH", probe_channel_, std::to_string(seq)},
         guarded([this, seq](const redisReply* r) { probe_published(seq, r); }));
    probe_tick();
  }));
}

void RedisBroker::probe_published(std::uint64_t seq, const redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_INTEGER) return;
  if (r->integer == 0) return probe_failed("the probe channel has no subscriber");
  if (seq > probe_seen_) probe_sent_.emplace_back(seq, Clock::now());
}

void RedisBroker::probe_received(std::string_view payload) {
  std::uint64_t seq = 0;
  std::from_chars(payload.data(), payload.data() + payload.size(), seq);
  probe_seen_ = std::max(probe_seen_, seq);
  while (!probe_sent_.empty() && probe_sent_.front().first <= probe_seen_) {
    probe_sent_.pop_front();
  }
}

void RedisBroker::probe_failed(std::string_view why) {
  metrics_.redis_probe_failures.fetch_add(1, std::memory_order_relaxed);
  lose(why);
}

// ---------------------------------------------------------------------------------------
// Shutdown

// Runs on the broker's thread: drops everything pending without completing it.
void RedisBroker::stop() {
  stopped_ = true;
  ++generation_;
  queue_.clear();
  rooms_.clear();
  if (cmd_) cmd_->close();
  if (sub_) sub_->close();
  cmd_.reset();
  sub_.reset();
  resolver_.cancel();
  retry_timer_.cancel();
  probe_timer_.cancel();
  queue_timer_.cancel();
  master_timer_.cancel();
  if (sentinel_) sentinel_->close();
  guard_.reset();
}

void RedisBroker::shutdown() {
  if (!thread_.joinable()) return;
  if (thread_.get_id() == std::this_thread::get_id()) {
    stop();
    io_.stop();
    thread_.detach();
    return;
  }
  std::promise<void> stopped;
  boost::asio::post(io_, [this, &stopped] {
    stop();
    stopped.set_value();
  });
  stopped.get_future().wait();
  io_.stop();
  thread_.join();
}

}  // namespace kasagi::broker
