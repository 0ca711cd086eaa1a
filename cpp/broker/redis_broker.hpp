// The Redis broker: what instances share about a room lives in Redis under the keys of
// PROTOCOL.md ("Cross-instance (Redis) keys"); docs/redis.md describes its behaviour.
//
// Two connections, driven by the broker's own thread (an io_context and one std::thread):
// one for commands, pipelined in call order (so a publish issued after an append reaches
// subscribers after it), one for SUBSCRIBE. They live and die together: when either fails
// (an error, a command unanswered for command_timeout, a lost probe) both are closed and
// reopened with exponential backoff; once they are back every subscription is renewed and
// its subscribers get on_gap().
//
// Commands across a lost connection (RedisCall): those in flight whose second run changes
// nothing (every script) are kept and sent again, in their order, on the next connection
// (a replay); the others (a PUBLISH) complete unavailable, their effect unknown. Commands
// issued while reconnecting wait behind them. Both wait at most replay_timeout after the
// loss, then complete unavailable, and later ones at once until the connection is back.
// In the first kFirstConnectWait (5 s) after construction, commands wait likewise for the
// first connection, so that a server starting alongside Redis does not fail its first joins.
//
// Sentinel mode: the master's address comes from the Sentinels (SentinelDiscovery) on every
// connection attempt, and is confirmed with ROLE on the command connection before anything
// else; while connected, the Sentinels are asked again every probe_interval and whenever
// one announces +switch-master (which can be missed: hence the polling too), and a
// different answer, or a READONLY reply, renews the connections on the new master (the
// subscriptions follow, with on_gap(); the commands in flight are replayed there).
//
// Cluster mode (ClusterLink): one broker per master; a script answered MOVED, ASK or
// TRYAGAIN goes to the ClusterBroker, which sends it on to the right node's broker.
//
// The probe: the subscriber connection also subscribes to a channel of its own
// (<prefix>kasagi:probe:<random id>), on which the command connection publishes every
// probe_interval. A publish that reaches nobody, or that Redis confirmed more than
// probe_timeout ago without its message arriving, means that pub/sub silently stopped
// delivering (a half-open connection, a failover): the connections are renewed.
#pragma once
#include <array>
#include <deque>
#include <map>
#include <random>
#include <thread>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include "broker/asio_hiredis.hpp"
#include "broker/broker.hpp"
#include "broker/cluster_redirect.hpp"
#include "broker/redis_call.hpp"
#include "broker/redis_scripts.hpp"
#include "broker/redis_url.hpp"
#include "broker/sentinel_discovery.hpp"
#include "broker/subscriber_connection.hpp"
#include "telemetry/metrics.hpp"

namespace kasagi::broker {

// What a RedisBroker serving one master of a Cluster tells its ClusterBroker, on the
// RedisBroker's thread.
struct ClusterLink {
  std::function<void()> refresh;  // the slot map may have changed (a dropped subscription)
  // `call` was answered with `redirection` (an empty host filled in with this node's).
  std::function<void(std::shared_ptr<RedisCall> call, Redirection redirection)> redirected;
};

class RedisBroker final : public Broker {
 public:
  // `url`: redis://[[user]:password@]host[:port][/db]; throws std::invalid_argument when it
  // is malformed. Connects in the background: never blocks. `metrics` must outlive it.
  RedisBroker(std::string url, BrokerOptions options, metrics::Metrics& metrics);
  // One master of a Cluster, as parsed (ClusterBroker: one per master, with sharded
  // pub/sub: SSUBSCRIBE and SPUBLISH on room channels; the probe stays classic).
  RedisBroker(RedisUrl url, BrokerOptions options, metrics::Metrics& metrics,
              ClusterLink cluster);
  // Sentinel mode: the master `sentinel.master_name`, found through `sentinel.sentinels`;
  // `password` (AUTH on the master, "" = none). Throws std::invalid_argument when there is
  // no Sentinel or no master name.
  RedisBroker(SentinelSettings sentinel, std::string password, BrokerOptions options,
              metrics::Metrics& metrics);
  ~RedisBroker() override;

  void claim(const std::string& room, const std::string& token, std::chrono::milliseconds ttl,
             Claimed done) override;
  void release(const std::string& room, const std::string& token) override;
  void load(const std::string& room, Loaded done) override;
  void append(const std::string& room, const std::string& token, OpEntry entry,
              std::string message, Done done) override;
  void save_snapshot(const std::string& room, const std::string& token, Snapshot snapshot,
                     Done done) override;
  void publish(const std::string& room, std::string message) override;
  void subscribe(const std::string& room, std::weak_ptr<Subscriber> subscriber) override;
  void unsubscribe(const std::string& room, const Subscriber* subscriber) override;
  void shutdown() override;
  // As subscribe(), but the subscribers get on_gap() once the subscription is confirmed
  // (ClusterBroker: a room moved here from another master).
  void resubscribe(const std::string& room, std::weak_ptr<Subscriber> subscriber);

