#include "net/auth.hpp"

#include <algorithm>
#include <boost/beast/core/string.hpp>
#include "protocol/percent_decode.hpp"

namespace kasagi::net {

namespace http = boost::beast::http;

namespace {

// A query value ('+' is a space there). A malformed escape leaves the value as it is: the
// token check refuses the result anyway.
std::string query_value(std::string_view in) {
  std::string spaced(in);
  std::replace(spaced.begin(), spaced.end(), '+', ' ');
  auto decoded = protocol::percent_decode(spaced);
  return decoded ? std::move(*decoded) : spaced;
}

// The value of query parameter `name` in `target` ("/sync?a=1&token=x"), or "".
std::string query_parameter(std::string_view target, std::string_view name) {
  const auto q = target.find('?');
  if (q == target.npos) return {};
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    if (eq != pair.npos && pair.substr(0, eq) == name) return query_value(pair.substr(eq + 1));
    if (amp == query.npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

}  // namespace

std::string request_token(const http::request_header<>& req) {
  constexpr std::string_view kBearer = "Bearer ";
  const std::string_view auth = req[http::field::authorization];
  if (auth.size() > kBearer.size() &&
      boost::beast::iequals(auth.substr(0, kBearer.size()), kBearer)) {
    return std::string(auth.substr(kBearer.size()));
  }
  return query_parameter(req.target(), "token");
}

std::variant<room::Identity, std::string> authenticate(const JwtVerifier& jwt,
                                                       const http::request_header<>& req) {
  const std::string token = request_token(req);
  if (token.empty()) return std::string("a token is required");
  auto verified = jwt.verify(token, JwtVerifier::unix_now());
  if (auto* reason = std::get_if<std::string>(&verified)) return std::move(*reason);
  return room::Identity::from_claims(std::get<boost::json::object>(std::move(verified)));
}

}  // namespace kasagi::net
