#include "net/ws_session.hpp"

#include <boost/asio/post.hpp>

#include "telemetry/log.hpp"

namespace kasagi::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace http = beast::http;
using protocol::ErrorCode;
using protocol::Message;
using protocol::Type;

namespace {

// A peer that does not read cannot take our close frame; after this long its socket is
// simply shut, so a stuck client never holds resources past a close.
constexpr std::chrono::seconds kCloseTimeout{2};

// Pieces of a message shorter than this count against max_fragments. Beast hands a message
// over as its bytes arrive, at most one frame's worth at a time: a flood of tiny fragments
// comes as tiny pieces, while a large frame over a slow link comes in pieces of whatever
// the network delivered, rarely this small. Larger fragments are bounded anyway: Beast
// checks a message's total against read_message_max (max_frame_bytes) at every frame
// header, so a message holds at most max_frame_bytes / kSmallPiece of them. Empty fragments
// never reach on_read (Beast reads on past them): the read budget bounds those.
constexpr std::size_t kSmallPiece = 64;

std::uint64_t now_ms() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}
}  // namespace

WsSession::WsSession(Stream&& stream, IpLimits::Lease lease, Context& ctx,
                     protocol::Format format, bool offered_subprotocol, room::Identity identity)
    : ws_(std::move(stream)),
      lease_(std::move(lease)),
      identity_(std::move(identity)),
      home_(&ws_.get_executor().context()),
      close_timer_(ws_.get_executor()),
      idle_timer_(ws_.get_executor()),
      ctx_(ctx),
      format_(format),
      offered_subprotocol_(offered_subprotocol),
      limiter_(ctx.settings.rate_limit, ctx.settings.rate_burst) {
  ctx_.metrics.connections.fetch_add(1, std::memory_order_relaxed);
  ctx_.metrics.connections_total.fetch_add(1, std::memory_order_relaxed);
}

WsSession::~WsSession() {
  ctx_.metrics.connections.fetch_sub(1, std::memory_order_relaxed);
  std::lock_guard lock(ctx_.sessions_mutex);
  ctx_.sessions.erase(this);
}

// ---------------------------------------------------------------------------------------
// Home thread

template <class F>
void WsSession::post_home(F f) {
  asio::post(*home_.load(std::memory_order_acquire),
             [self = shared_from_this(), f = std::move(f)]() mutable {
               // Posted just before the session moved: follow it.
               if (!self->at_home()) return self->post_home(std::move(f));
               f();
             });
}

bool WsSession::at_home() const {
  return home_.load(std::memory_order_acquire)->get_executor().running_in_this_thread();
}

// Called while the first JOIN_ROOM is dispatched; when a move is planned, the join waits
// for move_home at the end of on_read.
void WsSession::plan_move(const RoomActor& actor) {
  placed_ = true;
  auto& target = actor.executor().get_inner_executor().context();
  if (actor.on_io_thread() && &target != home_.load(std::memory_order_relaxed)) {
    move_target_ = &target;
  }
}

// The end of on_read: no read is pending, and no handler of this session can run on the
// old thread until this one returns. A write or ping in flight, or TLS, keeps the
// connection where it is. Once home_ names the new thread, that thread may run the
// session's handlers: everything the move changes is done before, and only then is the
// join posted, so every answer of the room finds the session at its new home, in order
// (an answer posted to the old home would be re-posted behind later ones). The join goes
// out whether the move happens or not; the posted read follows it on the new thread.
bool WsSession::move_home() {
  auto* target = std::exchange(move_target_, nullptr);
  auto join = std::exchange(deferred_join_, {});
  const bool moved = target && !writing_ && !ping_in_flight_ && !closing_ && !finished_ &&
                     ws_.next_layer().move_to(*target);
  if (moved) {
    // Neither timer is armed but the idle one, whose cancelled wait ends on the old thread
    // without touching the session.
    close_timer_ = asio::steady_timer(target->get_executor());
    idle_timer_ = asio::steady_timer(target->get_executor());
    home_.store(target, std::memory_order_release);
  }
  if (join.actor) join.actor->post(std::move(join.input));
  if (!moved) return false;
  asio::post(*target, [self = shared_from_this()] {
    if (self->closing_ || self->finished_) return;
    self->arm_idle();
    self->do_read();
  });
  return true;
}

