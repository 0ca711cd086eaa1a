// The broker on a Redis Cluster: one RedisBroker per master (its own connections, probe
// and reconnection), and each room routed to the master of its hash slot. Every key of a
// room carries the room id as its hash tag, so a room's scripts never span slots.
//
// The slot map comes from CLUSTER SLOTS, asked of the seeds and the known masters in turn:
// at start, every probe_interval (a failover or a migration changes it without telling
// us), and at once when a command gets MOVED, ASK, TRYAGAIN or CLUSTERDOWN (that command
// completes unavailable; the room retries it on its next tick, routed by the new map).
// When a room's master changes, its subscription moves to the new master's broker and its
// subscribers get on_gap() once it is confirmed there.
//
// Room channels use sharded pub/sub (SSUBSCRIBE/SPUBLISH) so that a room's traffic stays
// on its shard; a migrated slot's sunsubscribe triggers a refresh, which moves the room.
// Threads: its own (the map, the routing) plus one per master's broker; completions and
// subscriber calls run on the routed broker's thread.
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
  // Runs with the broker of the room's master, or nullptr when none is known.
  using Routed = std::function<void(RedisBroker*)>;
  struct Room {
    std::vector<std::weak_ptr<Subscriber>> subscribers;
    std::string node;  // host:port of the broker it is subscribed with ("" = none)
  };

  void route(const std::string& room, Routed op);
  RedisBroker* broker_of(const std::string& room);
  void refresh();
  void ask(std::size_t attempt);
  void apply(SlotMap map);
  void move_subscription(const std::string& room, Room& r, bool gap);
  void schedule_refresh();
  std::vector<HostPort> candidates() const;

  const std::vector<HostPort> seeds_;
  const std::string password_;
  BrokerOptions options_;  // with on_redirect set
  metrics::Metrics& metrics_;

  boost::asio::io_context io_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  boost::asio::ip::tcp::resolver resolver_{io_};
  boost::asio::steady_timer refresh_timer_{io_};
  boost::asio::steady_timer queue_timer_{io_};

  std::optional<SlotMap> map_;
  std::map<std::string, std::unique_ptr<RedisBroker>> nodes_;  // by host:port, kept
  std::map<std::string, Room> rooms_;
  std::shared_ptr<RedisConnection> asking_;  // the CLUSTER SLOTS question in flight
  std::size_t next_candidate_ = 0;
  bool refreshing_ = false, refresh_again_ = false;
  bool stopped_ = false;
  std::string last_failure_;
  Clock::time_point queue_until_;
  std::deque<std::pair<std::string, Routed>> queue_;  // ops waiting for the first map

  std::thread thread_;
};

}  // namespace kasagi::broker
