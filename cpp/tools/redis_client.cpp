#include "tools/redis_client.hpp"

#include <hiredis/hiredis.h>

#include <array>
#include <charconv>
#include <optional>
#include <string_view>
#include <boost/asio/connect.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <msgpack.hpp>
#include "tools/send_schedule.hpp"

namespace kasagi::tools {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr std::size_t kReadChunk = 16 * 1024;
// Bytes of PUBLISH commands waiting behind the write in flight before publishes are dropped
// (and counted): far more than a healthy server ever leaves unsent at these rates.
constexpr std::size_t kMaxPendingBytes = 64 * 1024;
constexpr std::size_t kOwnSendsRemembered = 8;  // to tell our own messages from the others'

// ---------------------------------------------------------------------------------------
// RESP helpers
// ---------------------------------------------------------------------------------------

void append_bulk(std::string& out, std::string_view s) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, s.size()).ptr;
  out += '$';
  out.append(digits, end);
  out += "\r\n";
  out.append(s);
  out += "\r\n";
}

// Appends one command, e.g. {"PUBLISH", channel, payload}, in RESP.
void append_command(std::string& out, std::initializer_list<std::string_view> args) {
  out += '*';
  out += std::to_string(args.size());
  out += "\r\n";
  for (auto a : args) append_bulk(out, a);
}

std::size_t bulk_size(std::size_t len) {
  std::size_t digits = 1;
  for (std::size_t v = len; v >= 10; v /= 10) ++digits;
  return 1 + digits + 2 + len + 2;
}

std::string_view str(const redisReply* r) {
  return r->str ? std::string_view(r->str, r->len) : std::string_view{};
}

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

struct ReaderDeleter {
  void operator()(redisReader* r) const { redisReaderFree(r); }
};

// One TCP connection to redis-server: a read loop feeding hiredis's reader, and writes
// coalesced behind the one in flight.
struct Link {
  explicit Link(asio::io_context& ioc) : socket(ioc), reader(redisReaderCreate()) {}
  tcp::socket socket;
  std::unique_ptr<redisReader, ReaderDeleter> reader;
  std::array<char, kReadChunk> chunk{};
  std::string pending;   // commands not yet handed to the socket
  std::string inflight;  // the write in flight
  bool writing = false;
  bool connected = false;
};

class RedisClient final : public FleetClient, public std::enable_shared_from_this<RedisClient> {
 public:
  RedisClient(Shard& shard, const RedisTarget& target, std::size_t room, std::size_t index)
      : shard_(shard),
        target_(target),
        channel_(target.channel_prefix + std::to_string(room)),
        index_(index),
        sub_(shard.context()),
        pub_(shard.context()),
        timer_(shard.context()) {}

  void open() override {
    state_ = State::opening;
    connect(sub_);
    connect(pub_);
  }

  void start(Clock::time_point start) override {
    if (state_ != State::joined || target_.rate <= 0) return;
    schedule_.emplace(start, target_.rate, static_cast<std::uint32_t>(index_ * 2654435761u + 1));
    arm_timer();
  }

  void close() override {
    timer_.cancel();
    const bool was_opening = state_ == State::opening;
    state_ = State::closed;
    error_code ignored;
    for (Link* l : {&sub_, &pub_}) {
      l->socket.shutdown(tcp::socket::shutdown_both, ignored);
      l->socket.close(ignored);
    }
    if (was_opening) report_opened(false);
    report_closed();
  }

 private:
  enum class State { idle, opening, joined, closed, dead };

  // ----- connections --------------------------------------------------------------------

  void connect(Link& l) {
    l.socket.async_connect(target_.endpoint, [self = shared_from_this(), &l](error_code ec) {
      self->on_connect(l, ec);
    });
  }

  void on_connect(Link& l, error_code ec) {
    if (ec) return on_lost("connect", ec);
    l.socket.set_option(tcp::no_delay(true), ec);
    l.connected = true;
    if (&l == &sub_) {
      std::string cmd;
      append_command(cmd, {"SUBSCRIBE", channel_});
      send(l, cmd);
    }
    read(l);
    maybe_joined();
  }