// ---------------------------------------------------------------------------------------
// Idle connections

void WsSession::arm_idle() {
  const auto idle = ctx_.settings.idle_timeout;
  if (idle.count() <= 0 || finished_) return;
  idle_timer_.expires_at(last_heard_ + (pinged_ ? idle : idle / 2));
  idle_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec) return;
    if (!self->at_home()) return self->post_home([self] { self->on_idle(); });
    self->on_idle();
  });
}

void WsSession::on_idle() {
  if (finished_) return;
  const auto idle = ctx_.settings.idle_timeout;
  const auto silent = std::chrono::steady_clock::now() - last_heard_;
  if (pinged_ && silent >= idle) {
    beast::error_code ec;  // the pending read fails: finish()
    beast::get_lowest_layer(ws_).socket().close(ec);
    return;
  }
  if (!pinged_ && silent >= idle / 2 && !closing_ && !ping_in_flight_) {
    pinged_ = true;
    ping_in_flight_ = true;
    ws_.async_ping({}, [self = shared_from_this()](beast::error_code) {
      self->ping_in_flight_ = false;
    });
  }
  arm_idle();
}

// ---------------------------------------------------------------------------------------
// Handshake and reading

void WsSession::run(Request req) {
  {
    std::lock_guard lock(ctx_.sessions_mutex);
    ctx_.sessions[this] = weak_from_this();
  }
  const auto& s = ctx_.settings;
  websocket::stream_base::timeout timeouts{s.handshake_timeout, websocket::stream_base::none(),
                                           /*keep_alive_pings=*/false};
  ws_.set_option(timeouts);  // after the handshake, the idle timer is ours (arm_idle)
  ws_.read_message_max(s.max_frame_bytes);  // larger frames close the connection with 1009
  ws_.auto_fragment(false);
  ws_.next_layer().limit_reads(s.read_bytes_per_second);
  if (s.permessage_deflate) {
    websocket::permessage_deflate deflate;
    deflate.server_enable = true;  // inflated messages are bounded by read_message_max too
    ws_.set_option(deflate);
  }
  std::string proto = offered_subprotocol_ ? std::string(protocol::subprotocol(format_)) : "";
  ws_.set_option(websocket::stream_base::decorator([proto](websocket::response_type& res) {
    res.set(http::field::server, "kasagi");
    if (!proto.empty()) res.set(http::field::sec_websocket_protocol, proto);
  }));
  ws_.next_layer().expires_never();  // the websocket timeouts take over
  ws_.async_accept(req, beast::bind_front_handler(&WsSession::on_accept, shared_from_this()));
}

void WsSession::on_accept(beast::error_code ec) {
  if (ec) return finish();
  open_ = true;
  // Beast's timer is off from now on: close_timer_ bounds the closing handshake.
  ws_.set_option(websocket::stream_base::timeout{websocket::stream_base::none(),
                                                 websocket::stream_base::none(), false});
  ws_.control_callback([this](websocket::frame_type, beast::string_view) {
    last_heard_ = std::chrono::steady_clock::now();  // pings and pongs count as heard
    pinged_ = false;
  });
  last_heard_ = std::chrono::steady_clock::now();
  arm_idle();
  if (closing_ || ctx_.draining.load()) {  // drain or stop began during the handshake
    closing_ = false;
    start_close(websocket::close_code::going_away, "going away");
  }
  if (!closing_) do_read();
  do_write();
}

void WsSession::do_read() {
  ws_.async_read_some(buffer_, 0,
                      beast::bind_front_handler(&WsSession::on_read, shared_from_this()));
}

void WsSession::on_read(beast::error_code ec, std::size_t bytes) {
  if (ec) return finish();  // closed, timed out, or too big (Beast has sent 1009)
  if (closing_) return;     // Beast's close reads on (discarding) until the peer's close frame
  last_heard_ = std::chrono::steady_clock::now();
  pinged_ = false;
  if (!ws_.is_message_done()) {
    // Tiny fragments cost work per fragment while no message arrives to be rate-limited.
    if (bytes < kSmallPiece && ++small_pieces_ > ctx_.settings.max_fragments) {
      ctx_.metrics.fragment_disconnects.fetch_add(1, std::memory_order_relaxed);
      return start_close(websocket::close_code::policy_error, "too many fragments");
    }
    return do_read();
  }
  small_pieces_ = 0;
  const auto data = buffer_.cdata();
  handle_frame(std::string_view(static_cast<const char*>(data.data()), data.size()));
  buffer_.consume(buffer_.size());
  const bool moved = move_home();  // also posts a join it held back
  if (closing_ || moved) return;
  do_read();
}

