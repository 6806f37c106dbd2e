#include "providers/lxd/certificate.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "providers/lxd/fs_util.hpp"
#include "providers/lxd/openssl_util.hpp"

namespace berth::lxd {

namespace detail {

std::string fingerprint_of(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return {};
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 0x0f]);
  }
  return out;
}

std::string pem_of(X509* cert) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return {};
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string openssl_error_text(const std::string& fallback) {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return fallback;
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

int verify_pinned(X509_STORE_CTX* store, void* arg) {
  auto* pin = static_cast<PinState*>(arg);
  X509* leaf = X509_STORE_CTX_get0_cert(store);
  if (leaf == nullptr) return 0;
  pin->seen_fingerprint = fingerprint_of(leaf);
  pin->seen_pem = pem_of(leaf);
  if (pin->accept_any || pin->seen_fingerprint == pin->expected) return 1;
  X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
  return 0;
}

}  // namespace detail

namespace {

using detail::X509Ptr;

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

Error crypto_error(std::string_view what) {
  return make_error(ErrorKind::io, std::string{what} + ": " + detail::openssl_error_text("unknown OpenSSL error"));
}

bool add_extension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace

Result<std::string> fingerprint_of_pem(std::string_view pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  if (!bio) return crypto_error("cannot read certificate");
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    ERR_clear_error();
    return make_error(ErrorKind::invalid_argument, "not a PEM certificate");
  }
  return detail::fingerprint_of(cert.get());
}

Result<void> check_key_pair(std::string_view cert_pem, std::string_view key_pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> cert_bio(
      BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())), BIO_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())),
                                                    BIO_free);
  if (!cert_bio || !key_bio) return crypto_error("cannot read the key pair");
  X509Ptr cert(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    ERR_clear_error();
    return make_error(ErrorKind::invalid_argument, "the certificate is not a PEM certificate");
  }
  if (key_pem.find("ENCRYPTED") != std::string_view::npos) {
    return make_error(ErrorKind::invalid_argument, "the private key is protected by a passphrase");
  }
  // A passphrase callback that gives none: an encrypted key fails instead of prompting.
  const auto no_passphrase = [](char*, int, int, void*) { return 0; };
  PkeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_passphrase, nullptr));
  if (!key) {
    ERR_clear_error();
    return make_error(ErrorKind::invalid_argument, "the private key is not a PEM private key");
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return make_error(ErrorKind::invalid_argument, "the private key is not the certificate's");
  }
  return {};
}

Result<std::string> fingerprint_of_pem_file(const std::filesystem::path& path) {
  auto text = detail::read_file(path);
  if (!text) return text.error();
  auto fp = fingerprint_of_pem(*text);
  if (!fp) return make_error(fp.error().kind, path.string() + ": " + fp.error().message);
  return fp;
}

namespace {

enum class CertificateUse { client, server };

// Same shape as LXD's own certificates (shared/cert.go): ECDSA P-384, self-signed.
Result<PemPair> generate_certificate(const SelfSignedOptions& options, CertificateUse use) {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
  if (!key) return crypto_error("cannot generate a P-384 key");

  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) return crypto_error("cannot create a certificate");

  // A random 127-bit serial: unique without keeping any state.
  std::unique_ptr<BIGNUM, decltype(&BN_free)> serial(BN_new(), BN_free);
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return crypto_error("cannot create a serial number");
  }
  // Backdated a little so that a server with a slightly slow clock accepts it at once.
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -300) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), options.valid_days, 0, nullptr) == nullptr) {
    return crypto_error("cannot set the validity period");
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  const auto* org = reinterpret_cast<const unsigned char*>("berth");
  const auto* cn = reinterpret_cast<const unsigned char*>(options.common_name.c_str());
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, org, -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, cn, -1, -1, 0) != 1 ||
      X509_set_issuer_name(cert.get(), name) != 1 || X509_set_pubkey(cert.get(), key.get()) != 1) {
    return crypto_error("cannot set the certificate's names");
  }
  if (!add_extension(cert.get(), NID_basic_constraints, "critical,CA:FALSE") ||
      !add_extension(cert.get(), NID_key_usage, "critical,digitalSignature") ||
      !add_extension(cert.get(), NID_ext_key_usage, use == CertificateUse::client ? "clientAuth" : "serverAuth") ||
      !add_extension(cert.get(), NID_subject_key_identifier, "hash")) {
    return crypto_error("cannot add certificate extensions");
  }
  if (use == CertificateUse::server) {
    std::string names;
    for (const auto& dns : options.dns_names) names += (names.empty() ? "DNS:" : ",DNS:") + dns;
    for (const auto& ip : options.ip_addresses) names += (names.empty() ? "IP:" : ",IP:") + ip;
    if (!names.empty() && !add_extension(cert.get(), NID_subject_alt_name, names.c_str())) {
      return crypto_error("cannot add the subject alternative names " + names);
    }
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha384()) == 0) return crypto_error("cannot sign the certificate");

  PemPair out;
  out.certificate = detail::pem_of(cert.get());
  std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!key_bio || PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return crypto_error("cannot encode the private key");
  }
  out.private_key = bio_text(key_bio.get());
  if (out.certificate.empty()) return crypto_error("cannot encode the certificate");
  return out;
}

}  // namespace

Result<PemPair> generate_client_certificate(const SelfSignedOptions& options) {
  return generate_certificate(options, CertificateUse::client);
}

Result<PemPair> generate_server_certificate(const SelfSignedOptions& options) {
  return generate_certificate(options, CertificateUse::server);
}

}  // namespace berth::lxd
