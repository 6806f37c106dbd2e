#include "engine/util/scrypt.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/util/sha256.hpp"

namespace berth::util {
namespace {

// Expected values below are from the RFCs, and were checked against OpenSSL 3.0 (`openssl kdf ...
// SCRYPT`, `openssl kdf ... PBKDF2`, `openssl mac ... HMAC`) when the tests were written.

template <typename Bytes>
std::string hex(const Bytes& bytes) {
  static constexpr std::string_view digits = "0123456789abcdef";
  std::string out;
  for (const std::uint8_t b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 0xf];
  }
  return out;
}

std::string scrypt_hex(std::string_view password, std::string_view salt, ScryptParams params) {
  const auto out = scrypt(password, salt, params);
  return out ? hex(*out) : "nullopt";
}

// RFC 4231 §4.2 and §4.3.
TEST(HmacSha256, Rfc4231Cases1And2) {
  EXPECT_EQ(hex(hmac_sha256(std::string(20, '\x0b'), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// RFC 4231 §4.7: a key longer than the block is hashed first.
TEST(HmacSha256, KeyLongerThanBlock) {
  EXPECT_EQ(hex(hmac_sha256(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(HmacSha256, IncrementalAndCopiedStateEqualOneShot) {
  HmacSha256 keyed("Jefe");
  HmacSha256 copy = keyed;
  keyed.update("what do ya want ");
  keyed.update("for nothing?");
  copy.update("what do ya want for nothing?");
  const auto expected = hmac_sha256("Jefe", "what do ya want for nothing?");
  EXPECT_EQ(keyed.finish(), expected);
  EXPECT_EQ(copy.finish(), expected);
}

// RFC 7914 §11.
TEST(Pbkdf2HmacSha256, Rfc7914Vectors) {
  EXPECT_EQ(hex(pbkdf2_hmac_sha256("passwd", "salt", 1, 64)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
            "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783");
  EXPECT_EQ(hex(pbkdf2_hmac_sha256("Password", "NaCl", 80000, 64)),
            "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
            "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d");
}

TEST(Pbkdf2HmacSha256, LengthNotAMultipleOfTheDigestIsAPrefix) {
  const auto full = pbkdf2_hmac_sha256("passwd", "salt", 1, 64);
  EXPECT_EQ(pbkdf2_hmac_sha256("passwd", "salt", 1, 37), std::vector<std::uint8_t>(full.begin(), full.begin() + 37));
}

// RFC 7914 §12, the first three vectors (the fourth needs 1 GiB, over the 256 MiB cap).
TEST(Scrypt, Rfc7914Vectors) {
  EXPECT_EQ(scrypt_hex("", "", {.n = 16, .r = 1, .p = 1, .length = 64}),
            "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
            "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906");
  EXPECT_EQ(scrypt_hex("password", "NaCl", {.n = 1024, .r = 8, .p = 16, .length = 64}),
            "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
            "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640");
  EXPECT_EQ(scrypt_hex("pleaseletmein", "SodiumChloride", {.n = 16384, .r = 8, .p = 1, .length = 64}),
            "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"
            "d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887");
}

TEST(Scrypt, InvalidParametersGiveNullopt) {
  const auto invalid = [](ScryptParams params) { return !scrypt("pw", "salt", params).has_value(); };
  EXPECT_TRUE(invalid({.n = 0, .r = 1, .p = 1, .length = 32}));
  EXPECT_TRUE(invalid({.n = 1, .r = 1, .p = 1, .length = 32}));
  EXPECT_TRUE(invalid({.n = 24, .r = 1, .p = 1, .length = 32}));       // not a power of two
  EXPECT_TRUE(invalid({.n = 1 << 16, .r = 1, .p = 1, .length = 32}));  // N >= 2^(16 r)
  EXPECT_TRUE(invalid({.n = 16, .r = 0, .p = 1, .length = 32}));
  EXPECT_TRUE(invalid({.n = 16, .r = 1, .p = 0, .length = 32}));
  EXPECT_TRUE(invalid({.n = 16, .r = 1 << 15, .p = 1 << 15, .length = 32}));  // r p = 2^30
  EXPECT_TRUE(invalid({.n = 1 << 18, .r = 8, .p = 1, .length = 32}));         // 256 MiB of V, plus B
  EXPECT_TRUE(invalid({.n = 16, .r = 8, .p = 1 << 18, .length = 32}));        // 256 MiB of B
  EXPECT_TRUE(invalid({.n = std::uint64_t{1} << 63, .r = 8, .p = 1, .length = 32}));
  EXPECT_TRUE(invalid({.n = 16, .r = 1, .p = 1, .length = 0}));
  EXPECT_TRUE(invalid({.n = 16, .r = 1, .p = 1, .length = 1025}));
  EXPECT_FALSE(invalid({.n = 16, .r = 1, .p = 1, .length = 1024}));
  EXPECT_FALSE(invalid({.n = 1 << 15, .r = 1, .p = 1, .length = 1}));
}

TEST(ScryptSecretDigest, RoundTrip) {
  const std::string digest = secret_digest("hunter2");
  EXPECT_TRUE(digest.starts_with("scrypt$16384$8$1$")) << digest;
  EXPECT_EQ(digest.size(), std::string("scrypt$16384$8$1$").size() + 32 + 1 + 64) << digest;
  EXPECT_TRUE(verify_secret_digest("hunter2", digest));
  EXPECT_FALSE(verify_secret_digest("hunter3", digest));
  EXPECT_FALSE(verify_secret_digest("", digest));
  EXPECT_FALSE(verify_secret_digest("hunter2 ", digest));
}

TEST(ScryptSecretDigest, SameSecretGetsAFreshSaltEachTime) {
  const ScryptParams cheap{.n = 16, .r = 1, .p = 1, .length = 16};
  const std::string a = secret_digest("hunter2", cheap);
  const std::string b = secret_digest("hunter2", cheap);
  EXPECT_NE(a, b);
  EXPECT_TRUE(verify_secret_digest("hunter2", a));
  EXPECT_TRUE(verify_secret_digest("hunter2", b));
}

TEST(ScryptSecretDigest, CarriesItsOwnParameters) {
  const std::string digest = secret_digest("", {.n = 1024, .r = 2, .p = 3, .length = 20});
  EXPECT_TRUE(digest.starts_with("scrypt$1024$2$3$")) << digest;
  EXPECT_TRUE(verify_secret_digest("", digest));
  EXPECT_FALSE(verify_secret_digest("x", digest));
}

TEST(ScryptSecretDigest, InvalidParametersAreABug) {
  EXPECT_THROW((void)secret_digest("x", {.n = 3}), std::invalid_argument);
}

// A digest in a plan file may have been written by anyone: each of these must be refused quickly,
// before scrypt allocates or runs.
TEST(ScryptSecretDigest, MalformedAndHostileDigestsAreFalseAndFast) {
  const std::string salt(32, 'a');
  const std::string hash(64, 'b');
  const std::vector<std::string> bad = {
      "", "scrypt", "scrypt$", "scrypt$$$$$",
      "scrypt$16$1$1$" + salt,                                     // missing hash
      "scrypt$16$1$" + salt + "$" + hash,                          // missing p
      "scrypt$16$1$1$" + salt + "$" + hash + "$",                  // extra field
      "scrypt$16$1$1$" + salt + "$" + hash + "$extra",             // extra field
      "bcrypt$16$1$1$" + salt + "$" + hash,                        // other scheme
      "SCRYPT$16$1$1$" + salt + "$" + hash,                        //
      "scrypt$16$1$1$$" + hash,                                    // empty salt
      "scrypt$16$1$1$" + salt + "$",                               // empty hash
      "scrypt$16$1$1$" + salt + "$" + std::string(63, 'b'),        // odd hex
      "scrypt$16$1$1$" + salt + "$" + std::string(63, 'b') + "g",  // not hex
      "scrypt$16$1$1$zz" + salt + "$" + hash,                      // salt not hex
      "scrypt$16$1$1$" + salt + "$" + std::string(2050, 'b'),      // hash over 1024 bytes
      "scrypt$-16$1$1$" + salt + "$" + hash, "scrypt$+16$1$1$" + salt + "$" + hash,
      "scrypt$ 16$1$1$" + salt + "$" + hash, "scrypt$16 $1$1$" + salt + "$" + hash,
      "scrypt$0x10$1$1$" + salt + "$" + hash, "scrypt$16.0$1$1$" + salt + "$" + hash,
      "scrypt$15$1$1$" + salt + "$" + hash,  // not a power of two
      "scrypt$1$1$1$" + salt + "$" + hash, "scrypt$0$1$1$" + salt + "$" + hash, "scrypt$16$0$1$" + salt + "$" + hash,
      "scrypt$16$1$0$" + salt + "$" + hash,
      // Hostile costs: each would take gigabytes (or forever) if believed.
      "scrypt$1099511627776$8$1$" + salt + "$" + hash,            // N = 2^40
      "scrypt$9223372036854775808$8$1$" + salt + "$" + hash,      // N = 2^63
      "scrypt$99999999999999999999999$8$1$" + salt + "$" + hash,  // overflows 64 bits
      "scrypt$1048576$8$1$" + salt + "$" + hash,                  // N = 2^20, r = 8: 1 GiB
      "scrypt$16384$4294967295$1$" + salt + "$" + hash,           // r = 2^32 - 1
      "scrypt$16384$4294967296$1$" + salt + "$" + hash,           // r overflows 32 bits
      "scrypt$16384$8$1073741823$" + salt + "$" + hash,           // r p >= 2^30
      "scrypt$16$8$4194304$" + salt + "$" + hash,                 // B alone is 4 GiB
      "scrypt$65536$1$1$" + salt + "$" + hash,                    // N >= 2^(16 r)
      "scrypt$32768$1$2097152$" + salt + "$" + hash,              // ~260 MiB but hours of work
      "scrypt$16384$8$64$" + salt + "$" + hash,                   // N r p = 2^23: over the work cap
  };
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& digest : bad) EXPECT_FALSE(verify_secret_digest("x", digest)) << digest;
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::milliseconds(500));
}

TEST(ScryptSecretDigest, TamperedDigestFails) {
  const std::string digest = secret_digest("hunter2", {.n = 16, .r = 1, .p = 1, .length = 32});
  for (const std::size_t at : {digest.size() - 1, digest.size() - 70}) {  // in the hash, in the salt
    std::string tampered = digest;
    tampered[at] = tampered[at] == '0' ? '1' : '0';
    EXPECT_FALSE(verify_secret_digest("hunter2", tampered)) << tampered;
  }
  // Upper-case hex is the same bytes.
  std::string upper = digest;
  for (char& c : upper) c = (c >= 'a' && c <= 'f') ? static_cast<char>(c - 'a' + 'A') : c;
  upper.replace(0, 6, "scrypt");
  EXPECT_TRUE(verify_secret_digest("hunter2", upper));
}

// Reports the cost of the default parameters (the ones new plans get); no bound, as the machine varies.
TEST(ScryptSecretDigest, DefaultCostTiming) {
  const auto start = std::chrono::steady_clock::now();
  const std::string digest = secret_digest("hunter2");
  const auto made = std::chrono::steady_clock::now();
  EXPECT_TRUE(verify_secret_digest("hunter2", digest));
  const auto checked = std::chrono::steady_clock::now();
  using ms = std::chrono::duration<double, std::milli>;
  std::cout << "[ timing   ] secret_digest (N=2^14, r=8, p=1): " << ms(made - start).count()
            << " ms, verify_secret_digest: " << ms(checked - made).count() << " ms\n";
}

}  // namespace
}  // namespace berth::util
