#include "tools/ws_client.hpp"

#include <deque>
#include <optional>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include "tools/send_schedule.hpp"

namespace kasagi::tools {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using boost::system::error_code;

namespace {

constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr auto kHandshakeTimeout = std::chrono::seconds(5);  // also bounds the close handshake
// Updates waiting behind the write in flight. At 20 Hz a full queue means the server has
// not read for seconds; dropping (and counting) beats growing without bound.
constexpr std::size_t kMaxQueuedWrites = 64;

class WsClient final : public FleetClient, public std::enable_shared_from_this<WsClient> {
 public:
  WsClient(Shard& shard, const WsTarget& target, std::size_t room, std::size_t index)
      : shard_(shard),
        target_(target),
        room_id_(target.room_prefix + std::to_string(room)),
        index_(index),
        ws_(shard.context()),
        timer_(shard.context()) {}

  void open() override {
    state_ = State::connecting;
    beast::get_lowest_layer(ws_).expires_after(kConnectTimeout);
    beast::get_lowest_layer(ws_).async_connect(
        target_.endpoint, [self = shared_from_this()](error_code ec) { self->on_connect(ec); });
  }

  void start(Clock::time_point start) override {
    if (state_ != State::joined || target_.rate <= 0) return;
    schedule_.emplace(start, target_.rate, static_cast<std::uint32_t>(index_ * 2654435761u + 1));
    arm_timer();
  }

  void close() override {
    timer_.cancel();
    if (!player_id_.empty() && window_deliveries_ == 0 && !counted_silent_) {
      counted_silent_ = true;
      ++shard_.stats().target(target_.slot).clients_without_deltas;
    }
    switch (state_) {
      case State::idle:
      case State::dead:
        report_closed();
        return;
      case State::connecting:
      case State::joining:
        // Abandon the attempt: the pending operation fails and reports the open.
        state_ = State::closing;
        beast::get_lowest_layer(ws_).socket().close();
        report_closed();
        return;
      case State::joined:
        state_ = State::closing;
        if (!writing_) do_close();  // else on_write closes once the write in flight is done
        return;
      case State::closing:
        return;
    }
  }

 private:
  enum class State { idle, connecting, joining, joined, closing, dead };

  // ----- opening ------------------------------------------------------------------------

  void on_connect(error_code ec) {
    if (ec) return fail_open("connect", ec);
    beast::get_lowest_layer(ws_).expires_never();
    beast::get_lowest_layer(ws_).socket().set_option(asio::ip::tcp::no_delay(true), ec);
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = kHandshakeTimeout;
    timeouts.idle_timeout = websocket::stream_base::none();
    timeouts.keep_alive_pings = false;
    ws_.set_option(timeouts);
    const std::string proto{protocol::subprotocol(target_.format)};
    ws_.set_option(websocket::stream_base::decorator([proto](websocket::request_type& req) {
      req.set(beast::http::field::sec_websocket_protocol, proto);
      req.set(beast::http::field::user_agent, "kasagi-loadgen");
    }));
    ws_.async_handshake(handshake_response_, target_.host, "/sync",
                        [self = shared_from_this()](error_code e) { self->on_handshake(e); });
  }

  void on_handshake(error_code ec) {
    if (ec) return fail_open("handshake", ec);
    const auto chosen = handshake_response_[beast::http::field::sec_websocket_protocol];
    if (chosen != protocol::subprotocol(target_.format)) {
      shard_.stats().note_error("server chose subprotocol '" + std::string(chosen) + "'");
      return fail_open("handshake", asio::error::invalid_argument);
    }
    handshake_response_ = {};
    ws_.binary(target_.format == protocol::Format::msgpack);
    state_ = State::joining;
    protocol::Message join;
    join.type = protocol::Type::join_room;
    join.room_id = room_id_;
    join.payload = state::Object{};
    enqueue(protocol::encode(target_.format, join));
    do_read();
  }

  void fail_open(const char* what, error_code ec) {
    if (state_ != State::closing) {
      shard_.stats().note_error(std::string(what) + ": " + ec.message());
      state_ = State::dead;
    }
    report_opened(false);
  }

  // ----- reading ------------------------------------------------------------------------

  void do_read() {
    ws_.async_read(buffer_, [self = shared_from_this()](error_code ec, std::size_t n) {
      self->on_read(ec, n);
    });
  }

  void on_read(error_code ec, std::size_t n) {
    if (ec) return on_lost("read", ec);
    const auto now = Clock::now();
    const auto data = buffer_.cdata();
    on_frame(std::string_view(static_cast<const char*>(data.data()), data.size()), n, now);
    buffer_.consume(buffer_.size());
    do_read();
  }

  void on_frame(std::string_view bytes, std::size_t size, Clock::time_point now) {
    auto decoded = protocol::decode(target_.format, bytes);
    if (auto* err = std::get_if<protocol::DecodeError>(&decoded)) {
      shard_.stats().note_error("undecodable frame: " + err->message);
      return;
    }
    const auto& m = std::get<protocol::Message>(decoded);
    switch (m.type) {
      case protocol::Type::delta_update:
        if (state_ == State::joined && shard_.window().contains(now)) on_delta(m, size, now);
        return;
      case protocol::Type::full_state:
        if (state_ == State::joining) on_full_state(m);
        return;
      case protocol::Type::error:
        on_error(m);
        return;
      default:  // ACK, PONG, PLAYER_JOINED, PLAYER_LEFT: not measured
        return;
    }
  }

