#include "net/jwt.hpp"

#include <array>
#include <optional>
#include <stdexcept>

#include <boost/json/parse.hpp>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

namespace kasagi::net {

namespace {

constexpr std::size_t kEs256Half = 32;  // bytes of r and of s in a JWS ES256 signature

template <class T, void (*Free)(T*)>
struct Freer {
  void operator()(T* p) const { Free(p); }
};
using Bio = std::unique_ptr<BIO, Freer<BIO, BIO_free_all>>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, Freer<EVP_MD_CTX, EVP_MD_CTX_free>>;
using EcdsaSig = std::unique_ptr<ECDSA_SIG, Freer<ECDSA_SIG, ECDSA_SIG_free>>;

int base64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// Parses a JSON object out of a base64url segment. Returns false when it is not one.
bool decode_object(std::string_view segment, boost::json::object& out) {
  std::string text;
  if (!base64url_decode(segment, text)) return false;
  boost::json::parse_options options;
  options.max_depth = 16;  // claims are flat; deep nesting is only a way to burn stack
  boost::system::error_code ec;
  auto value = boost::json::parse(text, ec, {}, options);
  if (ec || !value.is_object()) return false;
  out = std::move(value.get_object());
  return true;
}

// True if `claims[name]` is absent, or a number stored in `out`.
bool numeric_claim(const boost::json::object& claims, std::string_view name,
                   std::optional<double>& out) {
  const auto* v = claims.if_contains(name);
  if (!v) return true;
  if (!v->is_number()) return false;
  out = v->to_number<double>();
  return true;
}

// ES256 signatures are r||s (32 bytes each) in JWS, DER SEQUENCE{r, s} for OpenSSL.
bool es256_to_der(const std::string& raw, std::string& der) {
  if (raw.size() != 2 * kEs256Half) return false;
  const auto* bytes = reinterpret_cast<const unsigned char*>(raw.data());
  EcdsaSig sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(bytes, kEs256Half, nullptr);
  BIGNUM* s = BN_bin2bn(bytes + kEs256Half, kEs256Half, nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return false;
  }
  const int n = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (n <= 0) return false;
  der.resize(static_cast<std::size_t>(n));
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  return i2d_ECDSA_SIG(sig.get(), &out) == n;
}

}  // namespace

void JwtVerifier::KeyDeleter::operator()(void* key) const {
  EVP_PKEY_free(static_cast<EVP_PKEY*>(key));
}

bool base64url_decode(std::string_view in, std::string& out) {
  if (in.size() % 4 == 1) return false;
  out.clear();
  out.reserve(in.size() * 3 / 4);
  std::uint32_t bits = 0;
  int count = 0;
  for (char c : in) {
    const int v = base64url_value(c);
    if (v < 0) return false;
    bits = (bits << 6) | static_cast<std::uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xff));
    }
  }
  return true;
}

JwtVerifier::JwtVerifier(std::string secret, std::string_view public_key_pem)
    : secret_(std::move(secret)) {
  if (public_key_pem.empty()) return;
  Bio bio(BIO_new_mem_buf(public_key_pem.data(), static_cast<int>(public_key_pem.size())));
  EVP_PKEY* key = bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (!key) throw std::invalid_argument("not a PEM public key (BEGIN PUBLIC KEY)");
  key_.reset(key);
  if (EVP_PKEY_is_a(key, "RSA")) {
    if (EVP_PKEY_get_bits(key) < 2048) {
      throw std::invalid_argument("RSA public key shorter than 2048 bits");
    }
    key_alg_ = KeyAlg::rs256;
    return;
  }
  std::array<char, 64> group{};
  std::size_t len = 0;
  if (EVP_PKEY_is_a(key, "EC") &&
      EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group.data(), group.size(),
                                     &len) == 1 &&
      std::string_view(group.data(), len) == "prime256v1") {
    key_alg_ = KeyAlg::es256;
    return;
  }
  throw std::invalid_argument("public key must be RSA (RS256) or EC P-256 (ES256)");
}

JwtVerifier::~JwtVerifier() = default;

bool JwtVerifier::check_signature(std::string_view alg, std::string_view signed_part,
                                  const std::string& signature) const {
  if (alg == "HS256") {
    if (secret_.empty()) return false;
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    std::size_t mac_len = 0;
    if (!EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret_.data(), secret_.size(),
                   reinterpret_cast<const unsigned char*>(signed_part.data()),
                   signed_part.size(), mac.data(), mac.size(), &mac_len)) {
      return false;
    }
    // Constant time: how much of a guess matches must not show in the time we take.
    return signature.size() == mac_len &&
           CRYPTO_memcmp(mac.data(), signature.data(), mac_len) == 0;
  }
  std::string der;
  const std::string* sig = &signature;
  if (alg == "RS256") {
    if (key_alg_ != KeyAlg::rs256) return false;
  } else if (alg == "ES256") {
    if (key_alg_ != KeyAlg::es256 || !es256_to_der(signature, der)) return false;
    sig = &der;
  } else {
    return false;
  }
  MdCtx ctx(EVP_MD_CTX_new());
  auto* key = static_cast<EVP_PKEY*>(key_.get());
  return ctx &&
         EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig->data()),
                          sig->size(),
                          reinterpret_cast<const unsigned char*>(signed_part.data()),
                          signed_part.size()) == 1;
}

std::variant<boost::json::object, std::string> JwtVerifier::verify(std::string_view token,
                                                                   std::int64_t now) const {
  if (token.size() > kMaxTokenBytes) return std::string("token too long");
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == token.npos ? token.npos : token.find('.', dot1 + 1);
  if (dot2 == token.npos || token.find('.', dot2 + 1) != token.npos) {
    return std::string("malformed token (expected header.payload.signature)");
  }
  boost::json::object header;
  if (!decode_object(token.substr(0, dot1), header)) return std::string("malformed header");
  const auto* alg = header.if_contains("alg");
  if (!alg || !alg->is_string()) return std::string("header without alg");
  if (header.contains("crit")) return std::string("unsupported critical header");
  std::string signature;
  if (!base64url_decode(token.substr(dot2 + 1), signature)) {
    return std::string("malformed signature");
  }
  // Signature first: nothing from the payload is read before the token is known genuine.
  if (!check_signature(alg->get_string(), token.substr(0, dot2), signature)) {
    return "invalid signature or algorithm " + std::string(alg->get_string()) + " not accepted";
  }
  boost::json::object claims;
  if (!decode_object(token.substr(dot1 + 1, dot2 - dot1 - 1), claims)) {
    return std::string("malformed payload");
  }
  std::optional<double> exp, nbf;
  if (!numeric_claim(claims, "exp", exp) || !numeric_claim(claims, "nbf", nbf)) {
    return std::string("exp and nbf must be numbers");
  }
  const auto t = static_cast<double>(now);
  if (exp && t >= *exp + kClockLeeway) return std::string("token expired");
  if (nbf && t < *nbf - kClockLeeway) return std::string("token not valid yet");
  return claims;
}

}  // namespace kasagi::net
