// One WebSocket connection: reads frames, enforces the per-connection limits, decodes, and
// posts each message to its room's thread. Sessions never touch room state. All of a
// session's handlers run on one I/O thread, its home: the one its socket was accepted onto
// until it joins its first room, then that room's (a plain TCP connection moves there, so
// its messages and its room's deltas stop crossing threads; TLS ones stay).
//
// Idle connections: silent for idle_timeout / 2, the session pings; silent for
// idle_timeout, it is closed. The session's own timer does this, not Beast's, whose timer
// would stay on the thread the connection was accepted onto.
//
// Output: one write in flight and a bounded queue of shared, immutable frames behind it.
// Slow-consumer policy: when the queue would pass send_queue_max_bytes/messages, the
// queued frames are dropped and every room the connection is in sends it one FULL_STATE
// instead (deltas for those rooms are discarded until it arrives); a second overflow within
// slow_consumer_window closes the connection (1008). Other members never wait for it.
//
// Input limits, in the order they apply: the stream's read budget (read_bytes_per_second),
// max_frame_bytes over a whole message (1009), max_fragments small pieces per message
// (1008), the message rate, max_message_bytes (TOO_LARGE). The connection's Identity (from
// its token) decides which rooms it may join and whether it may write.
#pragma once
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include "net/context.hpp"
#include "net/rate_limiter.hpp"
#include "net/room_actor.hpp"
#include "net/stream.hpp"
#include "room/member.hpp"

namespace kasagi::net {

class WsSession : public room::Member, public std::enable_shared_from_this<WsSession> {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;

  // `offered_subprotocol`: whether the client offered one (echoed in the handshake response).
  // `identity`: who the request's token says the client is (anonymous without tokens).
  WsSession(Stream&& stream, IpLimits::Lease lease, Context& ctx, protocol::Format format,
            bool offered_subprotocol, room::Identity identity);
  ~WsSession() override;

  // Completes the WebSocket handshake for the already-read upgrade request, then reads.
  void run(Request req);

  // Closes the connection with a close frame (from any thread).
  void close(boost::beast::websocket::close_code code, std::string reason);

  protocol::Format format() const override { return format_; }
  void send(room::Outgoing frame) override;
  void removed_from_room(std::uint64_t room_uid, const std::string& room_id) override;
  const room::Identity& identity() const override { return identity_; }

 private:
  struct Membership {
    std::shared_ptr<RoomActor> actor;
    std::uint64_t uid;
  };

  // Runs f() on the session's home thread (from any thread).
  template <class F>
  void post_home(F f);
  bool at_home() const;
  // The connection is to move onto the thread of `actor`, the first room it joins; the
  // move itself waits for the end of the read handler (move_home).
  void plan_move(const RoomActor& actor);
  // Moves it, when it can, as the last thing its old thread does for it, then posts the
  // join it held back; returns whether the next read was handed to the new home.
  bool move_home();
  void arm_idle();
  void on_idle();

  void on_accept(boost::beast::error_code ec);
  void do_read();
  void on_read(boost::beast::error_code ec, std::size_t bytes);
  void handle_frame(std::string_view bytes);
  void dispatch(protocol::Message&& msg, std::size_t bytes);
  void reply(const protocol::Message& msg);
  void reply_error(protocol::ErrorCode code, std::string_view text, std::string_view room_id,
                   std::optional<std::uint64_t> request_id);
  void enqueue(room::Outgoing&& frame);
  void overflow();
  void do_write();
  void on_write(boost::beast::error_code ec, std::size_t bytes);
  void start_close(boost::beast::websocket::close_code code, std::string reason);
  void finish();

  boost::beast::websocket::stream<Stream> ws_;
  const IpLimits::Lease lease_;
  const room::Identity identity_;
  std::atomic<boost::asio::io_context*> home_;  // whose thread runs this session's handlers
  bool placed_ = false;                         // moved (or stayed) at its first join
  boost::asio::io_context* move_target_ = nullptr;  // planned by plan_move
  struct DeferredJoin {
    std::shared_ptr<RoomActor> actor;
    RoomActor::Input input;
  };
  DeferredJoin deferred_join_;  // the first join, held back until the move (move_home)
  boost::asio::steady_timer close_timer_;  // bounds how long a close handshake may take
  boost::asio::steady_timer idle_timer_;
  std::chrono::steady_clock::time_point last_heard_;  // any frame from the peer
  bool pinged_ = false;                               // since last_heard_
  bool ping_in_flight_ = false;
  Context& ctx_;
  const protocol::Format format_;
  const bool offered_subprotocol_;
  boost::beast::flat_buffer buffer_;
  std::uint32_t small_pieces_ = 0;  // of the message being read
  RateLimiter limiter_;
  std::optional<std::chrono::steady_clock::time_point> limited_since_;
  std::chrono::steady_clock::time_point last_rejection_{};

  std::unordered_map<std::string, Membership> rooms_;  // by room id

  std::deque<room::Outgoing> queue_;
  std::size_t queued_bytes_ = 0;
  bool writing_ = false;
  std::unordered_set<std::uint64_t> awaiting_full_state_;  // room uids resyncing after overflow
  std::optional<std::chrono::steady_clock::time_point> last_overflow_;

  bool open_ = false;     // handshake done, not yet finished
  bool closing_ = false;  // a close was requested
  std::optional<std::pair<boost::beast::websocket::close_code, std::string>> close_after_write_;
  bool finished_ = false;
};

}  // namespace kasagi::net
