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
// starting alongside). At most this many commands wait for a connection (this one, or a
// new one after a loss): a bound on memory, far above a server's first burst of joins.
constexpr auto kFirstConnectWait = std::chrono::milliseconds(5000);
constexpr std::size_t kQueueLimit = 10000;
// How long calls wait after the server refused one for a moment (hold()).
constexpr auto kHoldRetry = std::chrono::milliseconds(100);

// The Status of a script that returns 1 (done), 0 or -1 (fenced: another token holds the
// lease, or nobody does); no reply, an error reply or anything else (-2: the log has a
// later entry) is unavailable.
Status script_status(const redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_INTEGER) return Status::unavailable;
  if (r->integer == 1) return Status::ok;
  return r->integer == 0 || r->integer == -1 ? Status::fenced : Status::unavailable;
}

bool is_error(const redisReply* r, std::string_view prefix) {
  return r != nullptr && r->type == REDIS_REPLY_ERROR &&
         std::string_view(r->str, r->len).starts_with(prefix);
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
    : RedisBroker(parse_redis_url(url), std::nullopt, std::move(options), metrics,
                  std::nullopt) {}

RedisBroker::RedisBroker(RedisUrl url, BrokerOptions options, metrics::Metrics& metrics,
                         ClusterLink cluster)
    : RedisBroker(std::move(url), std::nullopt, std::move(options), metrics,
                  std::move(cluster)) {}

RedisBroker::RedisBroker(SentinelSettings sentinel, std::string password, BrokerOptions options,
                         metrics::Metrics& metrics)
    : RedisBroker(master_url(std::move(password)), checked(std::move(sentinel)),
                  std::move(options), metrics, std::nullopt) {}

RedisBroker::RedisBroker(RedisUrl url, std::optional<SentinelSettings> sentinel,
                         BrokerOptions options, metrics::Metrics& metrics,
                         std::optional<ClusterLink> cluster)
    : url_(std::move(url)),
      where_(sentinel ? "master '" + sentinel->master_name + "' (Sentinel)"
                      : url_.host + ":" + std::to_string(url_.port)),
      options_(std::move(options)),
      cluster_(std::move(cluster)),
      sharded_(cluster_.has_value()),
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
    if (master && *master != HostPort{url_.host, url_.port}) {
      lose("the Sentinels name " + master->host + ":" + std::to_string(master->port) +
           " as the master now");
    }
  }));
}

// A Sentinel announced a failover: move at once, or retry at once if disconnected.
void RedisBroker::master_switched(const HostPort& master) {
  if (stopped_) return;
  if (link_ == Link::up) {
    if (master == HostPort{url_.host, url_.port}) return;
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
      io_, endpoint, options_.command_timeout,
      {.connected = guarded([this] {
         handshake(*sub_);
         sub_->subscribe(probe_channel_);  // classic in every mode; confirmed in on_push
       }),
       .lost = guarded([this](const std::string& why) { lose("subscriber connection: " + why); }),
       .push = guarded([this](const redisReply* r) { on_push(*r); }),
       .refused = guarded([this](const std::string& channel, std::string_view error) {
         on_refused(channel, error);
       })});
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
  send_queued();
}

// Sends what waited for the connection, in order: replays first (they were made first),
// then what was issued meanwhile. The first goes alone (the gate): a server that refuses
// commands for a moment (hold()) might refuse it and take the ones pipelined behind it
// (a replica attaching in between), putting the log out of order. The others follow once
// it is answered otherwise (open_gate()); calls issued meanwhile wait behind them.
void RedisBroker::send_queued() { send_waiting(true); }

// The gate was answered: the calls behind it go, pipelined.
void RedisBroker::open_gate() {
  gate_ = nullptr;
  send_waiting(false);
}

// Sends the waiting calls in order, the first only when `gated` (it becomes the gate);
// those past their deadline complete unavailable, after the sends (what their completions
// issue waits its turn).
void RedisBroker::send_waiting(bool gated) {
  queue_timer_.cancel();
  std::vector<Call> expired;
  const auto now = Clock::now();
  while (!queue_.empty() && !gate_) {
    auto call = std::move(queue_.front());
    queue_.pop_front();
    if (now >= call->deadline) {
      expired.push_back(std::move(call));
      continue;
    }
    if (call->cut_off) metrics_.redis_replayed.fetch_add(1, std::memory_order_relaxed);
    send_call(call);
    if (gated) gate_ = call;
  }
  if (!queue_.empty()) expire_waiting();
  for (auto& call : expired) call->complete(nullptr);
}

