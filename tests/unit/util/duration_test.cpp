#include "engine/util/duration.hpp"

#include <gtest/gtest.h>

namespace berth::util {
namespace {

using std::chrono::milliseconds;

TEST(Duration, ReadsEveryUnit) {
  EXPECT_EQ(parse_duration("30"), milliseconds(30'000));
  EXPECT_EQ(parse_duration("30s"), milliseconds(30'000));
  EXPECT_EQ(parse_duration("1.5s"), milliseconds(1'500));
  EXPECT_EQ(parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(parse_duration("5m"), milliseconds(300'000));
  EXPECT_EQ(parse_duration("2h"), milliseconds(7'200'000));
  EXPECT_EQ(parse_duration("0s"), milliseconds(0));
}

TEST(Duration, RefusesWhatIsNotADuration) {
  for (const char* bad : {"", "s", ".", "1..2s", "-1s", "+1s", "1e3s", "inf", "nan", "infs", "1d", "1 s", "5M",
                          "99999999999999999999h", "1.2.3"}) {
    EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace berth::util
