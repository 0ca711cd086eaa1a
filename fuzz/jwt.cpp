// libFuzzer target: the JWT verifier. The first input byte picks the mode:
//   even: the rest is a token, verified as it is (parsing, base64url, alg checks, all three
//         signature algorithms);
//   odd:  the rest is "header JSON\npayload JSON", which this target signs with the HS256
//         secret, so the fuzzer also reaches what follows a valid signature (claims, exp,
//         nbf). A correctly signed token with `"alg":"HS256"` and no time claims must verify.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "net/jwt.hpp"

namespace {

constexpr std::string_view kSecret = "fuzz-secret";

std::string base64url(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t bits = 0;
  int count = 0;
  for (unsigned char c : in) {
    bits = (bits << 8) | c;
    count += 8;
    while (count >= 6) {
      count -= 6;
      out.push_back(kAlphabet[(bits >> count) & 63]);
    }
  }
  if (count > 0) out.push_back(kAlphabet[(bits << (6 - count)) & 63]);
  return out;
}

std::string hs256(std::string_view signed_part) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  std::size_t len = 0;
  EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, kSecret.data(), kSecret.size(),
            reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(), mac,
            sizeof mac, &len);
  return std::string(reinterpret_cast<const char*>(mac), len);
}

// A verifier with the HS256 secret and a fresh P-256 public key (ES256).
const kasagi::net::JwtVerifier& verifier() {
  static const auto* v = [] {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, key);
    char* pem = nullptr;
    const long n = BIO_get_mem_data(bio, &pem);
    auto* made = new kasagi::net::JwtVerifier(std::string(kSecret),
                                              std::string_view(pem, static_cast<std::size_t>(n)));
    BIO_free(bio);
    EVP_PKEY_free(key);
    return made;
  }();
  return *v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::int64_t now = 1'700'000'000;
  if (data[0] % 2 == 0) {
    (void)verifier().verify(rest, now);
    return 0;
  }
  const auto newline = rest.find('\n');
  if (newline == rest.npos) return 0;
  const std::string header(rest.substr(0, newline));
  const std::string payload(rest.substr(newline + 1));
  const std::string signed_part = base64url(header) + "." + base64url(payload);
  const std::string token = signed_part + "." + base64url(hs256(signed_part));
  const auto result = verifier().verify(token, now);
  if (header == R"({"alg":"HS256"})" && payload == "{}" &&
      !std::holds_alternative<boost::json::object>(result)) {
    std::abort();
  }
  return 0;
}
