// Size limits as the CLI flags give them, and how messages show them.

#include "engine/util/limits.hpp"

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <gtest/gtest.h>

#include "engine/util/read_file.hpp"

namespace berth::util {
namespace {

TEST(SizeLimit, AcceptsBytesAndBinarySuffixes) {
  EXPECT_EQ(parse_size_limit("1000").bytes, 1000U);
  EXPECT_EQ(parse_size_limit("1000B").bytes, 1000U);
  EXPECT_EQ(parse_size_limit("512KiB").bytes, 512U * 1024);
  EXPECT_EQ(parse_size_limit("512k").bytes, 512U * 1024);
  EXPECT_EQ(parse_size_limit("64MiB").bytes, 64U * 1024 * 1024);
  EXPECT_EQ(parse_size_limit("64M").bytes, 64U * 1024 * 1024);
  EXPECT_EQ(parse_size_limit("64mib").bytes, 64U * 1024 * 1024);
  EXPECT_EQ(parse_size_limit("1GiB").bytes, 1024U * 1024 * 1024);
  EXPECT_EQ(parse_size_limit("1G").bytes, max_settable_limit);
}

TEST(SizeLimit, RefusesWhatIsNotASaneLimit) {
  for (const char* text : {"", "MiB", "-1", "1.5GiB", "64 MiB", "64XiB", "ten", "64MiBs"}) {
    const auto parsed = parse_size_limit(text);
    EXPECT_FALSE(parsed.bytes) << text;
    EXPECT_NE(parsed.problem.find("is not a size"), std::string::npos) << text << ": " << parsed.problem;
  }
  EXPECT_EQ(parse_size_limit("0").problem, "'0' is too small: the limit must be more than 0");
  EXPECT_EQ(parse_size_limit("2GiB").problem, "'2GiB' is too large: the limit can be at most 1 GiB");
  EXPECT_EQ(parse_size_limit("1025MiB").problem, "'1025MiB' is too large: the limit can be at most 1 GiB");
  EXPECT_FALSE(parse_size_limit("99999999999999999999999").bytes);
  EXPECT_EQ(parse_size_limit("64MB").problem, "'64MB' is ambiguous: sizes are 1024-based, write 64MiB");
  EXPECT_EQ(parse_size_limit("1\x1b[2J").problem.find('\x1b'), std::string::npos);  // echoed escaped
}

TEST(SizeLimit, FormatsExactly) {
  EXPECT_EQ(format_size(16 * mib), "16 MiB");
  EXPECT_EQ(format_size(1 * gib), "1 GiB");
  EXPECT_EQ(format_size(1536 * kib), "1536 KiB");
  EXPECT_EQ(format_size(1000), "1000 bytes");
  EXPECT_EQ(format_size(1), "1 byte");
  const InputLimits defaults;
  EXPECT_EQ(format_size(defaults.fleet_file_bytes), "16 MiB");
  EXPECT_EQ(format_size(defaults.plan_file_bytes), "64 MiB");
  EXPECT_EQ(format_size(defaults.response_bytes), "32 MiB");
}

TEST(ReadFileBounded, ReadsUpToTheLimitAndNoFurther) {
  const auto path = std::filesystem::temp_directory_path() / ("berth-read-bounded-" + std::to_string(::getpid()));
  std::ofstream(path, std::ios::binary) << std::string(1000, 'x');
  EXPECT_EQ(read_file_bounded(path, 1000).bytes.size(), 1000U);
  EXPECT_EQ(read_file_bounded(path, 1000).problem, ReadProblem::none);
  EXPECT_EQ(read_file_bounded(path, 999).problem, ReadProblem::too_large);
  EXPECT_TRUE(read_file_bounded(path, 999).bytes.empty());
  std::filesystem::remove(path);
  EXPECT_EQ(read_file_bounded(path, 1000).problem, ReadProblem::not_found);
  EXPECT_EQ(read_file_bounded(std::filesystem::temp_directory_path(), 1000).problem, ReadProblem::is_directory);
  EXPECT_EQ(read_file_bounded("/dev/zero", 1 * mib).problem, ReadProblem::too_large);  // never ends
}

}  // namespace
}  // namespace berth::util