// The server refused `call` without running it, for a moment: a master that waits for
// replicas (min-replicas-to-write, just after a failover) or loads its data. It waits, in
// its order, with the calls behind it (they get the same answer) and those issued
// meanwhile, and all are sent again after kHoldRetry, within the replay window.
void RedisBroker::hold(const Call& call) {
  if (gate_ == call) gate_ = nullptr;
  requeue(call);
  if (held_) return;
  held_ = true;
  hold_timer_.expires_after(kHoldRetry);
  hold_timer_.async_wait([this, generation = generation_](const boost::system::error_code& ec) {
    if (ec || stopped_ || generation != generation_ || !held_) return;
    held_ = false;
    if (link_ == Link::up) send_queued();
  });
}

// Closes both connections and schedules the next attempt. The commands in flight are
// replayed on the next connection, or complete unavailable (replay()).
void RedisBroker::lose(std::string_view why) {
  if (link_ == Link::down) return;
  // Commands wait for the next connection this long from the loss (not from each failed
  // attempt after it).
  if (link_ == Link::up) queue_until_ = Clock::now() + options_.replay_timeout;
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
  held_ = false;  // the calls wait for the next connection now
  gate_ = nullptr;  // it is replayed (or completes unavailable) with the others
  hold_timer_.cancel();
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

// A script call of `room`: EVALSHA <sha> <numkeys> keys... args...
RedisBroker::Call RedisBroker::script(const std::string& room, scripts::Script which,
                                      std::vector<std::string> keys,
                                      std::vector<std::string> args, OnReply done) {
  auto call = std::make_shared<RedisCall>();
  call->room = room;
  call->script = which;
  call->args.reserve(1 + keys.size() + args.size());
  call->args.push_back(std::to_string(keys.size()));
  for (auto& k : keys) call->args.push_back(std::move(k));
  for (auto& a : args) call->args.push_back(std::move(a));
  call->done = std::move(done);
  return call;
}

void RedisBroker::submit(Call call) {
  boost::asio::post(io_, [this, call = std::move(call)]() mutable { dispatch(std::move(call)); });
}

void RedisBroker::resend(Call call) { submit(std::move(call)); }

// On our thread: sends the call now, or lets it wait for a connection (the first one, or
// the next one within replay_timeout of a loss), or completes it unavailable.
void RedisBroker::dispatch(Call call) {
  if (stopped_) return;
  if (link_ == Link::up && !held_ && !gate_) return send_call(call);
  if (link_ == Link::up) {  // held, or behind the gate: after the calls waiting, in order
    return wait_for_link(std::move(call), Clock::now() + options_.replay_timeout);
  }
  // A call that waited before (handed over by another node's broker) keeps its deadline.
  const auto deadline = call->after_loss ? call->deadline : queue_until_;
  if (ever_up_) call->after_loss = true;
  wait_for_link(std::move(call), deadline);
}

// Queues `call` until the connection is up, for at most until `deadline`, in the order
// calls were made: a replay goes before the calls issued after the loss (it was in flight
// before them, though its connection may be freed, and so report it, after a newer call
// was queued), a held call before those that were pipelined behind it.
void RedisBroker::wait_for_link(Call call, Clock::time_point deadline) {
  if (Clock::now() >= deadline || queue_.size() >= kQueueLimit) return call->complete(nullptr);
  call->deadline = deadline;
  const auto at = std::upper_bound(queue_.begin(), queue_.end(), call->seq,
                                   [](std::uint64_t seq, const Call& c) { return seq < c->seq; });
  queue_.insert(at, std::move(call));
  if (queue_.size() == 1) expire_waiting();
}

// Completes unavailable the waiting calls whose deadline passed; waits for the next one.
void RedisBroker::expire_waiting() {
  const auto now = Clock::now();
  std::optional<Clock::time_point> next;
  std::deque<Call> keep;
  for (auto& call : std::exchange(queue_, {})) {
    if (now >= call->deadline) {
      call->complete(nullptr);
    } else {
      next = next ? std::min(*next, call->deadline) : call->deadline;
      keep.push_back(std::move(call));
    }
  }
  // complete() may have queued more (a completion issuing a command): keep them after.
  for (auto& call : queue_) keep.push_back(std::move(call));
  queue_ = std::move(keep);
  if (!next) return;
  queue_timer_.expires_at(*next);
  queue_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !stopped_) expire_waiting();
  });
}

