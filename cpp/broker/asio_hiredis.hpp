// One hiredis async connection (redisAsyncContext) driven by an Asio io_context: hiredis
// asks for read/write readiness through its event hooks, a stream_descriptor waits for it
// on the socket (without owning the fd: hiredis closes it) and redisAsyncHandleRead/Write do
// the I/O. Commands are pipelined; replies come back in order. Single-threaded: every
// member function runs on the io_context's one thread.
//
// Lifetimes: hiredis frees its context by itself after an error. The `cleanup` hook, which
// it calls just before, is where this object lets go of the context and the socket; the
// wait handlers hold a shared_ptr to this object and check that the context is still there.
#pragma once
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

struct redisAsyncContext;
struct redisReply;

namespace kasagi::broker {

class RedisConnection : public std::enable_shared_from_this<RedisConnection> {
 public:
  using Clock = std::chrono::steady_clock;
  // Gets the reply, or nullptr when the connection went away before it came.
  using OnReply = std::function<void(const redisReply*)>;
  struct Handlers {
    std::function<void()> connected;  // the TCP connection is up: send the handshake
    std::function<void(const std::string& why)> lost;  // gone by an error or a timeout
                                                       // (never after close())
    std::function<void(const redisReply*)> push;  // pub/sub messages and confirmations
  };

  // Starts connecting to `endpoint`. A command with no reply after `timeout` (plus its
  // `extra`) closes the connection: `lost` is called and every pending command gets nullptr.
  static std::shared_ptr<RedisConnection> open(boost::asio::io_context& io,
                                               const boost::asio::ip::tcp::endpoint& endpoint,
                                               Clock::duration timeout, Handlers handlers);
  // Frees the context if close() did not; pending commands are then dropped, not completed.
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Sends a command. `done` runs once, never inline (nullptr reply if the connection is gone).
  void command(const std::vector<std::string_view>& args, OnReply done,
               Clock::duration extra = {});

  // Closes the connection: pending commands get nullptr, `lost` is not called.
  void close();
  // The connection is closed or lost: commands complete nullptr at once.
  bool gone() const { return ac_ == nullptr; }

 private:
  enum Direction { kRead, kWrite };
  struct Watch {
    bool wanted = false;   // hiredis asked for this readiness
    bool waiting = false;  // an async_wait is pending
  };

  RedisConnection(boost::asio::io_context& io, Clock::duration timeout, Handlers handlers);
  void attach(redisAsyncContext* ac);
  void want(Direction d, bool on);
  void wait(Direction d);
  void detach();
  void free_context();
  void fail(std::string why);
  void report_lost();
  void replied();
  void arm_watchdog();
  void check_watchdog();
  bool send(const std::vector<std::string_view>& args,
            void (*fn)(redisAsyncContext*, void*, void*), void* privdata);

  static void on_connect(const redisAsyncContext* ac, int status);
  static void on_reply(redisAsyncContext* ac, void* reply, void* privdata);

  boost::asio::io_context& io_;
  boost::asio::posix::stream_descriptor socket_;
  boost::asio::steady_timer watchdog_;
  redisAsyncContext* ac_ = nullptr;  // null once hiredis has freed it (or is about to)
  Watch read_, write_;
  int dispatching_ = 0;  // > 0 while hiredis runs on the stack (it must not be freed then)
  bool closed_ = false;    // close() was called, or `lost` was: no (more) `lost`
  bool dropping_ = false;  // being destroyed: completions are not called
  bool watchdog_armed_ = false;
  Clock::duration timeout_;
  std::deque<Clock::duration> in_flight_;  // allowed wait of each pending command, in order
  Clock::time_point progress_;             // last reply (or first command after a quiet time)
  Handlers handlers_;
  std::string why_;  // why the connection is gone, for `lost`
};

}  // namespace kasagi::broker
