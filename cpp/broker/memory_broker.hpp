// The embedded broker: everything a Broker shares, kept in this process. A server without
// Redis uses a private one (it is then always its rooms' authority); several servers in one
// process may share one, which is how the broker conformance suite and the in-process
// multi-instance tests run without Redis. All state lives on the broker's own thread.
// One difference from Redis: release() of a room that nobody subscribes to any more
// forgets the room (its snapshot and log) instead of keeping it.
#pragma once
#include <deque>
#include <map>
#include <thread>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include "broker/broker.hpp"

namespace kasagi::broker {

class MemoryBroker final : public Broker {
 public:
  explicit MemoryBroker(BrokerOptions options = {});
  ~MemoryBroker() override;

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
  struct Lease {
    std::string token;
    Clock::time_point expires;
  };
  struct RoomData {
    std::optional<Lease> lease;
    std::optional<Snapshot> snapshot;
    std::deque<OpEntry> ops;
    std::vector<std::weak_ptr<Subscriber>> subscribers;  // one per subscribing broker user
  };

  template <class F>
  void run(F&& f);
  bool holds(RoomData& r, const std::string& token);
  void deliver(RoomData& r, const std::string& message);

  BrokerOptions options_;
  boost::asio::io_context io_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::map<std::string, RoomData> rooms_;
  std::thread thread_;
};

}  // namespace kasagi::broker
