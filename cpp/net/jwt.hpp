// Verification of JSON Web Tokens (RFC 7519) in JWS compact form (RFC 7515): HS256 with a
// shared secret, RS256 with an RSA public key, ES256 with a P-256 public key. Sans-I/O (a
// string in, claims out), so the fuzzer drives it directly.
//
// The algorithm a token names must be one this verifier was given a key for: `none` is
// never accepted, and HS256 is never tried with the public key (the "alg confusion" attack,
// where a public key is used as an HMAC secret). `exp` and `nbf` are checked when present,
// with kClockLeeway of tolerance; a `crit` header is refused, as RFC 7515 requires of
// extensions we do not understand.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <boost/json/object.hpp>

namespace kasagi::net {

class JwtVerifier {
 public:
  // Tolerated difference between the issuer's clock and ours.
  static constexpr std::int64_t kClockLeeway = 30;  // seconds
  // Longer tokens are refused unread (a bound on work and memory per handshake).
  static constexpr std::size_t kMaxTokenBytes = 8 * 1024;

  // `secret`: the HS256 key (empty: HS256 refused). `public_key_pem`: a PEM public key
  // (SubjectPublicKeyInfo), RSA of at least 2048 bits or EC P-256 (empty: RS256 and ES256
  // refused). Throws std::invalid_argument when the PEM is unusable.
  JwtVerifier(std::string secret, std::string_view public_key_pem);
  ~JwtVerifier();
  JwtVerifier(const JwtVerifier&) = delete;
  JwtVerifier& operator=(const JwtVerifier&) = delete;

  // Returns the claims of a valid token, or a short reason it is not ("token expired").
  // `now`: seconds since the Unix epoch. Thread-safe.
  std::variant<boost::json::object, std::string> verify(std::string_view token,
                                                        std::int64_t now) const;

  static std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

 private:
  enum class KeyAlg { none, rs256, es256 };
  bool check_signature(std::string_view alg, std::string_view signed_part,
                       const std::string& signature) const;

  std::string secret_;
  struct KeyDeleter {
    void operator()(void* key) const;
  };
  std::unique_ptr<void, KeyDeleter> key_;  // EVP_PKEY: keeps OpenSSL out of this header
  KeyAlg key_alg_ = KeyAlg::none;
};

// Decodes base64url without padding (RFC 4648 section 5, as JWS uses it). Returns false on
// any other character, on padding, or on an impossible length.
bool base64url_decode(std::string_view in, std::string& out);

}  // namespace kasagi::net
