// Authentication of a WebSocket upgrade request: finds its token and turns it into the
// connection's Identity (docs/security.md).
#pragma once
#include <string>
#include <variant>
#include <boost/beast/http/message.hpp>
#include "net/jwt.hpp"
#include "room/identity.hpp"

namespace kasagi::net {

// The request's token: `Authorization: Bearer <token>`, else the `token` query parameter
// (browsers cannot set headers on a WebSocket). Returns "" when there is none.
std::string request_token(const boost::beast::http::request_header<>& req);

// Verifies the request's token with `jwt` and reads the identity from its claims. Returns
// it, or why the request must be refused (with HTTP 401).
std::variant<room::Identity, std::string> authenticate(
    const JwtVerifier& jwt, const boost::beast::http::request_header<>& req);

}  // namespace kasagi::net
