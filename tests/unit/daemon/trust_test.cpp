// The trust password as LXD stores it, and core.remote_token_expiry's expressions.

#include <gtest/gtest.h>

#include "daemon/api/trust.hpp"
#include "engine/util/time.hpp"

namespace berth::daemon::api {
namespace {

TEST(TrustPassword, IsSaltedScryptInLxdsForm) {
  const auto a = hash_trust_password("s3cret");
  const auto b = hash_trust_password("s3cret");
  EXPECT_EQ(a.size(), 2u * (32 + 64));  // hex of salt and hash
  EXPECT_NE(a, b);                      // a fresh salt each time
  EXPECT_EQ(a.find("s3cret"), std::string::npos);
  EXPECT_TRUE(check_trust_password("s3cret", a));
  EXPECT_TRUE(check_trust_password("s3cret", b));
  EXPECT_FALSE(check_trust_password("s3cret ", a));
  EXPECT_FALSE(check_trust_password("", a));
}

TEST(TrustPassword, AMalformedStoredValueNeverMatches) {
  EXPECT_FALSE(check_trust_password("x", ""));
  EXPECT_FALSE(check_trust_password("x", "zz"));
  EXPECT_FALSE(check_trust_password("x", std::string(192, 'g')));
  EXPECT_FALSE(check_trust_password("x", std::string(190, 'a')));
}

TEST(TokenExpiry, ReadsLxdExpressions) {
  const auto now = *util::parse_rfc3339_utc("2026-01-31T10:00:00Z");
  EXPECT_EQ(util::rfc3339_utc(*expiry_after(now, "30S")), "2026-01-31T10:00:30Z");
  EXPECT_EQ(util::rfc3339_utc(*expiry_after(now, "1H 30M")), "2026-01-31T11:30:00Z");
  EXPECT_EQ(util::rfc3339_utc(*expiry_after(now, "2d")), "2026-02-02T10:00:00Z");
  EXPECT_EQ(util::rfc3339_utc(*expiry_after(now, "1w")), "2026-02-07T10:00:00Z");
  EXPECT_EQ(util::rfc3339_utc(*expiry_after(now, "1m")), "2026-02-28T10:00:00Z");
  EXPECT_EQ(util::rfc3339_utc(*expiry_after(now, "1y")), "2027-01-31T10:00:00Z");
  for (const char* bad : {"", "1", "H", "1h", "1H 2H", "-1H", "1.5H", "1H  2M"}) {
    EXPECT_FALSE(expiry_after(now, bad)) << bad;
  }
}

}  // namespace
}  // namespace berth::daemon::api
