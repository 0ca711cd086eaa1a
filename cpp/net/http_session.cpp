#include "net/http_session.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/beast/websocket.hpp>

#include "net/ws_session.hpp"

namespace kasagi::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

namespace {

constexpr std::uint32_t kHeaderLimit = 8 * 1024;  // bytes of request line + headers
constexpr std::uint32_t kBodyLimit = 4 * 1024;    // none of our endpoints takes a body

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Picks the wire format from Sec-WebSocket-Protocol: the first offered name we speak.
// Returns nullopt when a list was offered and none of it is ours.
std::optional<protocol::Format> choose_format(std::string_view offered) {
  while (!offered.empty()) {
    const auto comma = offered.find(',');
    const auto name = trim(offered.substr(0, comma));
    if (auto f = protocol::format_from_subprotocol(name)) return f;
    if (comma == std::string_view::npos) break;
    offered.remove_prefix(comma + 1);
  }
  return std::nullopt;
}

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

}  // namespace

HttpSession::HttpSession(asio::ip::tcp::socket&& socket, Context& ctx)
    : stream_(std::move(socket)), ctx_(ctx) {}

void HttpSession::run() {
  asio::dispatch(stream_.get_executor(),
                 beast::bind_front_handler(&HttpSession::do_read, shared_from_this()));
}

void HttpSession::do_read() {
  parser_.emplace();
  parser_->header_limit(kHeaderLimit);
  parser_->body_limit(kBodyLimit);
  stream_.expires_after(ctx_.settings.handshake_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   beast::bind_front_handler(&HttpSession::on_read, shared_from_this()));
}

void HttpSession::on_read(beast::error_code ec, std::size_t) {
  if (ec == http::error::end_of_stream) {
    stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    return;
  }
  if (ec) return;  // timeout, oversized header, reset: just drop the connection
  Request req = parser_->release();
  if (websocket::is_upgrade(req)) return upgrade(std::move(req));

  const auto path = path_of(req.target());
  if (req.method() != http::verb::get) {
    return respond(req, http::status::method_not_allowed, "text/plain", "method not allowed\n");
  }
  if (path == "/healthz") {
    const bool draining = ctx_.draining.load();
    return respond(req, draining ? http::status::service_unavailable : http::status::ok,
                   "application/json", healthz_body());
  }
  if (path == "/metrics") {
    return respond(req, http::status::ok, "text/plain; version=0.0.4", ctx_.metrics.render());
  }
  respond(req, http::status::not_found, "text/plain", "not found\n");
}

void HttpSession::upgrade(Request&& req) {
  if (path_of(req.target()) != "/sync") {
    return respond(req, http::status::not_found, "text/plain",
                   "WebSocket endpoint is /sync\n");
  }
  protocol::Format format = protocol::Format::json;  // nothing offered: JSON
  const auto offered = req[http::field::sec_websocket_protocol];
  const bool has_offer = req.find(http::field::sec_websocket_protocol) != req.end();
  if (has_offer) {
    auto chosen = choose_format(offered);
    if (!chosen) {
      return respond(req, http::status::bad_request, "text/plain",
                     "unsupported subprotocol: offer kasagi.v1.json or kasagi.v1.msgpack\n");
    }
    format = *chosen;
  }
  if (ctx_.draining.load()) {
    return respond(req, http::status::service_unavailable, "text/plain",
                   "server is shutting down\n");
  }
  stream_.expires_never();
  std::make_shared<WsSession>(stream_.release_socket(), ctx_, format, has_offer)
      ->run(std::move(req));
}

void HttpSession::respond(const Request& req, http::status status, std::string content_type,
                          std::string body) {
  auto res = std::make_shared<http::response<http::string_body>>(status, req.version());
  res->set(http::field::server, "kasagi");
  res->set(http::field::content_type, content_type);
  res->keep_alive(req.keep_alive() && status != http::status::bad_request);
  res->body() = std::move(body);
  res->prepare_payload();
  stream_.expires_after(ctx_.settings.handshake_timeout);
  http::async_write(stream_, *res,
                    [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                      if (ec) return;
                      if (!res->keep_alive()) {
                        self->stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
                        return;
                      }
                      self->do_read();
                    });
}

std::string HttpSession::healthz_body() const {
  const auto& m = ctx_.metrics;
  const double uptime =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - ctx_.started).count();
  std::string out = "{\"status\":\"";
  out += ctx_.draining.load() ? "draining" : "ok";
  out += "\",\"connections\":" + std::to_string(m.connections.load());
  out += ",\"rooms\":" + std::to_string(m.rooms.load());
  out += ",\"members\":" + std::to_string(m.members.load());
  out += ",\"uptimeSeconds\":" + std::to_string(static_cast<long long>(uptime));
  out += "}\n";
  return out;
}

}  // namespace kasagi::net