  // Cluster mode, from any thread. Sends `call` here (after ASKING if call->asking), as a
  // command submitted now: at once, or once connected, or unavailable.
  void resend(std::shared_ptr<RedisCall> call);
  // Hands the calls waiting for this broker's connection to `take`, on this broker's
  // thread (its node is no longer a master: they go to the one that took its slots).
  void hand_over(std::function<void(std::vector<std::shared_ptr<RedisCall>>)> take);
  // Subscribes again every channel whose subscription the server dropped (a slot that
  // migrated away may have come back before the map said it had left).
  void check_subscriptions();

 private:
  using Clock = std::chrono::steady_clock;
  using OnReply = RedisConnection::OnReply;
  using Call = std::shared_ptr<RedisCall>;
  enum class Link { down, connecting, up };
  enum class Channel { none, subscribing, subscribed, unsubscribing };  // on the server
  struct Room {
    std::vector<std::weak_ptr<Subscriber>> subscribers;
    Channel state = Channel::none;
    bool gap = false;  // the subscribers get on_gap() once the subscription is back
  };
  using Rooms = std::map<std::string, Room>;  // by channel name

  RedisBroker(RedisUrl url, std::optional<SentinelSettings> sentinel, BrokerOptions options,
              metrics::Metrics& metrics, std::optional<ClusterLink> cluster);

  // Commands.
  Call script(const std::string& room, scripts::Script script, std::vector<std::string> keys,
              std::vector<std::string> args, OnReply done);
  void submit(Call call);
  void dispatch(Call call);
  void send_call(const Call& call);
  void on_reply(const Call& call, std::uint64_t attempt, const redisReply* r);
  void on_waited(const Call& call, std::uint64_t attempt, const redisReply* r);
  void replay(const Call& call);
  void hold(const Call& call);
  void requeue(const Call& call);
  void send_queued();
  void open_gate();
  void send_waiting(bool gated);
  void wait_for_link(Call call, Clock::time_point deadline);
  void expire_waiting();
  void send(const std::vector<std::string_view>& args, OnReply done,
            Clock::duration extra = {});
  // Connection life cycle.
  void connect();
  void resolve();
  void check_master();
  void verify_master();
  void master_switched(const HostPort& master);
  void open_connections(const boost::asio::ip::tcp::endpoint& endpoint);
  template <class Connection>
  void handshake(Connection& conn);
  void load_scripts();
  void maybe_up();
  void lose(std::string_view why);
  // Pub/sub.
  void on_push(const redisReply& reply);
  void on_refused(const std::string& channel, std::string_view error);
  void reconcile(Rooms::iterator it);
  void deliver(Rooms::iterator it, std::string message);
  // Probe.
  void probe_tick();
  void probe_published(std::uint64_t seq, const redisReply* reply);
  void probe_received(std::string_view payload);
  void probe_failed(std::string_view why);
  void stop();

  template <class F>
  auto guarded(F f);  // f, ignored once its connections are gone

  RedisUrl url_;       // the server's address and credentials (Sentinel mode: the master's)
  std::string where_;  // host:port, for the logs
  const BrokerOptions options_;
  const std::optional<ClusterLink> cluster_;
  const bool sharded_;  // room channels on sharded pub/sub (Cluster)
  metrics::Metrics& metrics_;
  const std::string probe_channel_;

  boost::asio::io_context io_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  boost::asio::ip::tcp::resolver resolver_{io_};
  boost::asio::steady_timer retry_timer_{io_};  // backoff, and the connect deadline
  boost::asio::steady_timer probe_timer_{io_};
  boost::asio::steady_timer queue_timer_{io_};
  boost::asio::steady_timer hold_timer_{io_};  // ends a hold (see hold())
  boost::asio::steady_timer master_timer_{io_};  // Sentinel mode: asks again periodically
  std::unique_ptr<SentinelDiscovery> sentinel_;  // null unless in Sentinel mode

  std::shared_ptr<RedisConnection> cmd_;
  std::shared_ptr<SubscriberConnection> sub_;
  Link link_ = Link::down;
  bool held_ = false;  // up, but calls wait: the server refused one for a moment
  Call gate_;  // sent alone after a wait; the calls waiting go once it is answered
  std::uint64_t generation_ = 0;  // one per connection attempt
  bool cmd_ready_ = false, sub_ready_ = false;
  bool ever_up_ = false;
  bool stopped_ = false;
  std::string last_failure_;  // why the last attempt failed ("" once connected)
  std::array<std::string, scripts::kAll.size()> sha_;
  Clock::duration backoff_;
  std::size_t endpoint_index_ = 0;  // rotates through the resolved addresses on failures
  std::minstd_rand rng_;

  // The end of the current wait for a connection: the first one's, or that after a loss.
  Clock::time_point queue_until_;
  std::deque<Call> queue_;  // commands waiting for a connection, by seq (each its deadline)
  Rooms rooms_;

  std::uint64_t probe_seq_ = 0;
  std::uint64_t probe_seen_ = 0;  // the highest probe received
  // Probes that Redis confirmed publishing and that have not arrived yet, oldest first.
  std::deque<std::pair<std::uint64_t, Clock::time_point>> probe_sent_;

  std::thread thread_;
};

}  // namespace kasagi::broker
