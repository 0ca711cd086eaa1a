// A connection's transport: plain TCP, or TLS over TCP when the server has a certificate.
// One concrete stream type with a runtime choice, so HttpSession and WsSession are written
// once for both (Beast's "flex" examples template every session on the stream instead).
//
// It also carries an optional read budget (limit_reads): once a connection has read its
// bytes for the moment, the next read waits until the budget refills, and TCP flow control
// slows the sender. That bounds the CPU any stream of input can take (pings, empty
// fragments), including what never becomes a message the rate limiter could count.
#pragma once
#include <memory>
#include <optional>
#include <utility>
#include <variant>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include "net/rate_limiter.hpp"

namespace kasagi::net {

class Stream {
 public:
  // On an io_context's own executor type, not the type-erased any_io_executor of
  // beast::tcp_stream: every asynchronous operation copies its executor a few times (work
  // guards at each layer), which type erasure made a visible cost per message.
  using Executor = boost::asio::io_context::executor_type;
  using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, Executor>;
  using Tcp = boost::beast::basic_stream<boost::asio::ip::tcp, Executor>;
  using Tls = boost::beast::ssl_stream<Tcp>;
  using executor_type = Tcp::executor_type;

  explicit Stream(Tcp&& tcp) : s_(std::move(tcp)) {}
  Stream(Tcp&& tcp, boost::asio::ssl::context& tls)
      : s_(std::in_place_type<Tls>, std::move(tcp), tls) {}

  bool tls() const { return std::holds_alternative<Tls>(s_); }
  executor_type get_executor() { return next_layer().get_executor(); }

  // The TCP stream under it all (beast::get_lowest_layer finds it through this).
  Tcp& next_layer() {
    if (auto* tcp = std::get_if<Tcp>(&s_)) return *tcp;
    return std::get<Tls>(s_).next_layer();
  }

  // Moves a plain TCP connection onto `ctx`: from now on its operations complete on the
  // thread that runs `ctx`. Call only while no operation is pending on it. Returns false,
  // changing nothing, for TLS (its stream keeps timers of its own on the old context) or
  // when the socket cannot be handed over.
  bool move_to(boost::asio::io_context& ctx) {
    auto* tcp = std::get_if<Tcp>(&s_);
    if (!tcp) return false;
    auto& old = tcp->socket();
    boost::system::error_code ec;
    const auto protocol = old.local_endpoint(ec).protocol();
    if (ec) return false;
    const auto fd = old.release(ec);  // leaves the old context's reactor, stays open
    if (ec) return false;
    Socket moved(ctx.get_executor());
    moved.assign(protocol, fd, ec);
    if (ec) {
      old.assign(protocol, fd, ec);  // back where it was (or closed by the failure)
      return false;
    }
    s_.emplace<Tcp>(std::move(moved));
    if (read_wait_) read_wait_ = std::make_unique<boost::asio::steady_timer>(get_executor());
    return true;
  }

  // The server side of the TLS handshake. Only for a TLS stream.
  template <class Handler>
  void async_handshake(Handler&& handler) {
    std::get<Tls>(s_).async_handshake(boost::asio::ssl::stream_base::server,
                                      std::forward<Handler>(handler));
  }

  // Limits reads to `bytes_per_second` on average, in bursts of one second's worth.
  // 0: unlimited.
  void limit_reads(std::uint32_t bytes_per_second) {
    read_budget_.reset();
    read_wait_.reset();
    if (bytes_per_second == 0) return;
    read_budget_.emplace(bytes_per_second, bytes_per_second);
    read_wait_ = std::make_unique<boost::asio::steady_timer>(get_executor());
  }

  // Ends the HTTP phase's timeouts (the WebSocket layer has its own). From then on a plain
  // TCP connection reads and writes its socket directly, without basic_stream's layer per
  // operation (timer bookkeeping, a shared_ptr copy, work guards): a few percent of the
  // server's CPU per message.
  void expires_never() {
    next_layer().expires_never();
    direct_ = true;
  }

  template <class Buffers, class Handler>
  void async_read_some(const Buffers& buffers, Handler&& handler) {
    if (!read_budget_) {
      auto read = [&](auto& s) { s.async_read_some(buffers, std::forward<Handler>(handler)); };
      return with_transport(read);
    }
    // Throttled: wait while the budget is spent, then read and charge what was read.
    auto read_now = [this, buffers, h = std::forward<Handler>(handler)](auto&&...) mutable {
      auto charge = [this, h = std::move(h)](boost::beast::error_code ec, std::size_t n) mutable {
        read_budget_->charge(static_cast<double>(n));
        h(ec, n);
      };
      with_transport([&](auto& s) { s.async_read_some(buffers, std::move(charge)); });
    };
    const auto wait = read_budget_->wait(RateLimiter::Clock::now());
    if (wait <= RateLimiter::Clock::duration::zero()) return read_now();
    // Nobody cancels the wait: when the socket was closed meanwhile, the read fails.
    read_wait_->expires_after(wait);
    read_wait_->async_wait(std::move(read_now));
  }

  template <class Buffers, class Handler>
  void async_write_some(const Buffers& buffers, Handler&& handler) {
    with_transport([&](auto& s) { s.async_write_some(buffers, std::forward<Handler>(handler)); });
  }

  // For the WebSocket closing handshake (found by argument-dependent lookup).
  template <class Handler>
  friend void async_teardown(boost::beast::role_type role, Stream& stream, Handler&& handler) {
    using boost::beast::websocket::async_teardown;
    std::visit([&](auto& s) { async_teardown(role, s, std::forward<Handler>(handler)); },
               stream.s_);
  }
  friend void teardown(boost::beast::role_type role, Stream& stream,
                       boost::beast::error_code& ec) {
    using boost::beast::websocket::teardown;
    std::visit([&](auto& s) { teardown(role, s, ec); }, stream.s_);
  }

 private:
  // Calls `f` with what reads and writes go to: the socket itself once direct, else the
  // stream (TLS always: its stream is built on basic_stream).
  template <class F>
  void with_transport(F&& f) {
    if (auto* tcp = std::get_if<Tcp>(&s_); tcp && direct_) return f(tcp->socket());
    std::visit(f, s_);
  }

  std::variant<Tcp, Tls> s_;
  bool direct_ = false;
  std::optional<RateLimiter> read_budget_;  // bytes; none: unlimited
  std::unique_ptr<boost::asio::steady_timer> read_wait_;
};

}  // namespace kasagi::net