  void on_full_state(const protocol::Message& m) {
    const boost::json::value* id = m.payload ? m.payload->if_contains("playerId") : nullptr;
    if (!id || !id->is_string()) {
      shard_.stats().note_error("FULL_STATE without payload.playerId");
      state_ = State::dead;
      report_opened(false);
      return;
    }
    player_id_ = std::string(id->get_string());
    state_ = State::joined;
    ++shard_.stats().target(target_.slot).clients_joined;
    report_opened(true);
  }

  void on_delta(const protocol::Message& m, std::size_t size, Clock::time_point now) {
    ClientStats& stats = shard_.stats();
    ++stats.deliveries;
    ++stats.target(target_.slot).deliveries;
    ++window_deliveries_;
    stats.delivery_bytes += size;
    const boost::json::value* players = m.payload ? m.payload->if_contains("players") : nullptr;
    if (!players || !players->is_object()) return;
    const std::int64_t now_ns = steady_ns(now);
    for (const auto& [id, entry] : players->get_object()) {
      if (!entry.is_object() || id == player_id_) continue;
      const boost::json::value* t = entry.get_object().if_contains("t");
      if (t && t->is_int64()) stats.latency.record((now_ns - t->get_int64()) / 1000);
    }
  }

  void on_error(const protocol::Message& m) {
    std::string text = "ERROR";
    if (m.payload) {
      for (const char* key : {"code", "message"}) {
        const boost::json::value* v = m.payload->if_contains(key);
        if (v && v->is_string()) text += std::string(" ") + std::string(v->get_string());
      }
    }
    shard_.stats().note_error(std::move(text));
    if (state_ == State::joining) {  // the join was refused (ROOM_FULL, UNAVAILABLE, ...)
      state_ = State::dead;
      report_opened(false);
    }
  }

  void on_lost(const char* what, error_code ec) {
    switch (state_) {
      case State::closing:
      case State::dead:
      case State::idle:
        return report_opened(false);  // no-op unless an abandoned attempt ends here
      case State::connecting:
      case State::joining:
        return fail_open(what, ec);
      case State::joined:
        timer_.cancel();
        state_ = State::dead;
        ++shard_.stats().disconnects;
        shard_.stats().note_error(std::string("connection lost (") + what + "): " + ec.message());
        return;
    }
  }

  // ----- sending ------------------------------------------------------------------------

  void arm_timer() {
    timer_.expires_at(schedule_->next());
    timer_.async_wait([self = shared_from_this()](error_code ec) { self->on_timer(ec); });
  }

  void on_timer(error_code ec) {
    if (ec || state_ != State::joined) return;
    const auto now = Clock::now();
    if (now >= shard_.window().end) return;  // the run is over: stop sending
    if (shard_.window().contains(now))
      shard_.stats().send_lag.record(
          std::chrono::duration_cast<std::chrono::microseconds>(now - schedule_->next()).count());
    send_update(now);
    shard_.stats().sends_skipped += schedule_->advance(now);
    arm_timer();
  }

  void send_update(Clock::time_point now) {
    protocol::Message m;
    m.type = protocol::Type::state_update;
    m.room_id = room_id_;
    m.payload = state::Object{{"x", ++x_}, {"t", steady_ns(now)}};
    if (out_.size() >= kMaxQueuedWrites) {
      ++shard_.stats().sends_dropped;
      return;
    }
    if (shard_.window().contains(now)) ++shard_.stats().updates_sent;
    enqueue(protocol::encode(target_.format, m));
  }

  // One write in flight, the rest queued behind it.
  void enqueue(std::string frame) {
    out_.push_back(std::move(frame));
    if (!writing_) do_write();
  }

  void do_write() {
    writing_ = true;
    ws_.async_write(asio::buffer(out_.front()),
                    [self = shared_from_this()](error_code ec, std::size_t) {
                      self->on_write(ec);
                    });
  }

  void on_write(error_code ec) {
    writing_ = false;
    if (state_ == State::closing) return ec ? report_closed() : do_close();
    if (ec) return on_lost("write", ec);
    out_.pop_front();
    if (!out_.empty()) do_write();
  }

  // ----- closing ------------------------------------------------------------------------

  void do_close() {
    out_.clear();
    ws_.async_close(websocket::close_code::normal,
                    [self = shared_from_this()](error_code) { self->report_closed(); });
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
  const WsTarget& target_;
  const std::string room_id_;
  const std::size_t index_;
  websocket::stream<beast::tcp_stream> ws_;
  websocket::response_type handshake_response_;
  beast::flat_buffer buffer_;
  asio::steady_timer timer_;
  std::optional<SendSchedule> schedule_;
  std::deque<std::string> out_;
  std::string player_id_;
  std::int64_t x_ = 0;
  std::uint64_t window_deliveries_ = 0;
  State state_ = State::idle;
  bool writing_ = false;
  bool open_reported_ = false;
  bool close_reported_ = false;
  bool counted_silent_ = false;
};

}  // namespace

std::shared_ptr<FleetClient> make_ws_client(Shard& shard, const WsTarget& target,
                                            std::size_t room, std::size_t index) {
  return std::make_shared<WsClient>(shard, target, room, index);
}

}  // namespace kasagi::tools