  void maybe_joined() {
    if (state_ == State::opening && sub_.connected && pub_.connected && subscribed_) {
      state_ = State::joined;
      report_opened(true);
    }
  }

  void read(Link& l) {
    l.socket.async_read_some(asio::buffer(l.chunk),
                             [self = shared_from_this(), &l](error_code ec, std::size_t n) {
                               self->on_read(l, ec, n);
                             });
  }

  void on_read(Link& l, error_code ec, std::size_t n) {
    if (ec) return on_lost("read", ec);
    const auto now = Clock::now();
    if (redisReaderFeed(l.reader.get(), l.chunk.data(), n) != REDIS_OK) {
      return on_lost("protocol", asio::error::invalid_argument);
    }
    for (;;) {
      void* raw = nullptr;
      if (redisReaderGetReply(l.reader.get(), &raw) != REDIS_OK) {
        return on_lost("protocol", asio::error::invalid_argument);
      }
      if (!raw) break;
      ReplyPtr reply(static_cast<redisReply*>(raw));
      if (&l == &sub_) on_sub_reply(*reply, now);
      else on_pub_reply(*reply);
    }
    if (state_ == State::closed || state_ == State::dead) return;
    read(l);
  }

  // Sends `bytes` on `l`: at once if nothing is in flight, else after what is.
  void send(Link& l, std::string_view bytes) {
    l.pending.append(bytes);
    if (!l.writing) flush(l);
  }

  void flush(Link& l) {
    l.inflight.clear();
    std::swap(l.inflight, l.pending);
    l.writing = true;
    asio::async_write(l.socket, asio::buffer(l.inflight),
                      [self = shared_from_this(), &l](error_code ec, std::size_t) {
                        self->on_write(l, ec);
                      });
  }

  void on_write(Link& l, error_code ec) {
    l.writing = false;
    if (ec) return on_lost("write", ec);
    if (!l.pending.empty() && state_ != State::closed) flush(l);
  }

  void on_lost(const char* what, error_code ec) {
    switch (state_) {
      case State::closed:
      case State::dead:
      case State::idle:
        return;
      case State::opening:
        shard_.stats().note_error(std::string(what) + ": " + ec.message());
        state_ = State::dead;
        report_opened(false);
        return;
      case State::joined:
        timer_.cancel();
        state_ = State::dead;
        ++shard_.stats().disconnects;
        shard_.stats().note_error(std::string("connection lost (") + what + "): " + ec.message());
        return;
    }
  }

  // ----- replies ------------------------------------------------------------------------

  void on_sub_reply(const redisReply& r, Clock::time_point now) {
    if (r.type == REDIS_REPLY_ERROR) return shard_.stats().note_error(std::string(str(&r)));
    if (r.type != REDIS_REPLY_ARRAY || r.elements != 3 ||
        r.element[0]->type != REDIS_REPLY_STRING) {
      return;
    }
    const std::string_view kind = str(r.element[0]);
    if (kind == "message") {
      if (state_ == State::joined && shard_.window().contains(now)) on_message(r, now);
    } else if (kind == "subscribe") {
      subscribed_ = true;
      maybe_joined();
    }
  }

  void on_pub_reply(const redisReply& r) {
    // PUBLISH answers the number of receivers; only errors matter.
    if (r.type == REDIS_REPLY_ERROR) shard_.stats().note_error(std::string(str(&r)));
  }

  // A pushed message: ["message", channel, payload].
  void on_message(const redisReply& r, Clock::time_point now) {
    const std::string_view channel = str(r.element[1]);
    const std::string_view payload = str(r.element[2]);
    ClientStats& stats = shard_.stats();
    ++stats.deliveries;
    // "*3\r\n" + $7 message + $n channel + $m payload
    stats.delivery_bytes +=
        4 + bulk_size(7) + bulk_size(channel.size()) + bulk_size(payload.size());
    stats.payload_bytes += payload.size();
    const auto t = sent_at(payload);
    if (!t) return stats.note_error("undecodable payload");
    for (std::int64_t own : own_sends_)
      if (own == *t) return;
    stats.latency.record((steady_ns(now) - *t) / 1000);
  }

