#pragma once
// Certificates and fingerprints as LXD uses them: the fingerprint is the lowercase hex sha256 of
// the certificate's DER, for server and client certificates alike (lxd-protocol.md §2.1).

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "providers/lxd/result.hpp"

namespace berth::lxd {

// How a fingerprint may be written, and its normal form (64 lowercase hex digits), is decided by
// config::normalize_fingerprint (engine/config/url.hpp).

// Fingerprint of the first certificate in a PEM text / file.
[[nodiscard]] Result<std::string> fingerprint_of_pem(std::string_view pem);
[[nodiscard]] Result<std::string> fingerprint_of_pem_file(const std::filesystem::path& path);

// Whether `key_pem` is a private key berth can present with the first certificate of `cert_pem`:
// readable without a passphrase and the certificate's own. The error never quotes the key.
[[nodiscard]] Result<void> check_key_pair(std::string_view cert_pem, std::string_view key_pem);

struct SelfSignedOptions {
  std::string common_name;  // e.g. "berth@myhost"
  int valid_days = 3650;
  // Server certificates only: DNS names and IP addresses (IPv4 or IPv6 literals) for the
  // subjectAltName. lxc verifies against the first DNS name, its websockets against the URL's host.
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
};

struct PemPair {
  std::string certificate;  // "-----BEGIN CERTIFICATE-----..."
  std::string private_key;  // PKCS#8 "-----BEGIN PRIVATE KEY-----..."; handle as a secret
};

// An ECDSA P-384 self-signed client certificate (EKU clientAuth, no SANs, SHA-384 signature),
// the kind `lxc` generates for itself.
[[nodiscard]] Result<PemPair> generate_client_certificate(const SelfSignedOptions& options);

// An ECDSA P-384 self-signed server certificate (EKU serverAuth, the SANs the options name, SHA-384
// signature), the kind LXD generates for itself and berthd serves.
[[nodiscard]] Result<PemPair> generate_server_certificate(const SelfSignedOptions& options);

}  // namespace berth::lxd
