// The server's TLS context: certificate chain and private key from PEM files, TLS 1.2 and
// later only.
#pragma once
#include <memory>
#include <string>
#include <boost/asio/ssl/context.hpp>

namespace kasagi::net {

// Throws std::invalid_argument naming the file when the certificate or the key cannot be
// loaded, or when they do not belong together.
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const std::string& cert_file,
                                                            const std::string& key_file);

}  // namespace kasagi::net
