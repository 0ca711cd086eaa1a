// An HTTP connection on the server's port (plain or TLS): answers GET /healthz and
// GET /metrics, serves the files of static_dir (when set) for any other path, and hands a
// WebSocket upgrade of /sync over to a WsSession once the request has passed the admission
// checks (header limits, Origin, token) and a subprotocol is chosen. HEAD works wherever GET does.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include "net/context.hpp"
#include "net/static_files.hpp"
#include "net/stream.hpp"

namespace kasagi::net {

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(Stream::Socket&& socket, Context& ctx, IpLimits::Lease lease);
  void run();

 private:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  using Response = boost::beast::http::response<boost::beast::http::string_body>;
  void on_handshake(boost::beast::error_code ec);
  void do_read();
  void on_read(boost::beast::error_code ec, std::size_t);
  void upgrade(Request&& req);
  void respond(const Request& req, boost::beast::http::status status, std::string content_type,
               std::string body);
  void serve_file(const Request& req, const StaticFiles::Lookup& lookup);
  template <class Body>
  void send(const Request& req, boost::beast::http::status status, std::string_view content_type,
            typename Body::value_type body);
  template <class Body>
  void write(std::shared_ptr<boost::beast::http::response<Body>> res);
  // Answers with an error and closes the connection: the request was not let in.
  void refuse(metrics::Refusal why, const Request& req, boost::beast::http::status status,
              std::string body);
  void shutdown();
  std::string healthz_body() const;

  Stream stream_;
  IpLimits::Lease lease_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  Context& ctx_;
};

}  // namespace kasagi::net
