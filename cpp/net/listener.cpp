#include "net/listener.hpp"

#include <stdexcept>
#include <boost/asio/dispatch.hpp>

#include <boost/beast/core.hpp>

#include "net/http_session.hpp"
#include "telemetry/log.hpp"

namespace kasagi::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// Throws "<what>: <reason>" when `ec` is set (the throwing overloads would add Boost's
// source location to the message an operator reads).
void check(const boost::system::error_code& ec, const char* what) {
  if (ec) throw std::runtime_error(std::string(what) + ": " + ec.message());
}

}  // namespace

Listener::Listener(Context& ctx, const std::string& host, std::uint16_t port)
    : ctx_(ctx), executor_(ctx.pool.next()), acceptor_(executor_), retry_(executor_) {
  boost::system::error_code ec;
  tcp::resolver resolver(executor_);
  const auto results = resolver.resolve(
      host, std::to_string(port), tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  check(ec, "resolve");
  const tcp::endpoint endpoint = *results.begin();
  acceptor_.open(endpoint.protocol(), ec);
  check(ec, "open");
  acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  check(ec, "set_option");
  acceptor_.bind(endpoint, ec);
  check(ec, "bind");
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  check(ec, "listen");
  port_ = acceptor_.local_endpoint(ec).port();
  check(ec, "local_endpoint");
}

void Listener::run() { asio::dispatch(executor_, [self = shared_from_this()] { self->do_accept(); }); }

void Listener::close() {
  asio::post(executor_, [self = shared_from_this()] {
    boost::system::error_code ec;
    self->acceptor_.close(ec);
    self->retry_.cancel();
  });
}

void Listener::do_accept() {
  acceptor_.async_accept(ctx_.pool.next(),
                         boost::beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
}

void Listener::on_accept(boost::beast::error_code ec, Stream::Socket socket) {
  if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
  if (ec) {
    // Out of file descriptors and the like: wait a little instead of spinning.
    log::warning("accept failed: " + ec.message());
    retry_.expires_after(std::chrono::milliseconds(100));
    retry_.async_wait([self = shared_from_this()](boost::system::error_code e) {
      if (!e) self->do_accept();
    });
    return;
  }
  socket.set_option(tcp::no_delay(true), ec);
  const auto peer = socket.remote_endpoint(ec);
  auto lease = ec ? std::nullopt : ctx_.per_ip.connect(peer.address());
  if (lease) {
    std::make_shared<HttpSession>(std::move(socket), ctx_, std::move(*lease))->run();
  } else {  // gone already, or too many connections from its address: close it at once
    ctx_.metrics.count_refusal(metrics::Refusal::connections_per_ip);
    socket.close(ec);
  }
  do_accept();
}

}  // namespace kasagi::net
