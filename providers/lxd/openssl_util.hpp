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

// What the certificate check saw; lives as long as the SSL_CTX that points at it.
struct PinState {
  std::string expected;  // normalized; empty with accept_any
  bool accept_any = false;
  std::string seen_fingerprint;
  std::string seen_pem;
};

// For SSL_CTX_set_cert_verify_callback with a PinState: replaces OpenSSL's chain verification
// entirely, the only question being whether the leaf is the pinned certificate. Runs inside the
// handshake, so a wrong server never sees our client certificate's proof of possession nor any
// request.
int verify_pinned(X509_STORE_CTX* store, void* arg);

}  // namespace berth::lxd::detail
