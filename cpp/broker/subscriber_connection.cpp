#include "broker/subscriber_connection.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include "broker/redis_records.hpp"

namespace kasagi::broker {
namespace {

bool is_event(const redisReply& r) {
  if (r.type != REDIS_REPLY_ARRAY || r.elements == 0 ||
      r.element[0]->type != REDIS_REPLY_STRING) {
    return false;
  }
  const std::string_view kind(r.element[0]->str, r.element[0]->len);
  for (std::string_view k : {"message", "subscribe", "unsubscribe", "smessage", "ssubscribe",
                             "sunsubscribe", "pmessage", "psubscribe", "punsubscribe"}) {
    if (kind == k) return true;
  }
  return false;
}

}  // namespace

SubscriberConnection::SubscriberConnection(boost::asio::io_context& io, Clock::duration timeout,
                                           Handlers handlers)
    : io_(io),
      socket_(io),
      watchdog_(io),
      timeout_(timeout),
      handlers_(std::move(handlers)),
      reader_(redisReaderCreate()) {}

SubscriberConnection::~SubscriberConnection() {
  if (reader_ != nullptr) redisReaderFree(reader_);
}

std::shared_ptr<SubscriberConnection> SubscriberConnection::open(
    boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& endpoint,
    Clock::duration timeout, Handlers handlers) {
  std::shared_ptr<SubscriberConnection> conn(
      new SubscriberConnection(io, timeout, std::move(handlers)));
  if (conn->reader_ == nullptr) {
    boost::asio::post(io, [conn] { conn->fail("out of memory"); });
    return conn;
  }
  conn->socket_.async_connect(endpoint, [conn](const boost::system::error_code& ec) {
    if (conn->closed_) return;
    if (ec) return conn->fail(ec.message());
    boost::system::error_code ignored;
    conn->socket_.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
    conn->connected_ = true;
    conn->progress_ = Clock::now();  // what was queued before is due from now on
    if (conn->handlers_.connected) conn->handlers_.connected();
    conn->write_next();
    conn->read_next();
    conn->arm_watchdog();
  });
  return conn;
}

void SubscriberConnection::command(const std::vector<std::string_view>& args, OnReply done) {
  if (closed_) {
    boost::asio::post(io_, [done = std::move(done)] { done(nullptr); });
    return;
  }
  send(args, {.done = std::move(done), .kind = {}, .channel = {}});
}

// The reply confirming each names its kind in lower case.
void SubscriberConnection::subscribe(std::string_view channel, bool sharded) {
  send({sharded ? "SSUBSCRIBE" : "SUBSCRIBE", channel},
       {.done = {}, .kind = sharded ? "ssubscribe" : "subscribe", .channel = std::string(channel)});
}

void SubscriberConnection::unsubscribe(std::string_view channel, bool sharded) {
  send({sharded ? "SUNSUBSCRIBE" : "UNSUBSCRIBE", channel},
       {.done = {}, .kind = sharded ? "sunsubscribe" : "unsubscribe",
        .channel = std::string(channel)});
}

void SubscriberConnection::send(const std::vector<std::string_view>& args, Pending pending) {
  if (closed_) return;
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  char* cmd = nullptr;
  const int len = redisFormatCommandArgv(&cmd, static_cast<int>(args.size()), argv.data(),
                                         lens.data());
  if (len < 0) return fail("out of memory");
  out_.emplace_back(cmd, static_cast<std::size_t>(len));
  redisFreeCommand(cmd);
  pending.sent = Clock::now();
  pending_.push_back(std::move(pending));
  write_next();
  arm_watchdog();
}

void SubscriberConnection::write_next() {
  if (out_.empty() || closed_ || !connected_ || writing_) return;
  writing_ = true;
  boost::asio::async_write(socket_, boost::asio::buffer(out_.front()),
                           [self = shared_from_this()](const boost::system::error_code& ec,
                                                       std::size_t) {
                             self->writing_ = false;
                             if (self->closed_) return;
                             if (ec) return self->fail(ec.message());
                             self->out_.pop_front();
                             self->write_next();
                           });
}

void SubscriberConnection::read_next() {
  socket_.async_read_some(
      boost::asio::buffer(buffer_),
      [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
        if (self->closed_) return;
        if (ec) {
          return self->fail(ec == boost::asio::error::eof ? "closed by the server"
                                                          : ec.message());
        }
        if (redisReaderFeed(self->reader_, self->buffer_.data(), n) != REDIS_OK) {
          return self->fail("protocol error");
        }
        while (!self->closed_) {
          void* reply = nullptr;
          if (redisReaderGetReply(self->reader_, &reply) != REDIS_OK) {
            return self->fail("protocol error");
          }
          if (reply == nullptr) break;
          std::unique_ptr<redisReply, void (*)(void*)> owned(static_cast<redisReply*>(reply),
                                                             freeReplyObject);
          self->dispatch(*owned);
        }
        if (!self->closed_) self->read_next();
      });
}

// Replies come in command order, so the oldest pending command is the one answered: by the
// confirmation of its kind and channel, or by a non-event reply. Any other event is the
// server's own (a message, or a subscription it dropped).
void SubscriberConnection::dispatch(const redisReply& reply) {
  if (is_event(reply)) {
    if (!pending_.empty() && !pending_.front().kind.empty() && reply.elements >= 2 &&
        reply_text(*reply.element[0]) == pending_.front().kind &&
        reply_text(*reply.element[1]) == pending_.front().channel) {
      replied();
    }
    if (handlers_.push) handlers_.push(&reply);
    return;
  }
  if (pending_.empty()) {
    if (handlers_.push) handlers_.push(&reply);
    return;
  }
  Pending p = std::move(pending_.front());
  replied();
  if (p.done) return p.done(&reply);
  if (reply.type == REDIS_REPLY_ERROR && handlers_.refused) {
    handlers_.refused(p.channel, std::string_view(reply.str, reply.len));
  }
}

void SubscriberConnection::replied() {
  pending_.pop_front();
  progress_ = Clock::now();
}

// The watchdog runs while commands are pending on a connected socket: the connection is
// stuck when the oldest one has waited `timeout` since it was sent or since the last reply.
void SubscriberConnection::arm_watchdog() {
  if (watchdog_armed_ || pending_.empty() || !connected_ || closed_) return;
  watchdog_armed_ = true;
  watchdog_.expires_at(std::max(progress_, pending_.front().sent) + timeout_);
  watchdog_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    self->watchdog_armed_ = false;
    if (ec || self->closed_ || self->pending_.empty()) return;
    const auto due = std::max(self->progress_, self->pending_.front().sent) + self->timeout_;
    if (Clock::now() >= due) return self->fail("no reply in time");
    self->arm_watchdog();
  });
}

void SubscriberConnection::fail(const std::string& why) {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  socket_.close(ignored);
  watchdog_.cancel();
  drop_pending();
  if (handlers_.lost) boost::asio::post(io_, [lost = handlers_.lost, why] { lost(why); });
}

void SubscriberConnection::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  socket_.close(ignored);
  watchdog_.cancel();
  drop_pending();
}

void SubscriberConnection::drop_pending() {
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& p : pending) {
    if (p.done) boost::asio::post(io_, [done = std::move(p.done)] { done(nullptr); });
  }
}

}  // namespace kasagi::broker