void WsSession::handle_frame(std::string_view bytes) {
  const auto& s = ctx_.settings;
  const auto now = std::chrono::steady_clock::now();
  if (!limiter_.allow(now)) {
    // An episode of limiting lasts while rejections keep coming at least once a second.
    if (!limited_since_ || now - last_rejection_ > std::chrono::seconds(1)) limited_since_ = now;
    last_rejection_ = now;
    if (now - *limited_since_ > s.rate_limit_close_after) {
      ctx_.metrics.rate_limit_disconnects.fetch_add(1, std::memory_order_relaxed);
      log::warning("closing a connection that exceeded the message rate for too long");
      start_close(websocket::close_code::policy_error, "rate limit exceeded");
      return;
    }
    // Decoded only to echo requestId and roomId, so a client waiting for an ACK learns at
    // once that its message was dropped.
    std::string room_id;
    std::optional<std::uint64_t> request_id;
    if (bytes.size() <= s.max_message_bytes) {
      auto result = protocol::decode(format_, bytes);
      if (auto* msg = std::get_if<Message>(&result)) {
        room_id = msg->room_id;
        request_id = msg->request_id;
      }
    }
    reply_error(ErrorCode::rate_limited,
                "more than " + std::to_string(static_cast<long>(s.rate_limit)) +
                    " messages per second; message dropped",
                room_id, request_id);
    return;
  }
  if (bytes.size() > s.max_message_bytes) {
    reply_error(ErrorCode::too_large,
                "message of " + std::to_string(bytes.size()) + " bytes exceeds the limit of " +
                    std::to_string(s.max_message_bytes),
                {}, std::nullopt);
    return;
  }
  protocol::DecodeLimits limits;
  limits.value.max_depth = s.max_state_depth;
  auto result = protocol::decode(format_, bytes, limits);
  if (auto* err = std::get_if<protocol::DecodeError>(&result)) {
    reply_error(err->code, err->message, err->room_id, err->request_id);
    return;
  }
  dispatch(std::get<Message>(std::move(result)), bytes.size());
}

// ---------------------------------------------------------------------------------------
// Messages

