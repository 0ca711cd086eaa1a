// The broker on a Redis Cluster: one RedisBroker per master (its own connections, probe
// and reconnection), and each room routed to the master of its hash slot. Every key of a
// room carries the room id as its hash tag, so a room's scripts never span slots.
//
// The slot map comes from CLUSTER SLOTS, asked of the known masters and the seeds all at
// once (the first good answer wins, so a stuck node costs nothing): at start, every
// probe_interval (a failover or a migration changes it without telling us), and at once
// when a node answers MOVED or CLUSTERDOWN or drops a room's subscription.
//
// Redirections are followed without the room noticing: a command answered MOVED goes to
// the named node, whose slot the map takes at once; ASK sends that one command, preceded
// by ASKING, to the importing node (a migration in progress; the map stays); TRYAGAIN (a
// migrating slot whose keys are split between the two nodes) sends it again shortly.
// At most kMaxRedirects MOVED/ASK and kMaxRetries TRYAGAIN per command, then it completes
// unavailable. When a master is replaced, the commands waiting for its broker's connection
// go to the new master's broker.
//
// When a room's master changes, its subscription moves to the new master's broker and its
// subscribers get on_gap() once it is confirmed there. Room channels use sharded pub/sub
// (SSUBSCRIBE/SPUBLISH) so that a room's traffic stays on its shard; a migrated slot's
// sunsubscribe triggers a refresh, which moves the room, and a room whose slot is back on
// the same master by then (away and back between two maps) is subscribed there again.
// Threads: its own (the map, the routing) plus one per master's broker; completions and
// subscriber calls run on the routed broker's thread (or this one, for a command that
// gave up redirecting).
#pragma once
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include "broker/asio_hiredis.hpp"
#include "broker/broker.hpp"
#include "broker/cluster_slots.hpp"
#include "broker/redis_broker.hpp"
#include "telemetry/metrics.hpp"

namespace kasagi::broker {

class ClusterBroker final : public Broker {
 public:
  // `seeds`: some nodes of the Cluster (any one that answers is enough); `password`: AUTH
  // on every node ("" = none). Throws std::invalid_argument when there is no seed.
  ClusterBroker(std::vector<HostPort> seeds, std::string password, BrokerOptions options,
                metrics::Metrics& metrics);
  ~ClusterBroker() override;

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

 private:
  using Clock = std::chrono::steady_clock;
  using Call = std::shared_ptr<RedisCall>;
  // Runs with the broker of the room's master, or nullptr when none is known.
  using Routed = std::function<void(RedisBroker*)>;
  struct Room {
    std::uint16_t slot = 0;  // of its keys
    std::vector<std::weak_ptr<Subscriber>> subscribers;
    std::string node;  // host:port of the broker it is subscribed with ("" = none)
  };
  // A node asked for the slot map: its address, resolved once, and a connection kept open.
  struct Asked {
    std::optional<boost::asio::ip::tcp::endpoint> endpoint;
    std::shared_ptr<RedisConnection> conn;
  };
  struct Question;  // one refresh, asked of every candidate at once

  void route(const std::string& room, Routed op);
  RedisBroker* broker_of(const std::string& room);
  std::uint16_t slot_of(const std::string& room) const;
  RedisBroker* broker_at(const HostPort& node);
  // Redirections.
  void follow(Call call, Redirection redirection);
  void retry_later(Call call);
  void run_retries();
  void arm_retry_timer();
  void send_routed(Call call);
  void give_up(const Call& call, const char* why);
  // Subscriptions.
  void move_subscription(const std::string& room, Room& r, bool gap);
  void reroute();
  // The slot map.
  void schedule_refresh();
  std::vector<HostPort> candidates() const;
  void refresh();
  void ask(const std::shared_ptr<Question>& q, const HostPort& node);
  void ask_on(const std::shared_ptr<Question>& q, const HostPort& node, Asked& asked);
  void no_answer(const std::shared_ptr<Question>& q);
  void apply(SlotMap map);

  const std::vector<HostPort> seeds_;
  const std::string password_;
  const BrokerOptions options_;
  metrics::Metrics& metrics_;

  boost::asio::io_context io_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  boost::asio::ip::tcp::resolver resolver_{io_};
  boost::asio::steady_timer refresh_timer_{io_};
  boost::asio::steady_timer queue_timer_{io_};
  boost::asio::steady_timer retry_timer_{io_};

  std::optional<SlotMap> map_;
  std::map<std::string, std::unique_ptr<RedisBroker>> nodes_;  // by host:port, kept
  std::map<std::string, Room> rooms_;
  std::map<std::string, Asked> asked_;  // by host:port
  std::shared_ptr<Question> question_;  // the refresh under way, if any
  bool refresh_again_ = false;
  bool stopped_ = false;
  std::string last_failure_;
  Clock::time_point queue_until_;
  std::deque<std::pair<std::string, Routed>> queue_;  // ops waiting for the first map
  std::multimap<Clock::time_point, Call> retries_;    // TRYAGAIN answers, by when to retry

  std::thread thread_;
};

}  // namespace kasagi::broker
