#pragma once
// SHA-256 (FIPS 180-4) for content digests inside the engine, which links no crypto library.
// Used for identity (fleet file digest, live-state digests), not for security decisions.

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

}  // namespace berth::util
