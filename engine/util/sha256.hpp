#pragma once
// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) inside the engine, which links no crypto library.
// Plain SHA-256 is for identity (fleet file digest, live-state digests); HMAC-SHA256 is the PRF under
// PBKDF2 and scrypt (engine/util/scrypt.hpp), which hash a plan's sensitive values.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace berth::util {

class Sha256 {
 public:
  Sha256();
  void update(std::string_view bytes);
  [[nodiscard]] std::array<std::uint8_t, 32> finish();

 private:
  void compress(const std::uint8_t* block);
  std::array<std::uint32_t, 8> h_{};
  std::array<std::uint8_t, 64> buffer_{};
  std::size_t buffered_ = 0;
  std::uint64_t length_ = 0;
};

// Lowercase hex of SHA-256 over `bytes`.
[[nodiscard]] std::string sha256_hex(std::string_view bytes);

// HMAC-SHA256 (RFC 2104), keyed once at construction. A copy carries the keyed state, so a caller
// that MACs many messages under one key (PBKDF2) keys once and copies instead of rehashing the key.
class HmacSha256 {
 public:
  explicit HmacSha256(std::string_view key);
  void update(std::string_view bytes);
  [[nodiscard]] std::array<std::uint8_t, 32> finish();

 private:
  Sha256 inner_;
  Sha256 outer_;
};

[[nodiscard]] std::array<std::uint8_t, 32> hmac_sha256(std::string_view key, std::string_view message);

}  // namespace berth::util
