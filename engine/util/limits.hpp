#pragma once
// How much berth reads of any one input: the fleet file, a saved plan, each daemon response. The
// defaults live here and nowhere else; the CLI overrides them from --max-file-size and
// --max-response-size (docs/cli.md), and every reader gets its bound from an InputLimits.
//
// Why these defaults (docs/fleet-file.md, Limits):
//  - fleet file 16 MiB: a fleet file is text of a few kilobytes; 16 MiB holds ~1M snapshot names.
//  - saved plan 64 MiB: a plan writes each action out in full (~0.5 KB for a snapshot to take or
//    delete), so 20k snapshot actions are 10 MB; 64 MiB leaves room for ~130k actions.
//  - daemon response 32 MiB: measured on LXD 5.0.2 (tests/testbed), GET /1.0/instances?recursion=1
//    is 1.7 KB per instance (a container with a few keys of its own; ~3 KB with the config of a
//    started distribution image), so 1000 instances are 1.7-3 MB; a pool's volume listing is
//    0.22 KB per snapshot, so 20k snapshots are 4.4 MB. 32 MiB leaves room for seven times the
//    larger; berth plan reads and plans a 40 MB instance list with 3.3 s of CPU and 400 MB.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace berth::util {

inline constexpr std::uint64_t kib = 1024;
inline constexpr std::uint64_t mib = 1024 * kib;
inline constexpr std::uint64_t gib = 1024 * mib;

struct InputLimits {
  std::uint64_t fleet_file_bytes = 16 * mib;
  std::uint64_t plan_file_bytes = 64 * mib;
  std::uint64_t response_bytes = 32 * mib;  // the body of one daemon answer
};

// The largest limit a flag may set: beyond it the parsed form (several times the text) no longer
// fits in memory on a typical host, so such a limit would only postpone a worse failure.
inline constexpr std::uint64_t max_settable_limit = 1 * gib;

// "1048576", "512KiB", "64MiB", "1GiB"; the suffixes K/KiB, M/MiB, G/GiB and B, in any case, are
// 1024-based. Returns the number of bytes, or why the text is not a size limit (for a message
// that names the flag): not a whole number with one of those suffixes, zero, or above
// max_settable_limit.
struct ParsedSize {
  std::optional<std::uint64_t> bytes;
  std::string problem;  // set when bytes is not
};
[[nodiscard]] ParsedSize parse_size_limit(std::string_view text);

// "16 MiB", "512 KiB", "1000 bytes": the exact size, in the largest unit that divides it.
[[nodiscard]] std::string format_size(std::uint64_t bytes);

}  // namespace berth::util
