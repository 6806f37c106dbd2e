#pragma once
// Quantities as LXD writes them in limits.memory, limits.cpu and a remote's capacity:.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace berth::util {

// A byte size as LXD's units.ParseByteSizeString reads it: a whole number (digits only), optionally
// followed by B (or " bytes"), a decimal unit (kB, MB, GB, TB, PB, EB: powers of 1000) or a binary
// one (KiB, MiB, GiB, TiB, PiB, EiB: powers of 1024); units are case-sensitive. nullopt when it is
// not one (the empty string included, which LXD reads as 0), or when it is more than LXD's int64
// holds (2^63 - 1 bytes).
[[nodiscard]] std::optional<std::uint64_t> parse_byte_size(std::string_view text);

// limits.memory: a byte size, or a whole percentage of the host's memory ("50%", as LXD computes it:
// host_memory / 100 * percent). nullopt when it is neither, or zero (LXD refuses both); a
// percentage needs `host_memory` (nullopt without it).
[[nodiscard]] std::optional<std::uint64_t> parse_memory_limit(std::string_view text,
                                                              std::optional<std::uint64_t> host_memory);

// limits.cpu as a count of CPUs: "2" is two (a plain number is a count, as in LXD; "0" is zero); a
// set of CPUs ("0-3", "1,3", "0-1,4") counts its members. nullopt when it is neither (or a set
// names a CPU twice or a range runs backwards).
[[nodiscard]] std::optional<std::int64_t> parse_cpu_count(std::string_view text);

// A size as a user reads it in a placement explanation: "512MiB", "1.5GiB", "1000B": the largest
// binary unit up to TiB that it reaches, rounded to one decimal, without a trailing ".0".
[[nodiscard]] std::string format_bytes(std::uint64_t bytes);

}  // namespace berth::util
