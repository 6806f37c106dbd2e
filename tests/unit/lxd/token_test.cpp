#include "providers/lxd/token.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace berth::lxd {
namespace {

const std::string server_fp = "3c94595a3dabd7f5fe4eb20294311260a2ae2fbff6ff37553833fe709c6801a6";

nlohmann::json good_token_json() {
  return {{"client_name", "berth-ci"},
          {"fingerprint", server_fp},
          {"addresses", {"127.0.0.2:8443", "[::1]:8443"}},
          {"secret", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
          {"expires_at", "0001-01-01T00:00:00Z"}};
}

std::string encode(const nlohmann::json& j) {
  return base64_encode(j.dump());
}

TEST(Base64, RoundTripsAllLengths) {
  const std::string bytes = std::string("\x00\xff\x10 binary\x80", 12) + "text";
  for (std::size_t n = 0; n <= bytes.size(); ++n) {
    const auto part = bytes.substr(0, n);
    auto back = base64_decode(base64_encode(part));
    ASSERT_TRUE(back.ok()) << n;
    EXPECT_EQ(*back, part) << n;
  }
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(*base64_decode("Zm8"), "fo");       // padding optional
  EXPECT_EQ(*base64_decode("  Zm8=\n"), "fo");  // surrounding whitespace ignored
  EXPECT_FALSE(base64_decode("Zm9v!").ok());
  EXPECT_FALSE(base64_decode("Z").ok());
}

TEST(DecodeToken, Good) {
  auto t = decode_token(encode(good_token_json()));
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->client_name, "berth-ci");
  EXPECT_EQ(t->fingerprint, server_fp);
  ASSERT_EQ(t->addresses.size(), 2u);
  EXPECT_EQ(t->addresses[0], "127.0.0.2:8443");
  EXPECT_EQ(t->addresses[1], "[::1]:8443");
  EXPECT_EQ(t->expires_at, "0001-01-01T00:00:00Z");
  EXPECT_EQ(t->secret.size(), 64u);
}

TEST(DecodeToken, NormalizesTheFingerprint) {
  auto j = good_token_json();
  std::string upper;
  for (char c : server_fp) upper.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  j["fingerprint"] = upper;
  auto t = decode_token(encode(j));
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->fingerprint, server_fp);
}

TEST(DecodeToken, BadBase64) {
  auto t = decode_token("this is not a token!");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().kind, ErrorKind::invalid_argument);
  EXPECT_NE(t.error().message.find("not base64"), std::string::npos);
}

TEST(DecodeToken, NotJson) {
  auto t = decode_token(base64_encode("hello"));
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("JSON"), std::string::npos);
}

TEST(DecodeToken, MissingFields) {
  const std::pair<const char*, const char*> cases[] = {
      {"client_name", "client name"},
      {"addresses", "address"},
      {"secret", "secret"},
      {"fingerprint", "fingerprint"},
  };
  for (const auto& [field, why] : cases) {
    auto j = good_token_json();
    j.erase(field);
    auto t = decode_token(encode(j));
    ASSERT_FALSE(t.ok()) << field;
    EXPECT_NE(t.error().message.find(why), std::string::npos) << t.error().message;
  }
  auto j = good_token_json();
  j["addresses"] = nlohmann::json::array();
  EXPECT_FALSE(decode_token(encode(j)).ok());
  j = good_token_json();
  j["fingerprint"] = "abc";
  EXPECT_FALSE(decode_token(encode(j)).ok());
}

TEST(DecodeToken, ErrorsNeverQuoteTheToken) {
  auto j = good_token_json();
  j.erase("client_name");
  const std::string token = encode(j);
  auto t = decode_token(token);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().message.find(token.substr(0, 12)), std::string::npos);
  EXPECT_EQ(t.error().message.find("0123456789abcdef"), std::string::npos);
}

}  // namespace
}  // namespace berth::lxd
