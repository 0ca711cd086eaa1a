#include "broker/asio_hiredis.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <boost/asio/post.hpp>

namespace kasagi::broker {
namespace {

// What a command's privdata points to: the completion, owned by hiredis until it calls us.
struct Pending {
  RedisConnection::OnReply done;
};

RedisConnection* owner(const redisAsyncContext* ac) {
  return static_cast<RedisConnection*>(ac->data);
}

}  // namespace

RedisConnection::RedisConnection(boost::asio::io_context& io, Clock::duration timeout,
                                 Handlers handlers)
    : io_(io), socket_(io), watchdog_(io), timeout_(timeout), handlers_(std::move(handlers)) {}

std::shared_ptr<RedisConnection> RedisConnection::open(
    boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& endpoint,
    Clock::duration timeout, Handlers handlers) {
  std::shared_ptr<RedisConnection> conn(new RedisConnection(io, timeout, std::move(handlers)));
  // A numeric address: hiredis's getaddrinfo then never blocks on DNS.
  redisAsyncContext* ac =
      redisAsyncConnect(endpoint.address().to_string().c_str(), endpoint.port());
  if (ac == nullptr || ac->err != 0) {
    conn->fail(ac != nullptr ? ac->errstr : "out of memory");
    if (ac != nullptr) redisAsyncFree(ac);
    return conn;
  }
  conn->attach(ac);
  return conn;
}

RedisConnection::~RedisConnection() {
  closed_ = true;
  dropping_ = true;  // whoever issued the pending commands may be gone too
  if (ac_ != nullptr) redisAsyncFree(ac_);
}

void RedisConnection::attach(redisAsyncContext* ac) {
  ac_ = ac;
  ac->data = this;
  socket_.assign(ac->c.fd);
  ac->ev.data = this;
  ac->ev.addRead = [](void* p) { static_cast<RedisConnection*>(p)->want(kRead, true); };
  ac->ev.delRead = [](void* p) { static_cast<RedisConnection*>(p)->want(kRead, false); };
  ac->ev.addWrite = [](void* p) { static_cast<RedisConnection*>(p)->want(kWrite, true); };
  ac->ev.delWrite = [](void* p) { static_cast<RedisConnection*>(p)->want(kWrite, false); };
  ac->ev.cleanup = [](void* p) { static_cast<RedisConnection*>(p)->detach(); };
  // hiredis learns that connect() finished from the first write readiness (it asks for it).
  redisAsyncSetConnectCallback(ac, &RedisConnection::on_connect);
}

void RedisConnection::want(Direction d, bool on) {
  Watch& w = d == kRead ? read_ : write_;
  w.wanted = on;
  if (on && !w.waiting && ac_ != nullptr) wait(d);
}

void RedisConnection::wait(Direction d) {
  auto self = weak_from_this().lock();
  if (!self) return;  // being destroyed: hiredis is freeing the context
  Watch& w = d == kRead ? read_ : write_;
  w.waiting = true;
  using Socket = boost::asio::posix::stream_descriptor;
  socket_.async_wait(d == kRead ? Socket::wait_read : Socket::wait_write,
                     [self, d, &w](const boost::system::error_code& ec) {
                       w.waiting = false;
                       if (ec || self->ac_ == nullptr || !w.wanted) return;
                       ++self->dispatching_;
                       if (d == kRead) {
                         redisAsyncHandleRead(self->ac_);
                       } else {
                         redisAsyncHandleWrite(self->ac_);
                       }
                       --self->dispatching_;
                       if (self->ac_ != nullptr && w.wanted && !w.waiting) self->wait(d);
                     });
}

// hiredis's cleanup hook: the context is being freed and its fd is about to be closed.
void RedisConnection::detach() {
  if (ac_ == nullptr) return;
  if (why_.empty()) why_ = ac_->err != 0 ? ac_->errstr : "closed by the server";
  ac_ = nullptr;
  boost::system::error_code ignored;
  socket_.cancel(ignored);
  socket_.release();
  watchdog_.cancel();
  in_flight_.clear();
  report_lost();
}

void RedisConnection::report_lost() {
  if (closed_ || !handlers_.lost) return;
  closed_ = true;  // once
  boost::asio::post(io_, [lost = handlers_.lost, why = why_] { lost(why); });
}

void RedisConnection::free_context() {
  if (ac_ == nullptr) return;
  if (dispatching_ == 0) {
    redisAsyncFree(ac_);  // runs the pending callbacks with nullptr, then detach()
    return;
  }
  // Inside one of hiredis's callbacks: free it once hiredis is off the stack.
  boost::asio::post(io_, [self = shared_from_this()] { self->free_context(); });
}

void RedisConnection::close() {
  closed_ = true;
  free_context();
}

void RedisConnection::fail(std::string why) {
  why_ = std::move(why);
  if (ac_ == nullptr) return report_lost();
  free_context();  // detach() reports it
}

// Returns false when hiredis did not take the command (the connection is gone or going).
bool RedisConnection::send(const std::vector<std::string_view>& args,
                           void (*fn)(redisAsyncContext*, void*, void*), void* privdata) {
  if (ac_ == nullptr) return false;
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return redisAsyncCommandArgv(ac_, fn, privdata, static_cast<int>(args.size()), argv.data(),
                               lens.data()) == REDIS_OK;
}

void RedisConnection::command(const std::vector<std::string_view>& args, OnReply done,
                              Clock::duration extra) {
  auto* pending = new Pending{std::move(done)};
  if (!send(args, &RedisConnection::on_reply, pending)) {
    std::unique_ptr<Pending> p(pending);
    boost::asio::post(io_, [done = std::move(p->done)] { done(nullptr); });
    return;
  }
  if (in_flight_.empty()) progress_ = Clock::now();
  in_flight_.push_back(timeout_ + extra);
  arm_watchdog();
}

void RedisConnection::replied() {
  if (in_flight_.empty()) return;
  in_flight_.pop_front();
  progress_ = Clock::now();
}

// The watchdog runs only while commands are pending: the connection is stuck when the
// oldest one has waited longer than allowed since the last reply.
void RedisConnection::arm_watchdog() {
  if (watchdog_armed_ || in_flight_.empty()) return;
  watchdog_armed_ = true;
  watchdog_.expires_at(progress_ + in_flight_.front());
  watchdog_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    self->watchdog_armed_ = false;
    if (!ec) self->check_watchdog();
  });
}

void RedisConnection::check_watchdog() {
  if (ac_ == nullptr || in_flight_.empty()) return;
  if (Clock::now() >= progress_ + in_flight_.front()) return fail("no reply in time");
  arm_watchdog();
}

void RedisConnection::on_connect(const redisAsyncContext* ac, int status) {
  // On failure hiredis frees the context right after this returns (detach() reports it).
  RedisConnection* self = owner(ac);
  if (status == REDIS_OK && self->handlers_.connected) self->handlers_.connected();
}

void RedisConnection::on_reply(redisAsyncContext* ac, void* reply, void* privdata) {
  std::unique_ptr<Pending> p(static_cast<Pending*>(privdata));
  RedisConnection* self = owner(ac);
  if (self->dropping_) return;
  if (reply != nullptr) self->replied();
  p->done(static_cast<const redisReply*>(reply));
}

}  // namespace kasagi::broker
