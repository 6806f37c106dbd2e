#pragma once
// A certificate file named in the fleet file (`images: {NAME: {certificate: FILE}}`), checked where
// it is read, without OpenSSL (the engine links none): PEM armour, base64, and a DER SEQUENCE whose
// length matches what was decoded. The provider parses it for real when it pins a server with it.

#include <optional>
#include <string>
#include <string_view>

namespace berth::config {

struct PemCheck {
  std::optional<std::string> pem;  // the first CERTIFICATE block, armour included, '\n' line ends
  std::string problem;             // set exactly when pem is not
};

[[nodiscard]] PemCheck check_certificate_pem(std::string_view text);

}  // namespace berth::config
