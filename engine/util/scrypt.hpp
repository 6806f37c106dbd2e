#pragma once
// scrypt (RFC 7914) and PBKDF2-HMAC-SHA256 (RFC 8018), on engine/util/sha256, for the engine, which
// links no crypto library.
//
// What it is for: a saved plan never holds a sensitive value (one read from ${env:...}, or a key
// marked sensitive), only a slow salted hash of it, secret_digest(). Applying the plan re-reads the
// environment and refuses if verify_secret_digest() says the value is no longer the one planned.
// Slow and salted so that a leaked plan file does not give the value away to a dictionary attack.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace berth::util {

// Cost parameters of scrypt. The defaults (N = 2^14, r = 8: 16 MiB and tens of milliseconds) are the
// ones secret_digest() writes into new plans.
struct ScryptParams {
  std::uint64_t n = 1 << 14;  // CPU/memory cost: a power of two > 1
  std::uint32_t r = 8;        // block size
  std::uint32_t p = 1;        // parallelism (run one after the other here)
  std::size_t length = 32;    // bytes derived
};

// PBKDF2-HMAC-SHA256 (RFC 8018 §5.2): `length` bytes from `iterations` rounds (0 counts as 1).
[[nodiscard]] std::vector<std::uint8_t> pbkdf2_hmac_sha256(std::string_view password, std::string_view salt,
                                                           std::uint32_t iterations, std::size_t length);

// Derives `params.length` bytes from password and salt. Returns nullopt for invalid parameters:
// n not a power of two > 1 or not below 2^(16 r) (RFC 7914 §2), r or p zero, r*p >= 2^30, memory
// (128 r (N + p + 2) bytes) over 256 MiB, work (N r p) over 2^22, length 0 or > 1024. These
// limits are the only ones, and
// verify_secret_digest() relies on them to refuse costs a hostile plan file asks for.
[[nodiscard]] std::optional<std::vector<std::uint8_t>> scrypt(std::string_view password, std::string_view salt,
                                                              const ScryptParams& params);

// "scrypt$N$r$p$<salt hex>$<hash hex>" of `secret` under a fresh random 16-byte salt, so two digests
// of one secret differ. Throws std::invalid_argument if `params` are invalid (a bug in the caller).
[[nodiscard]] std::string secret_digest(std::string_view secret, const ScryptParams& params = {});

// Whether `secret` is the one `digest` (from secret_digest) was made of, compared in constant time.
// The digest comes from a plan file, which may be hostile: N, r, p and the length it names are held
// to what scrypt() accepts, so it cannot make berth allocate more than 256 MiB. A malformed digest,
// or memory that cannot be had, gives false: the caller refuses, as for a changed value.
[[nodiscard]] bool verify_secret_digest(std::string_view secret, std::string_view digest) noexcept;

}  // namespace berth::util
