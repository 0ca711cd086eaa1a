// Finds the current Redis master through Sentinels: asks every Sentinel at once
// (SENTINEL GET-MASTER-ADDR-BY-NAME) and takes the first answer, so that a dead or stuck
// Sentinel costs nothing. The answer is only a hint: the broker confirms it with ROLE on
// the master itself. One connection per Sentinel is kept between questions (the broker
// asks again on every reconnection and periodically) and reopened when it fails.
// Single-threaded: every member function runs on the io_context's thread.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include "broker/asio_hiredis.hpp"
#include "broker/redis_url.hpp"
#include "broker/subscriber_connection.hpp"

namespace kasagi::broker {

struct SentinelSettings {
  std::vector<HostPort> sentinels;
  std::string master_name;
  std::string password;  // the Sentinels' own (requirepass in sentinel.conf); "" = none
};

class SentinelDiscovery {
 public:
  // The master's address, or nullopt and why no Sentinel named one.
  using Found = std::function<void(std::optional<HostPort> master, std::string why)>;

  // `timeout` bounds each Sentinel's answer (a stuck one fails its part of the question).
  SentinelDiscovery(boost::asio::io_context& io, SentinelSettings settings,
                    std::chrono::steady_clock::duration timeout);
  ~SentinelDiscovery();
  SentinelDiscovery(const SentinelDiscovery&) = delete;
  SentinelDiscovery& operator=(const SentinelDiscovery&) = delete;

  // Asks every Sentinel; `done` runs once, never inline.
  void ask(Found done);
  // Closes the connections; questions in flight are answered nullopt.
  void close();
  // Calls `switched` with the new master when a Sentinel announces one for master_name.
  void on_switch(std::function<void(HostPort)> switched) { switched_ = std::move(switched); }

 private:
  struct Node {
    HostPort address;
    std::shared_ptr<RedisConnection> conn;
    std::shared_ptr<SubscriberConnection> watcher;  // SUBSCRIBE +switch-master
    std::optional<boost::asio::ip::tcp::endpoint> endpoint;  // once resolved
  };
  struct Question;

  void query(std::size_t i, const std::shared_ptr<Question>& q);
  void send(std::size_t i, const std::shared_ptr<Question>& q);
  void open(std::size_t i, const boost::asio::ip::tcp::endpoint& endpoint);
  void watch(std::size_t i);

  boost::asio::io_context& io_;
  const SentinelSettings settings_;
  const std::chrono::steady_clock::duration timeout_;
  boost::asio::ip::tcp::resolver resolver_;
  std::vector<Node> nodes_;
  std::function<void(HostPort)> switched_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // false once destroyed
};

}  // namespace kasagi::broker
