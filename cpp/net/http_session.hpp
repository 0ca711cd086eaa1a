// A plain HTTP connection on the server's port: answers GET /healthz and GET /metrics, and
// hands a WebSocket upgrade of /sync over to a WsSession after choosing the subprotocol.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include "net/context.hpp"

namespace kasagi::net {

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(boost::asio::ip::tcp::socket&& socket, Context& ctx);
  void run();

 private:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  void do_read();
  void on_read(boost::beast::error_code ec, std::size_t);
  void upgrade(Request&& req);
  void respond(const Request& req, boost::beast::http::status status, std::string content_type,
               std::string body);
  std::string healthz_body() const;

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  Context& ctx_;
};

}  // namespace kasagi::net
