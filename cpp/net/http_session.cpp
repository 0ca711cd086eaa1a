#include "net/http_session.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/beast/websocket.hpp>

#include "net/auth.hpp"
#include "net/origin_policy.hpp"
#include "net/ws_session.hpp"

namespace kasagi::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

namespace {

constexpr std::uint32_t kBodyLimit = 4 * 1024;  // none of our endpoints takes a body

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

Stream make_stream(Stream::Socket&& socket, Context& ctx) {
  Stream::Tcp tcp(std::move(socket));
  if (ctx.tls) return Stream(std::move(tcp), *ctx.tls);
  return Stream(std::move(tcp));
}

}  // namespace

HttpSession::HttpSession(Stream::Socket&& socket, Context& ctx, IpLimits::Lease lease)
    : stream_(make_stream(std::move(socket), ctx)), lease_(std::move(lease)), ctx_(ctx) {}

void HttpSession::run() {
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
    if (!self->stream_.tls()) return self->do_read();
    beast::get_lowest_layer(self->stream_).expires_after(self->ctx_.settings.handshake_timeout);
    self->stream_.async_handshake(beast::bind_front_handler(&HttpSession::on_handshake, self));
  });
}

void HttpSession::on_handshake(beast::error_code ec) {
  if (ec) return ctx_.metrics.count_refusal(metrics::Refusal::tls);  // dropped
  do_read();
}

void HttpSession::do_read() {
  parser_.emplace();
  parser_->header_limit(ctx_.settings.max_header_bytes);
  parser_->body_limit(kBodyLimit);
  beast::get_lowest_layer(stream_).expires_after(ctx_.settings.handshake_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   beast::bind_front_handler(&HttpSession::on_read, shared_from_this()));
}

void HttpSession::on_read(beast::error_code ec, std::size_t) {
  if (ec == http::error::end_of_stream) return shutdown();
  if (ec == http::error::header_limit) {
    Request req;
    req.version(11);
    return refuse(metrics::Refusal::headers, req,
                  http::status::request_header_fields_too_large, "request headers too large\n");
  }
  if (ec) return;  // timeout, oversized body, reset: just drop the connection
  Request req = parser_->release();
  const auto fields = static_cast<std::size_t>(std::distance(req.begin(), req.end()));
  if (fields > ctx_.settings.max_header_count) {
    return refuse(metrics::Refusal::headers, req, http::status::request_header_fields_too_large,
                  "too many request header fields\n");
  }
  if (websocket::is_upgrade(req)) return upgrade(std::move(req));

  const auto path = path_of(req.target());
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
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
  // The endpoints above and /sync (whose GET without an upgrade is a mistake) come first:
  // no file can shadow them.
  if (ctx_.static_files && path != "/sync") return serve_file(req, ctx_.static_files->lookup(path));
  respond(req, http::status::not_found, "text/plain", "not found\n");
}

void HttpSession::upgrade(Request&& req) {
  if (path_of(req.target()) != "/sync") {
    return respond(req, http::status::not_found, "text/plain",
                   "WebSocket endpoint is /sync\n");
  }
  const bool has_origin = req.find(http::field::origin) != req.end();
  if (!origin_allowed(ctx_.settings.allowed_origins, has_origin, req[http::field::origin])) {
    return refuse(metrics::Refusal::origin, req, http::status::forbidden,
                  "origin not allowed\n");
  }
  room::Identity identity;
  if (ctx_.jwt) {
    auto result = authenticate(*ctx_.jwt, req);
    if (auto* reason = std::get_if<std::string>(&result)) {
      return refuse(metrics::Refusal::token, req, http::status::unauthorized,
                    "unauthorized: " + *reason + "\n");
    }
    identity = std::get<room::Identity>(std::move(result));
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
  beast::get_lowest_layer(stream_).expires_never();
  std::make_shared<WsSession>(std::move(stream_), std::move(lease_), ctx_, format, has_offer,
                              std::move(identity))
      ->run(std::move(req));
}

void HttpSession::respond(const Request& req, http::status status, std::string content_type,
                          std::string body) {
  send<http::string_body>(req, status, content_type, std::move(body));
}

void HttpSession::refuse(metrics::Refusal why, const Request& req, http::status status,
                         std::string body) {
  ctx_.metrics.count_refusal(why);
  auto res = std::make_shared<http::response<http::string_body>>(status, req.version());
  res->set(http::field::server, "kasagi");
  res->set(http::field::content_type, "text/plain");
  res->keep_alive(false);
  if (status == http::status::unauthorized) {
    res->set(http::field::www_authenticate, "Bearer realm=\"kasagi\"");
  }
  res->body() = std::move(body);
  res->prepare_payload();
  write(std::move(res));
}

void HttpSession::serve_file(const Request& req, const StaticFiles::Lookup& lookup) {
  if (lookup.outcome == StaticFiles::Outcome::bad_target) {
    return respond(req, http::status::bad_request, "text/plain", "bad request target\n");
  }
  beast::error_code ec;
  http::file_body::value_type file;
  if (lookup.outcome == StaticFiles::Outcome::found) {
    file.open(lookup.file.c_str(), beast::file_mode::scan, ec);
  }
  if (lookup.outcome != StaticFiles::Outcome::found || ec) {
    return respond(req, http::status::not_found, "text/plain", "not found\n");
  }
  send<http::file_body>(req, http::status::ok, lookup.content_type, std::move(file));
}

template <class Body>
void HttpSession::send(const Request& req, http::status status, std::string_view content_type,
                       typename Body::value_type body) {
  const bool keep_alive = req.keep_alive() && status != http::status::bad_request;
  const auto fill = [&](auto& res) {
    res.set(http::field::server, "kasagi");
    res.set(http::field::content_type, content_type);
    res.keep_alive(keep_alive);
  };
  if (req.method() == http::verb::head) {  // the headers of the GET answer, without its body
    auto res = std::make_shared<http::response<http::empty_body>>(status, req.version());
    fill(*res);
    res->content_length(Body::size(body));
    return write(std::move(res));
  }
  auto res = std::make_shared<http::response<Body>>(status, req.version());
  fill(*res);
  res->body() = std::move(body);
  res->prepare_payload();
  write(std::move(res));
}

template <class Body>
void HttpSession::write(std::shared_ptr<http::response<Body>> res) {
  beast::get_lowest_layer(stream_).expires_after(ctx_.settings.handshake_timeout);
  http::async_write(stream_, *res,
                    [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                      if (ec) return;
                      if (!res->keep_alive()) return self->shutdown();
                      self->do_read();
                    });
}

void HttpSession::shutdown() {
  beast::error_code ec;
  beast::get_lowest_layer(stream_).socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
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
  out += ",\"instance\":\"" + ctx_.instance_id + "\"";
  out += "}\n";
  return out;
}

}  // namespace kasagi::net
