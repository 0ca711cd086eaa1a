// The broker's pub/sub connection: a plain Asio socket with hiredis's reply parser. hiredis
// 0.14's async API knows only classic subscriptions (an SSUBSCRIBE reply or an `smessage`
// would hit its assertions), so the sharded pub/sub of Redis Cluster needs this instead.
// Commands go out in order; a reply whose first element names a pub/sub event (message,
// subscribe, smessage, sunsubscribe...) goes to Handlers::push, any other reply completes
// the oldest pending command (the handshake's AUTH and SELECT), or, with none pending (an
// error answering a subscription), goes to Handlers::push too. Single-threaded.
#pragma once
#include <array>
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include "broker/asio_hiredis.hpp"

struct redisReader;

namespace kasagi::broker {

class SubscriberConnection : public std::enable_shared_from_this<SubscriberConnection> {
 public:
  using OnReply = RedisConnection::OnReply;
  using Handlers = RedisConnection::Handlers;

  // Starts connecting to `endpoint` (the broker bounds the attempt with its own deadline).
  static std::shared_ptr<SubscriberConnection> open(
      boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& endpoint,
      Handlers handlers);
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
  SubscriberConnection(boost::asio::io_context& io, Handlers handlers);
  void send(const std::vector<std::string_view>& args);
  void write_next();
  void read_next();
  void dispatch(const redisReply& reply);
  void fail(const std::string& why);
  void drop_pending();

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::socket socket_;
  Handlers handlers_;
  redisReader* reader_;
  std::deque<std::string> out_;  // commands to write, the first being written
  std::deque<OnReply> pending_;  // commands waiting for their reply
  std::array<char, 16 * 1024> buffer_;
  bool connected_ = false;
  bool writing_ = false;  // an async_write of out_.front() is under way
  bool closed_ = false;  // close() was called or the connection failed: no (more) `lost`
};

}  // namespace kasagi::broker