// Sends a call on the command connection (which is up): ASKING first after an ASK
// redirection, WAIT after it for a replicated write. Each send is a new attempt: replies
// to an earlier one (its WAIT, after it was redirected) are ignored.
void RedisBroker::send_call(const Call& call) {
  const std::uint64_t attempt = ++call->attempt;
  if (std::exchange(call->asking, false)) send({"ASKING"}, [](const redisReply*) {});
  std::vector<std::string_view> argv;
  argv.reserve(call->args.size() + 2);
  if (call->script) {
    argv.push_back("EVALSHA");
    argv.push_back(sha_[*call->script]);
  }
  argv.insert(argv.end(), call->args.begin(), call->args.end());
  send(argv, [this, call, attempt](const redisReply* r) { on_reply(call, attempt, r); });
  if (call->wait) {
    send({"WAIT", std::to_string(options_.wait_replicas),
          std::to_string(options_.wait_timeout.count())},
         [this, call, attempt](const redisReply* r) { on_waited(call, attempt, r); },
         options_.wait_timeout);
  }
}

void RedisBroker::on_reply(const Call& call, std::uint64_t attempt, const redisReply* r) {
  if (attempt != call->attempt || !call->done) return;
  // The connection is gone: the call may or may not have run.
  if (r == nullptr) return replay(call);
  // Refused without running: sent again on the next connection. Someone ran SCRIPT FLUSH
  // (a new connection loads the scripts again), or the master was demoted (Sentinel mode:
  // find the new one; otherwise wait for this one to return).
  if (const bool flushed = is_error(r, "NOSCRIPT"); flushed || is_error(r, "READONLY")) {
    replay(call);
    return lose(flushed ? "the scripts were flushed" : "the server became a replica");
  }
  if (is_error(r, "NOREPLICAS") || is_error(r, "LOADING")) return hold(call);
  if (gate_ == call) open_gate();
  if (cluster_ && r->type == REDIS_REPLY_ERROR) {
    if (auto redirection = parse_redirection(std::string_view(r->str, r->len))) {
      ++call->attempt;  // its WAIT's reply, if any, is not this call's any more
      if (redirection->node.host.empty()) redirection->node.host = url_.host;
      return cluster_->redirected(call, std::move(*redirection));
    }
    if (is_error(r, "CLUSTERDOWN")) cluster_->refresh();
  }
  if (!call->wait || r->type != REDIS_REPLY_INTEGER) return call->complete(r);
  call->written = r->integer;  // the WAIT that follows completes it
}

void RedisBroker::on_waited(const Call& call, std::uint64_t attempt, const redisReply* r) {
  if (attempt != call->attempt || !call->done) return;
  // The write ran; whether a replica has it is unknown. The replay runs the (idempotent)
  // script again, and WAITs on the connection it is sent on.
  if (r == nullptr) return replay(call);
  redisReply written{};
  written.type = REDIS_REPLY_INTEGER;
  written.integer = call->written;
  const bool enough = r->type == REDIS_REPLY_INTEGER &&
                      r->integer >= static_cast<long long>(options_.wait_replicas);
  // Not written (fenced...): that answer stands. Written but not confirmed: unavailable.
  call->complete(call->written != 1 || enough ? &written : nullptr);
}

// A call whose connection died before its reply (or that was refused unrun): sent again,
// in its order, on the next connection if that comes within replay_timeout of the loss
// and the call is safe to run twice (RedisCall); completed unavailable otherwise.
void RedisBroker::replay(const Call& call) {
  if (!call->replayable) {
    ++call->attempt;
    return call->complete(nullptr);
  }
  requeue(call);
}

// Queues a call that was sent for sending again, within replay_timeout of its first
// failure; replies to the earlier attempt (its WAIT's) are not its own any more.
void RedisBroker::requeue(const Call& call) {
  ++call->attempt;
  call->cut_off = true;
  if (!call->after_loss) {
    call->after_loss = true;
    call->deadline = Clock::now() + options_.replay_timeout;
  }
  wait_for_link(call, call->deadline);
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

void RedisBroker::claim(const std::string& room, const std::string& token,
                        std::chrono::milliseconds ttl, Claimed done) {
  submit(script(room, scripts::kClaimScript, {room_key(options_.key_prefix, room, "owner")},
                {token, std::to_string(ttl.count())},
                [done = std::move(done)](const redisReply* r) {
                  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                    return done(Status::unavailable, {});
                  }
                  const bool ok = r->element[0]->integer == 1;
                  done(ok ? Status::ok : Status::fenced,
                       std::string(reply_text(*r->element[1])));
                }));
}

void RedisBroker::release(const std::string& room, const std::string& token) {
  submit(script(room, scripts::kReleaseScript, {room_key(options_.key_prefix, room, "owner")},
                {token}, [](const redisReply*) {}));
}

void RedisBroker::load(const std::string& room, Loaded done) {
  const auto& prefix = options_.key_prefix;
  submit(script(room, scripts::kLoadScript,
                {room_key(prefix, room, "snapshot"), room_key(prefix, room, "ops")}, {},
                [done = std::move(done)](const redisReply* r) {
                  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                    return done(Status::unavailable, {});
                  }
                  RoomLog log;
                  log.snapshot = parse_snapshot(*r->element[0]);
                  log.ops = parse_ops(*r->element[1],
                                      log.snapshot ? log.snapshot->version : 0);
                  done(Status::ok, std::move(log));
                }));
}

