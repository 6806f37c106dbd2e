#pragma once
// Certificate add tokens (`lxc config trust add`, LXD's certificate_token extension): standard
// base64 of JSON {"client_name","fingerprint","addresses","secret","expires_at"} (lxd-protocol.md §2.4).
// The token's fingerprint pins the server: a client must refuse a server whose certificate differs.
//
// A token is a secret: no error message here quotes it or any part of it.

#include <string>
#include <string_view>
#include <vector>

#include "providers/lxd/result.hpp"

namespace berth::lxd {

struct CertificateToken {
  std::string client_name;
  std::string fingerprint;             // normalized (lowercase hex)
  std::vector<std::string> addresses;  // "host:port", IPv6 bracketed, as the server reported them
  std::string secret;
  std::string expires_at;  // RFC 3339; "0001-01-01T00:00:00Z" or empty when it never expires
};

// Requires client_name, at least one address, secret and fingerprint, as LXD's client does.
[[nodiscard]] Result<CertificateToken> decode_token(std::string_view token);

// Standard or URL-safe alphabet, padding optional, surrounding whitespace ignored.
[[nodiscard]] Result<std::string> base64_decode(std::string_view text);
[[nodiscard]] std::string base64_encode(std::string_view bytes);

}  // namespace berth::lxd
