// The broker's pub/sub connection: a plain Asio socket with hiredis's reply parser. hiredis
// 0.14's async API knows only classic subscriptions (an SSUBSCRIBE reply or an `smessage`
// would hit its assertions), so the sharded pub/sub of Redis Cluster needs this instead.
//
// Commands go out in order, and their replies come back in that order, mixed with what the
// server sends by itself (messages, and the `sunsubscribe` of a slot that migrated). So:
// - a (S)SUBSCRIBE/(S)UNSUBSCRIBE is answered by the confirmation naming its channel, or
//   by an error, which goes to Handlers::refused with that channel (a Cluster node that
//   does not serve the channel's slot answers MOVED);
// - any other non-event reply completes the oldest pending command (AUTH, SELECT);
// - every event (message, subscribe, smessage, sunsubscribe...) goes to Handlers::push,
//   confirmations included.
// A command unanswered for `timeout` since the last reply fails the connection (`lost`):
// a stuck or paused server is found even when the broker has nothing else to ask it.
// Single-threaded.
#pragma once
#include <array>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include "broker/asio_hiredis.hpp"

struct redisReader;

namespace kasagi::broker {

class SubscriberConnection : public std::enable_shared_from_this<SubscriberConnection> {
 public:
  using Clock = std::chrono::steady_clock;
  using OnReply = RedisConnection::OnReply;
  struct Handlers {
    std::function<void()> connected;  // the TCP connection is up: send the handshake
    std::function<void(const std::string& why)> lost;  // gone by an error or a timeout
                                                       // (never after close())
    std::function<void(const redisReply*)> push;  // pub/sub events
    // A (S)SUBSCRIBE or (S)UNSUBSCRIBE of `channel` answered with an error.
    std::function<void(const std::string& channel, std::string_view error)> refused;
  };

  // Starts connecting to `endpoint` (the broker bounds the attempt with its own deadline).
  static std::shared_ptr<SubscriberConnection> open(
      boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& endpoint,
      Clock::duration timeout, Handlers handlers);
  ~SubscriberConnection();
  SubscriberConnection(const SubscriberConnection&) = delete;
  SubscriberConnection& operator=(const SubscriberConnection&) = delete;

  // Sends a command; `done` runs once, never inline (nullptr if the connection is gone).
  void command(const std::vector<std::string_view>& args, OnReply done);
  // (UN)SUBSCRIBE, or with `sharded` SSUBSCRIBE/SUNSUBSCRIBE, one channel.
  void subscribe(std::string_view channel, bool sharded = false);
  void unsubscribe(std::string_view channel, bool sharded = false);
  // Closes the connection: pending commands get nullptr, `lost` is not called.
  void close();

 private:
  // A command waiting for its reply: a completion, or the confirmation of a subscription
  // change (its kind, lower case, and channel).
  struct Pending {
    OnReply done;
    std::string kind;
    std::string channel;
    Clock::time_point sent{};  // set by send()
  };

  SubscriberConnection(boost::asio::io_context& io, Clock::duration timeout, Handlers handlers);
  void send(const std::vector<std::string_view>& args, Pending pending);
  void write_next();
  void read_next();
  void dispatch(const redisReply& reply);
  void replied();
  void arm_watchdog();
  void fail(const std::string& why);
  void drop_pending();

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer watchdog_;
  Clock::duration timeout_;
  Handlers handlers_;
  redisReader* reader_;
  std::deque<std::string> out_;   // commands to write, the first being written
  std::deque<Pending> pending_;   // commands waiting for their reply, oldest first
  Clock::time_point progress_;    // the last reply, or when the connection came up
  std::array<char, 16 * 1024> buffer_;
  bool connected_ = false;
  bool writing_ = false;  // an async_write of out_.front() is under way
  bool watchdog_armed_ = false;
  bool closed_ = false;  // close() was called or the connection failed: no (more) `lost`
};

}  // namespace kasagi::broker
