#include "engine/util/time.hpp"

#include <gtest/gtest.h>

namespace berth::util {
namespace {

TEST(Rfc3339, ReadsOffsetsAsUtc) {
  const auto utc = parse_rfc3339_utc("2026-12-03T10:00:00Z");
  ASSERT_TRUE(utc.has_value());
  EXPECT_EQ(parse_rfc3339("2026-12-03T10:00:00Z"), utc);
  EXPECT_EQ(parse_rfc3339("2026-12-03T10:00:00z"), utc);
  EXPECT_EQ(parse_rfc3339("2026-12-03T11:30:00+01:30"), utc);
  EXPECT_EQ(parse_rfc3339("2026-12-03T05:00:00-05:00"), utc);
  EXPECT_EQ(parse_rfc3339("2026-12-03T10:00:00.123456789+00:00"), utc);
  // Across a day boundary.
  EXPECT_EQ(parse_rfc3339("2026-12-04T00:30:00+14:30"), utc);
}

TEST(Rfc3339, RefusesWhatIsNotATime) {
  for (const char* bad : {"", "Z", "+01:00", "2026-12-03T10:00:00", "2026-12-03T10:00:00+1:00",
                          "2026-12-03T10:00:00+24:00", "2026-12-03T10:00:00+01:60", "2026-12-03T10:00:00+0100",
                          "2026-12-03 10:00:00Z", "2026-13-03T10:00:00Z", "2026-12-03T10:00:00+ab:cd",
                          // Outside what a time point holds: Go's zero time, which LXD writes for never.
                          "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"}) {
    EXPECT_FALSE(parse_rfc3339(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace berth::util