  // Returns the `t` of a MessagePack {x, t}, or nullopt if it has none.
  std::optional<std::int64_t> sent_at(std::string_view payload) {
    std::optional<std::int64_t> t;
    try {
      const msgpack::object obj = msgpack::unpack(zone_, payload.data(), payload.size());
      if (obj.type == msgpack::type::MAP) {
        for (std::uint32_t i = 0; i < obj.via.map.size; ++i) {
          const auto& kv = obj.via.map.ptr[i];
          if (kv.key.type == msgpack::type::STR && kv.key.via.str.size == 1 &&
              kv.key.via.str.ptr[0] == 't') {
            if (kv.val.type == msgpack::type::POSITIVE_INTEGER)
              t = static_cast<std::int64_t>(kv.val.via.u64);
            else if (kv.val.type == msgpack::type::NEGATIVE_INTEGER)
              t = kv.val.via.i64;
          }
        }
      }
    } catch (const std::exception&) {
      t.reset();
    }
    zone_.clear();
    return t;
  }

  // ----- publishing ---------------------------------------------------------------------

  void arm_timer() {
    timer_.expires_at(schedule_->next());
    timer_.async_wait([self = shared_from_this()](error_code ec) { self->on_timer(ec); });
  }

  void on_timer(error_code ec) {
    if (ec || state_ != State::joined) return;
    const auto now = Clock::now();
    if (now >= shard_.window().end) return;  // the run is over: stop publishing
    if (shard_.window().contains(now))
      shard_.stats().send_lag.record(
          std::chrono::duration_cast<std::chrono::microseconds>(now - schedule_->next()).count());
    publish(now);
    shard_.stats().sends_skipped += schedule_->advance(now);
    arm_timer();
  }

  void publish(Clock::time_point now) {
    if (pub_.pending.size() >= kMaxPendingBytes) {
      ++shard_.stats().sends_dropped;
      return;
    }
    const std::int64_t t = steady_ns(now);
    own_sends_[own_next_++ % kOwnSendsRemembered] = t;
    payload_.clear();
    msgpack::packer<msgpack::sbuffer> pk(payload_);
    pk.pack_map(2);
    pk.pack(std::string_view("x"));
    pk.pack(++x_);
    pk.pack(std::string_view("t"));
    pk.pack(t);
    command_.clear();
    const std::string_view payload(payload_.data(), payload_.size());
    append_command(command_, {"PUBLISH", channel_, payload});
    if (shard_.window().contains(now)) ++shard_.stats().updates_sent;
    send(pub_, command_);
  }

  void report_opened(bool ok) {
    if (open_reported_) return;
    open_reported_ = true;
    shard_.on_opened(ok);
  }

  void report_closed() {
    if (close_reported_) return;
    close_reported_ = true;
    shard_.on_closed();
  }

  Shard& shard_;
  const RedisTarget& target_;
  const std::string channel_;
  const std::size_t index_;
  Link sub_;
  Link pub_;
  asio::steady_timer timer_;
  std::optional<SendSchedule> schedule_;
  msgpack::zone zone_;
  msgpack::sbuffer payload_;
  std::string command_;
  std::array<std::int64_t, kOwnSendsRemembered> own_sends_{};
  std::size_t own_next_ = 0;
  std::int64_t x_ = 0;
  State state_ = State::idle;
  bool subscribed_ = false;
  bool open_reported_ = false;
  bool close_reported_ = false;
};

}  // namespace

std::shared_ptr<FleetClient> make_redis_client(Shard& shard, const RedisTarget& target,
                                               std::size_t room, std::size_t index) {
  return std::make_shared<RedisClient>(shard, target, room, index);
}

}  // namespace kasagi::tools
