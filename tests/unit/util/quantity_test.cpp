// Quantities as LXD writes them: byte sizes (units.ParseByteSizeString), limits.memory,
// limits.cpu, and sizes as placement explanations show them.

#include "engine/util/quantity.hpp"

#include <gtest/gtest.h>

#include <limits>

namespace berth::util {
namespace {

constexpr std::uint64_t int64_max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

TEST(Quantity, ByteSizesAsLxdReadsThem) {
  EXPECT_EQ(parse_byte_size("0"), 0U);
  EXPECT_EQ(parse_byte_size("1000"), 1000U);
  EXPECT_EQ(parse_byte_size("007"), 7U);
  EXPECT_EQ(parse_byte_size("512B"), 512U);
  EXPECT_EQ(parse_byte_size("10 bytes"), 10U);
  EXPECT_EQ(parse_byte_size("1kB"), 1000U);
  EXPECT_EQ(parse_byte_size("2MB"), 2'000'000U);
  EXPECT_EQ(parse_byte_size("8GB"), 8'000'000'000U);
  EXPECT_EQ(parse_byte_size("1TB"), 1'000'000'000'000U);
  EXPECT_EQ(parse_byte_size("1PB"), 1'000'000'000'000'000U);
  EXPECT_EQ(parse_byte_size("9EB"), 9'000'000'000'000'000'000U);
  EXPECT_EQ(parse_byte_size("1KiB"), 1024U);
  EXPECT_EQ(parse_byte_size("512MiB"), 512U << 20);
  EXPECT_EQ(parse_byte_size("16GiB"), 16ULL << 30);
  EXPECT_EQ(parse_byte_size("3TiB"), 3ULL << 40);
  EXPECT_EQ(parse_byte_size("5PiB"), 5ULL << 50);
  EXPECT_EQ(parse_byte_size("7EiB"), 7ULL << 60);
}

TEST(Quantity, WhatLxdRefusesIsNoByteSize) {
  for (const char* bad :
       {"",    "B",  "GiB", "-1",  "+1",  " 1",     "1 ",     "1.5GiB", "1 GiB", "1gib", "1GIB",  "1kb",
        "1KB", "1K", "1G",  "1Gi", "1iB", "1bytes", "1 byte", "0x10",   "1e3",   "ten",  "1GiB ", "1GiBs"}) {
    EXPECT_FALSE(parse_byte_size(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(Quantity, ByteSizesThatDoNotFitAreRefused) {
  EXPECT_EQ(parse_byte_size("9223372036854775807"), int64_max);
  EXPECT_FALSE(parse_byte_size("9223372036854775808"));   // past int64, as in LXD
  EXPECT_FALSE(parse_byte_size("18446744073709551616"));  // past uint64
  EXPECT_FALSE(parse_byte_size("99999999999999999999999"));
  EXPECT_EQ(parse_byte_size("9223372036854775807B"), int64_max);
  EXPECT_EQ(parse_byte_size("7EiB"), 7ULL << 60);
  EXPECT_FALSE(parse_byte_size("8EiB"));  // 2^63
  EXPECT_FALSE(parse_byte_size("10EB"));
  EXPECT_EQ(parse_byte_size("8388607TiB"), 8388607ULL << 40);
  EXPECT_FALSE(parse_byte_size("8388608TiB"));
  EXPECT_FALSE(parse_byte_size("9007199254740993KiB"));
}

TEST(Quantity, MemoryLimits) {
  EXPECT_EQ(parse_memory_limit("256MiB", std::nullopt), 256U << 20);
  EXPECT_EQ(parse_memory_limit("1GB", 1000), 1'000'000'000U);
  EXPECT_EQ(parse_memory_limit("50%", 8ULL << 30), (8ULL << 30) / 100 * 50);  // LXD divides first: 4294967250
  EXPECT_EQ(parse_memory_limit("50%", 8ULL << 30), 4294967250U);
  EXPECT_EQ(parse_memory_limit("100%", 1000), 1000U);
  EXPECT_EQ(parse_memory_limit("150%", 1000), 1500U);  // LXD allows it
  EXPECT_EQ(parse_memory_limit("33%", 1050), 330U);    // (1050 / 100) * 33, as LXD computes it
  EXPECT_FALSE(parse_memory_limit("50%", std::nullopt));
  for (const char* bad : {"", "0", "0B", "0%", "%", "-5%", "+5%", "5.5%", "5 %", "50%%", "lots", "1.5GiB"}) {
    EXPECT_FALSE(parse_memory_limit(bad, 1ULL << 30).has_value()) << "'" << bad << "'";
  }
  EXPECT_FALSE(parse_memory_limit("99999999999999999999%", 1ULL << 30));
  EXPECT_FALSE(parse_memory_limit("2000000000%", 1ULL << 40));  // past int64
}

TEST(Quantity, CpuCounts) {
  EXPECT_EQ(parse_cpu_count("2"), 2);
  EXPECT_EQ(parse_cpu_count("1"), 1);
  EXPECT_EQ(parse_cpu_count("0"), 0);    // a count, as LXD reads a plain number
  EXPECT_EQ(parse_cpu_count("0-3"), 4);  // CPUs 0, 1, 2 and 3
  EXPECT_EQ(parse_cpu_count("1,3"), 2);
  EXPECT_EQ(parse_cpu_count("0-1,4"), 3);
  EXPECT_EQ(parse_cpu_count("5-5"), 1);
  EXPECT_EQ(parse_cpu_count("4,0-1"), 3);
  EXPECT_EQ(parse_cpu_count("0-4095"), 4096);
  EXPECT_EQ(parse_cpu_count("0-9223372036854775806"), std::numeric_limits<std::int64_t>::max());
}

TEST(Quantity, WhatIsNeitherACountNorASetIsRefused) {
  for (const char* bad : {"",
                          " ",
                          "-",
                          "-1",
                          "+2",
                          "2.5",
                          "a",
                          "1-",
                          "-3",
                          "3-1",
                          "1,1",
                          "0-3,2",
                          "0-2,2-4",
                          "1,,2",
                          "1,",
                          ",1",
                          "1-2-3",
                          "1 ,2",
                          "0x2",
                          "99999999999999999999",
                          "0-9223372036854775807",
                          "0-9223372036854775806,9223372036854775807"}) {
    EXPECT_FALSE(parse_cpu_count(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(Quantity, FormatBytesInTheLargestBinaryUnit) {
  EXPECT_EQ(format_bytes(0), "0B");
  EXPECT_EQ(format_bytes(1000), "1000B");
  EXPECT_EQ(format_bytes(1023), "1023B");
  EXPECT_EQ(format_bytes(1024), "1KiB");
  EXPECT_EQ(format_bytes(1536), "1.5KiB");
  EXPECT_EQ(format_bytes(512ULL << 20), "512MiB");
  EXPECT_EQ(format_bytes(3ULL << 29), "1.5GiB");
  EXPECT_EQ(format_bytes(16ULL << 30), "16GiB");
  EXPECT_EQ(format_bytes(1'000'000'000), "953.7MiB");
  EXPECT_EQ(format_bytes((1ULL << 30) + 1), "1GiB");  // rounds to one decimal, no ".0"
  EXPECT_EQ(format_bytes((1ULL << 20) - 1), "1MiB");  // 1023.999KiB rounds up to the next unit
  EXPECT_EQ(format_bytes((1ULL << 30) * 95 / 100), "972.8MiB");
  EXPECT_EQ(format_bytes(2ULL << 40), "2TiB");
  EXPECT_EQ(format_bytes(5ULL << 50), "5120TiB");  // TiB is the largest unit
  EXPECT_EQ(format_bytes(std::numeric_limits<std::uint64_t>::max()), "16777216TiB");
}

}  // namespace
}  // namespace berth::util
