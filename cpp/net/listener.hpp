// Accepts TCP connections and starts an HttpSession for each, on the next I/O thread.
#pragma once
#include <memory>
#include <string>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include "net/context.hpp"
#include "net/stream.hpp"

namespace kasagi::net {

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  // Binds and listens. Throws boost::system::system_error when the address cannot be used.
  Listener(Context& ctx, const std::string& host, std::uint16_t port);

  // The bound port (the one the OS picked when port 0 was asked).
  std::uint16_t port() const { return port_; }

  void run();
  void close();  // stops accepting (from any thread)

 private:
  void do_accept();
  void on_accept(boost::beast::error_code ec, Stream::Socket socket);

  Context& ctx_;
  IoPool::Executor executor_;  // the acceptor's thread
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_;
  std::uint16_t port_ = 0;
};

}  // namespace kasagi::net