void WsSession::dispatch(Message&& msg, std::size_t bytes) {
  ctx_.metrics.count_in(msg.type, bytes);
  auto self = shared_from_this();
  switch (msg.type) {
    case Type::ping: {
      Message pong;
      pong.type = Type::pong;
      pong.payload = state::Object{{"serverTime", now_ms()}};
      pong.timestamp = msg.timestamp;
      pong.request_id = msg.request_id;
      reply(pong);
      return;
    }
    case Type::join_room: {
      if (ctx_.draining.load()) {
        return reply_error(ErrorCode::unavailable, "server is shutting down", msg.room_id,
                           msg.request_id);
      }
      if (!identity_.may_join(msg.room_id)) {
        return reply_error(ErrorCode::forbidden, "this token may not join room " + msg.room_id,
                           msg.room_id, msg.request_id);
      }
      // Attributes become the player's entry: a write, refused here as STATE_UPDATE is below.
      // Checked before the join goes anywhere, so a relay never forwards it either.
      if (!identity_.may_write && room::join_sets_attributes(msg)) {
        return reply_error(ErrorCode::forbidden,
                           "this token is read-only: JOIN_ROOM may not set player attributes",
                           msg.room_id, msg.request_id);
      }
      if (!ctx_.per_ip.allow_join(lease_.address(), std::chrono::steady_clock::now())) {
        return reply_error(ErrorCode::rate_limited,
                           "too many JOIN_ROOM from this address; try again later", msg.room_id,
                           msg.request_id);
      }
      std::shared_ptr<RoomActor> actor;
      if (auto it = rooms_.find(msg.room_id); it != rooms_.end()) {
        actor = it->second.actor;
        actor->pending_joins.fetch_add(1, std::memory_order_relaxed);
      } else {
        if (rooms_.size() >= ctx_.settings.max_rooms_per_connection) {
          return reply_error(ErrorCode::forbidden,
                             "a connection may be in at most " +
                                 std::to_string(ctx_.settings.max_rooms_per_connection) +
                                 " rooms",
                             msg.room_id, msg.request_id);
        }
        actor = ctx_.rooms.acquire(msg.room_id);
        if (!actor) {
          return reply_error(ErrorCode::unavailable, "server has reached its maximum of rooms",
                             msg.room_id, msg.request_id);
        }
        if (!placed_) plan_move(*actor);
        rooms_.emplace(msg.room_id, Membership{actor, actor->uid()});
      }
      RoomActor* raw = actor.get();
      RoomActor::Input join = [self, raw, m = std::move(msg)](room::Inbox& r,
                                                              room::Clock::time_point now) {
        raw->pending_joins.fetch_sub(1, std::memory_order_relaxed);
        r.join(self, m, now);
      };
      // Moving: the room must not answer before the move is done (move_home posts it).
      if (move_target_) {
        deferred_join_ = {std::move(actor), std::move(join)};
        return;
      }
      actor->post(std::move(join));
      return;
    }
    case Type::leave_room:
    case Type::state_update:
    case Type::resync: {
      auto it = rooms_.find(msg.room_id);
      if (it == rooms_.end()) {
        return reply_error(ErrorCode::not_in_room, "not in room " + msg.room_id, msg.room_id,
                           msg.request_id);
      }
      if (msg.type == Type::state_update && !identity_.may_write) {
        return reply_error(ErrorCode::forbidden, "this token is read-only", msg.room_id,
                           msg.request_id);
      }
      auto actor = it->second.actor;
      if (msg.type == Type::leave_room) rooms_.erase(it);
      actor->deliver([self, m = std::move(msg)](room::Inbox& r, room::Clock::time_point t) mutable {
        switch (m.type) {
          case Type::leave_room: r.leave(self, m, t); break;
          case Type::state_update: r.update(self, std::move(m), t); break;
          default: r.resync(self, m, t); break;
        }
      });
      return;
    }
    default:
      return reply_error(ErrorCode::unknown_type,
                         std::string(protocol::to_string(msg.type)) +
                             " is sent by servers, not clients",
                         msg.room_id, msg.request_id);
  }
}

void WsSession::reply(const Message& msg) {
  auto frame = std::make_shared<const std::string>(protocol::encode(format_, msg));
  ctx_.metrics.count_out(msg.type, frame->size());
  enqueue({std::move(frame), msg.type, 0});
}

void WsSession::reply_error(ErrorCode code, std::string_view text, std::string_view room_id,
                            std::optional<std::uint64_t> request_id) {
  ctx_.metrics.count_error(code);
  reply(protocol::make_error(code, text, room_id, request_id));
}

void WsSession::removed_from_room(std::uint64_t room_uid, const std::string& room_id) {
  auto forget = [this, room_uid, room_id] {
    auto it = rooms_.find(room_id);
    if (it != rooms_.end() && it->second.uid == room_uid) rooms_.erase(it);
    awaiting_full_state_.erase(room_uid);
  };
  if (at_home()) return forget();  // in order with send(), which does the same
  post_home(std::move(forget));
}

// ---------------------------------------------------------------------------------------
// Writing

void WsSession::send(room::Outgoing frame) {
  // From a room on this session's own thread (the common case, see move_home), queued at
  // once: no handler posted per delta. Rooms elsewhere post, in order.
  if (at_home()) return enqueue(std::move(frame));
  post_home([this, f = std::move(frame)]() mutable { enqueue(std::move(f)); });
}

