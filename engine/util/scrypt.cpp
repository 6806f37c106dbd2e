#include "engine/util/scrypt.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <new>
#include <stdexcept>
#include <utility>

#include "engine/util/random.hpp"
#include "engine/util/sha256.hpp"

namespace berth::util {
namespace {

constexpr std::uint64_t max_memory = std::uint64_t{256} << 20;
constexpr std::size_t max_length = 1024;
constexpr std::uint64_t max_work = std::uint64_t{1} << 22;
constexpr std::size_t salt_bytes = 16;

std::string_view as_chars(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// The one home of the parameter rules: scrypt() refuses what fails here, and verify_secret_digest()
// gets its caps from scrypt() refusing.
bool valid(const ScryptParams& params) {
  const std::uint64_t n = params.n;
  const std::uint64_t r = params.r;
  const std::uint64_t p = params.p;
  if (n < 2 || (n & (n - 1)) != 0) return false;
  if (r == 0 || p == 0 || r * p >= (std::uint64_t{1} << 30)) return false;
  if (16 * r < 64 && n >= (std::uint64_t{1} << (16 * r))) return false;  // N < 2^(128 r / 8)
  if (params.length == 0 || params.length > max_length) return false;
  // V (N blocks), B (p blocks) and the two working blocks, each 128 r bytes; N first, as N * 128 r
  // could overflow before it is compared.
  const std::uint64_t block = 128 * r;
  if (n > max_memory / block) return false;
  if (block * n + block * p + 2 * block > max_memory) return false;
  // Time, too: a hostile digest with a huge p would run for hours in bounded memory. N r p at most
  // 2^22 (32 times the default cost, about 2 s); n r <= 2^21 here, so this cannot overflow.
  return n * r * p <= max_work;
}

std::uint32_t load_le32(const std::uint8_t* b) {
  return std::uint32_t{b[0]} | (std::uint32_t{b[1]} << 8) | (std::uint32_t{b[2]} << 16) | (std::uint32_t{b[3]} << 24);
}

void store_le32(std::uint8_t* b, std::uint32_t w) {
  b[0] = static_cast<std::uint8_t>(w);
  b[1] = static_cast<std::uint8_t>(w >> 8);
  b[2] = static_cast<std::uint8_t>(w >> 16);
  b[3] = static_cast<std::uint8_t>(w >> 24);
}

constexpr std::uint32_t rotl(std::uint32_t x, int n) {
  return (x << n) | (x >> (32 - n));
}

// Salsa20/8 core (RFC 7914 §3) on one 64-byte block, as 16 little-endian words, in place.
void salsa20_8(std::uint32_t* b) {
  std::array<std::uint32_t, 16> x{};
  std::copy(b, b + 16, x.begin());
  for (int i = 0; i < 8; i += 2) {
    x[4] ^= rotl(x[0] + x[12], 7);
    x[8] ^= rotl(x[4] + x[0], 9);
    x[12] ^= rotl(x[8] + x[4], 13);
    x[0] ^= rotl(x[12] + x[8], 18);
    x[9] ^= rotl(x[5] + x[1], 7);
    x[13] ^= rotl(x[9] + x[5], 9);
    x[1] ^= rotl(x[13] + x[9], 13);
    x[5] ^= rotl(x[1] + x[13], 18);
    x[14] ^= rotl(x[10] + x[6], 7);
    x[2] ^= rotl(x[14] + x[10], 9);
    x[6] ^= rotl(x[2] + x[14], 13);
    x[10] ^= rotl(x[6] + x[2], 18);
    x[3] ^= rotl(x[15] + x[11], 7);
    x[7] ^= rotl(x[3] + x[15], 9);
    x[11] ^= rotl(x[7] + x[3], 13);
    x[15] ^= rotl(x[11] + x[7], 18);
    x[1] ^= rotl(x[0] + x[3], 7);
    x[2] ^= rotl(x[1] + x[0], 9);
    x[3] ^= rotl(x[2] + x[1], 13);
    x[0] ^= rotl(x[3] + x[2], 18);
    x[6] ^= rotl(x[5] + x[4], 7);
    x[7] ^= rotl(x[6] + x[5], 9);
    x[4] ^= rotl(x[7] + x[6], 13);
    x[5] ^= rotl(x[4] + x[7], 18);
    x[11] ^= rotl(x[10] + x[9], 7);
    x[8] ^= rotl(x[11] + x[10], 9);
    x[9] ^= rotl(x[8] + x[11], 13);
    x[10] ^= rotl(x[9] + x[8], 18);
    x[12] ^= rotl(x[15] + x[14], 7);
    x[13] ^= rotl(x[12] + x[15], 9);
    x[14] ^= rotl(x[13] + x[12], 13);
    x[15] ^= rotl(x[14] + x[13], 18);
  }
  for (std::size_t i = 0; i < 16; ++i) b[i] += x[i];
}

// scryptBlockMix (RFC 7914 §4): `in` is 2r 16-word blocks; `out` gets the even-numbered results
// first, then the odd.
void block_mix(const std::uint32_t* in, std::uint32_t* out, std::size_t r) {
  std::array<std::uint32_t, 16> x{};
  std::copy(in + (2 * r - 1) * 16, in + 2 * r * 16, x.begin());
  for (std::size_t i = 0; i < 2 * r; ++i) {
    for (std::size_t k = 0; k < 16; ++k) x[k] ^= in[i * 16 + k];
    salsa20_8(x.data());
    std::copy(x.begin(), x.end(), out + ((i / 2) + (i % 2) * r) * 16);
  }
}

// scryptROMix (RFC 7914 §5) on one 128r-byte block of B, in place. `v` holds N blocks and `xy` two.
void ro_mix(std::uint8_t* block, std::size_t r, std::uint64_t n, std::uint32_t* v, std::uint32_t* xy) {
  const std::size_t words = 32 * r;
  std::uint32_t* x = xy;
  std::uint32_t* y = xy + words;
  for (std::size_t k = 0; k < words; ++k) x[k] = load_le32(block + 4 * k);
  for (std::uint64_t i = 0; i < n; ++i) {
    std::copy(x, x + words, v + i * words);
    block_mix(x, y, r);
    std::swap(x, y);
  }
  for (std::uint64_t i = 0; i < n; ++i) {
    // Integerify: the first 8 bytes of the last 64-byte block, little-endian, mod N.
    const std::size_t last = (2 * r - 1) * 16;
    const std::uint64_t j = (std::uint64_t{x[last]} | (std::uint64_t{x[last + 1]} << 32)) & (n - 1);
    const std::uint32_t* vj = v + j * words;
    for (std::size_t k = 0; k < words; ++k) x[k] ^= vj[k];
    block_mix(x, y, r);
    std::swap(x, y);
  }
  for (std::size_t k = 0; k < words; ++k) store_le32(block + 4 * k, x[k]);
}

std::string to_hex(const std::vector<std::uint8_t>& bytes) {
  static constexpr std::string_view digits = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes.size());
  for (const std::uint8_t b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 0xf];
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::vector<std::uint8_t>> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::vector<std::uint8_t> out(hex.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<std::uint8_t>((hi << 4) | lo);
  }
  return out;
}

// A decimal number that is the whole field: digits only, no sign, no overflow of T.
template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T value{};
  if (text.empty() || text.front() < '0' || text.front() > '9') return std::nullopt;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Every byte is looked at whatever the earlier ones were, so the time taken does not tell an attacker
// how long a prefix of the hash they guessed.
bool equal_constant_time(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
  if (a.size() != b.size()) return false;
  volatile std::uint8_t diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff = static_cast<std::uint8_t>(diff | (a[i] ^ b[i]));
  return diff == 0;
}

}  // namespace

std::vector<std::uint8_t> pbkdf2_hmac_sha256(std::string_view password, std::string_view salt, std::uint32_t iterations,
                                             std::size_t length) {
  const HmacSha256 keyed(password);
  std::vector<std::uint8_t> out;
  out.reserve(length);
  for (std::uint32_t index = 1; out.size() < length; ++index) {
    HmacSha256 mac = keyed;
    mac.update(salt);
    std::array<std::uint8_t, 4> counter{};
    for (std::size_t i = 0; i < 4; ++i) counter[i] = static_cast<std::uint8_t>(index >> (24 - 8 * i));
    mac.update(as_chars(counter.data(), counter.size()));
    auto u = mac.finish();
    auto t = u;
    for (std::uint32_t c = 1; c < iterations; ++c) {
      HmacSha256 round = keyed;
      round.update(as_chars(u.data(), u.size()));
      u = round.finish();
      for (std::size_t k = 0; k < t.size(); ++k) t[k] ^= u[k];
    }
    const std::size_t take = std::min(t.size(), length - out.size());
    out.insert(out.end(), t.begin(), t.begin() + static_cast<std::ptrdiff_t>(take));
  }
  return out;
}

std::optional<std::vector<std::uint8_t>> scrypt(std::string_view password, std::string_view salt,
                                                const ScryptParams& params) {
  if (!valid(params)) return std::nullopt;
  const std::size_t r = params.r;
  const std::size_t block = 128 * r;
  // B = PBKDF2(P, S, 1, p * 128 r); each block of B through ROMix; then PBKDF2(P, B, 1, length).
  std::vector<std::uint8_t> b = pbkdf2_hmac_sha256(password, salt, 1, params.p * block);
  std::vector<std::uint32_t> v(static_cast<std::size_t>(params.n) * 32 * r);
  std::vector<std::uint32_t> xy(64 * r);
  for (std::size_t i = 0; i < params.p; ++i) ro_mix(b.data() + i * block, r, params.n, v.data(), xy.data());
  return pbkdf2_hmac_sha256(password, as_chars(b.data(), b.size()), 1, params.length);
}

std::string secret_digest(std::string_view secret, const ScryptParams& params) {
  // Salts need to be unique, not secret: random_hex's random_device is enough.
  const std::string salt_hex = random_hex(2 * static_cast<int>(salt_bytes));
  const std::vector<std::uint8_t> salt = *from_hex(salt_hex);
  const auto hash = scrypt(secret, as_chars(salt.data(), salt.size()), params);
  if (!hash) throw std::invalid_argument("secret_digest: invalid scrypt parameters");
  return "scrypt$" + std::to_string(params.n) + "$" + std::to_string(params.r) + "$" + std::to_string(params.p) + "$" +
         salt_hex + "$" + to_hex(*hash);
}

bool verify_secret_digest(std::string_view secret, std::string_view digest) noexcept {
  try {
    // Exactly six '$'-separated fields; none may be empty.
    std::array<std::string_view, 6> fields{};
    std::size_t count = 0;
    for (std::string_view rest = digest;;) {
      const std::size_t cut = rest.find('$');
      if (count == fields.size()) return false;
      fields[count++] = rest.substr(0, cut);
      if (cut == std::string_view::npos) break;
      rest.remove_prefix(cut + 1);
    }
    if (count != fields.size() || fields[0] != "scrypt") return false;
    const auto n = parse_number<std::uint64_t>(fields[1]);
    const auto r = parse_number<std::uint32_t>(fields[2]);
    const auto p = parse_number<std::uint32_t>(fields[3]);
    if (!n || !r || !p) return false;
    // The hash is at most 1024 bytes; checked before decoding so an absurd field costs nothing.
    if (fields[4].empty() || fields[5].empty() || fields[5].size() > 2 * max_length) return false;
    const auto salt = from_hex(fields[4]);
    const auto expected = from_hex(fields[5]);
    if (!salt || !expected) return false;
    // scrypt() refuses N, r, p or a length over its limits before it allocates anything.
    const ScryptParams params{.n = *n, .r = *r, .p = *p, .length = expected->size()};
    const auto actual = scrypt(secret, as_chars(salt->data(), salt->size()), params);
    return actual && equal_constant_time(*actual, *expected);
  } catch (const std::bad_alloc&) {
    return false;
  }
}

}  // namespace berth::util