// With wait_replicas, a write is followed by WAIT, and `done` gets ok only once enough
// replicas confirmed it (so that it survives a failover).
void RedisBroker::append(const std::string& room, const std::string& token, OpEntry entry,
                         std::string message, Done done) {
  const auto& prefix = options_.key_prefix;
  std::vector<std::string> keys{room_key(prefix, room, "owner"), room_key(prefix, room, "ops")};
  if (entry.after_snapshot) keys.push_back(room_key(prefix, room, "snapshot"));
  std::vector<std::string> args{token, std::to_string(options_.ops_max_len),
                                room_key(prefix, room, "channel"), std::move(message),
                                sharded_ ? "SPUBLISH" : "PUBLISH"};
  for (auto& f : op_fields(entry)) args.push_back(std::move(f));
  auto call = script(room, scripts::kAppendScript, std::move(keys), std::move(args),
                     [this, done = std::move(done)](const redisReply* r) {
                       const Status s = script_status(r);
                       if (s == Status::ok) {
                         metrics_.redis_publish.fetch_add(1, std::memory_order_relaxed);
                       }
                       done(s);
                     });
  call->wait = options_.wait_replicas > 0;
  submit(std::move(call));
}

void RedisBroker::save_snapshot(const std::string& room, const std::string& token,
                                Snapshot snapshot, Done done) {
  const auto& prefix = options_.key_prefix;
  std::vector<std::string> args{token};
  for (auto& f : snapshot_fields(snapshot)) args.push_back(std::move(f));
  auto call = script(room, scripts::kSaveSnapshotScript,
                     {room_key(prefix, room, "owner"), room_key(prefix, room, "snapshot")},
                     std::move(args),
                     [done = std::move(done)](const redisReply* r) { done(script_status(r)); });
  call->wait = options_.wait_replicas > 0;
  submit(std::move(call));
}

// Not replayed: a message that did reach the channel would arrive twice.
void RedisBroker::publish(const std::string& room, std::string message) {
  auto call = std::make_shared<RedisCall>();
  call->room = room;
  call->args = {sharded_ ? "SPUBLISH" : "PUBLISH", room_key(options_.key_prefix, room, "channel"),
                std::move(message)};
  call->replayable = false;
  call->done = [this](const redisReply* r) {
    if (r != nullptr && r->type == REDIS_REPLY_INTEGER) {
      metrics_.redis_publish.fetch_add(1, std::memory_order_relaxed);
    }
  };
  submit(std::move(call));
}

void RedisBroker::hand_over(std::function<void(std::vector<Call>)> take) {
  boost::asio::post(io_, [this, take = std::move(take)] {
    if (stopped_ || link_ == Link::up) return;
    std::vector<Call> calls(std::make_move_iterator(queue_.begin()),
                            std::make_move_iterator(queue_.end()));
    queue_.clear();
    queue_timer_.cancel();
    if (!calls.empty()) take(std::move(calls));
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

void RedisBroker::check_subscriptions() {
  boost::asio::post(io_, [this] {
    if (stopped_) return;
    for (auto it = rooms_.begin(); it != rooms_.end();) reconcile(it++);
  });
}

// A (S)SUBSCRIBE or (S)UNSUBSCRIBE answered with an error. In a Cluster, MOVED: the slot of
// the channel is served elsewhere now; the next map moves the room there (a SUNSUBSCRIBE
// refused so has nothing left to undo). Anything else renews the connections.
void RedisBroker::on_refused(const std::string& channel, std::string_view error) {
  if (!cluster_ || !error.starts_with("MOVED") || channel == probe_channel_) {
    return lose("subscription refused: " + std::string(error));
  }
  auto it = rooms_.find(channel);
  if (it == rooms_.end()) return;
  Room& r = it->second;
  const bool subscribing = r.state == Channel::subscribing;
  r.state = Channel::none;
  if (!subscribing) return reconcile(it);
  r.gap = true;
  cluster_->refresh();
}

// A reply on the subscriber connection: [kind, channel, payload or count].
void RedisBroker::on_push(const redisReply& reply) {
  if (reply.type == REDIS_REPLY_ERROR) {
    return lose("unexpected error on the subscriber connection: " +
                std::string(reply.str, reply.len));
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
    // If the next map has the slot here again (it came back in between), the Cluster broker
    // has it subscribed again (check_subscriptions()).
    r.state = Channel::none;
    r.gap = true;
    if (cluster_) cluster_->refresh();
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
  gate_ = nullptr;
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