void WsSession::enqueue(room::Outgoing&& frame) {
  if (finished_ || closing_) return;
  auto awaited = [&] {
    return frame.room_uid != 0 && awaiting_full_state_.count(frame.room_uid) != 0;
  };
  if (awaited()) {
    if (frame.type == Type::full_state) {
      awaiting_full_state_.erase(frame.room_uid);
    } else if (frame.type == Type::delta_update) {
      ctx_.metrics.send_queue_drops.fetch_add(1, std::memory_order_relaxed);
      return;  // superseded by the FULL_STATE on its way
    }
  }
  const auto& s = ctx_.settings;
  const bool over = queue_.size() + 1 > s.send_queue_max_messages ||
                    queued_bytes_ + frame.bytes->size() > s.send_queue_max_bytes;
  if (over && !queue_.empty()) {
    overflow();
    if (closing_) return;
    if (frame.type == Type::delta_update && awaited()) {
      ctx_.metrics.send_queue_drops.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  queued_bytes_ += frame.bytes->size();
  queue_.push_back(std::move(frame));
  do_write();
}

void WsSession::overflow() {
  const auto now = std::chrono::steady_clock::now();
  if (last_overflow_ && now - *last_overflow_ < ctx_.settings.slow_consumer_window) {
    ctx_.metrics.slow_consumer_disconnects.fetch_add(1, std::memory_order_relaxed);
    log::info("closing a slow consumer: its send queue overflowed twice");
    start_close(websocket::close_code::policy_error, "slow consumer");
    return;
  }
  last_overflow_ = now;
  ctx_.metrics.slow_consumer_resyncs.fetch_add(1, std::memory_order_relaxed);
  const std::size_t keep = writing_ ? 1 : 0;  // the frame being written stays
  ctx_.metrics.send_queue_drops.fetch_add(queue_.size() - keep, std::memory_order_relaxed);
  queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(keep), queue_.end());
  queued_bytes_ = keep ? queue_.front().bytes->size() : 0;
  auto self = shared_from_this();
  for (auto& [id, membership] : rooms_) {
    awaiting_full_state_.insert(membership.uid);
    membership.actor->post([self](room::Inbox& r, room::Clock::time_point t) {
      r.resync_slow_member(self, t);
    });
  }
}

void WsSession::do_write() {
  if (writing_ || queue_.empty() || !open_ || finished_) return;
  writing_ = true;
  ws_.binary(format_ == protocol::Format::msgpack);
  ws_.async_write(asio::buffer(*queue_.front().bytes),
                  beast::bind_front_handler(&WsSession::on_write, shared_from_this()));
}

void WsSession::on_write(beast::error_code ec, std::size_t) {
  writing_ = false;
  if (!queue_.empty()) {
    queued_bytes_ -= queue_.front().bytes->size();
    queue_.pop_front();
  }
  if (ec) return finish();
  if (close_after_write_) {
    auto [code, reason] = std::move(*close_after_write_);
    close_after_write_.reset();
    ws_.async_close(websocket::close_reason(code, reason),
                    [self = shared_from_this()](beast::error_code) { self->finish(); });
    return;
  }
  do_write();
}

// ---------------------------------------------------------------------------------------
// Closing

void WsSession::close(websocket::close_code code, std::string reason) {
  post_home([this, code, r = std::move(reason)] { start_close(code, r); });
}

void WsSession::start_close(websocket::close_code code, std::string reason) {
  if (closing_ || finished_) return;
  closing_ = true;
  close_timer_.expires_after(kCloseTimeout);
  close_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec || self->finished_) return;
    beast::get_lowest_layer(self->ws_).socket().close(ec);  // read and write fail: finish()
  });
  const std::size_t keep = writing_ ? 1 : 0;
  queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(keep), queue_.end());
  queued_bytes_ = keep ? queue_.front().bytes->size() : 0;
  if (!open_) return;  // handshake still running: on_accept closes
  if (writing_) {
    close_after_write_.emplace(code, std::move(reason));
    return;
  }
  ws_.async_close(websocket::close_reason(code, reason),
                  [self = shared_from_this()](beast::error_code) { self->finish(); });
}

void WsSession::finish() {
  if (finished_) return;
  finished_ = true;
  open_ = false;
  close_timer_.cancel();
  idle_timer_.cancel();
  queue_.clear();
  queued_bytes_ = 0;
  auto self = shared_from_this();
  for (auto& [id, membership] : rooms_) {
    membership.actor->post(
        [self](room::Inbox& r, room::Clock::time_point now) { r.detach(self, now); });
  }
  rooms_.clear();
}

}  // namespace kasagi::net
