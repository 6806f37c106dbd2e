#pragma once
// OpenSSL glue shared by the transport and the certificate code (internal to providers/lxd).

#include <memory>
#include <string>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

namespace berth::lxd::detail {

struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

// Lowercase hex sha256 of the certificate's DER encoding.
[[nodiscard]] std::string fingerprint_of(X509* cert);
[[nodiscard]] std::string pem_of(X509* cert);
// The oldest queued OpenSSL error as text, clearing the queue; `fallback` when there is none.
[[nodiscard]] std::string openssl_error_text(const std::string& fallback);

}  // namespace berth::lxd::detail
