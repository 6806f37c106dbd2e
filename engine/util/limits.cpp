#include "engine/util/limits.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <utility>

#include "engine/util/printable.hpp"

namespace berth::util {

namespace {

std::string lower(std::string_view text) {
  std::string out;
  for (const char c : text) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

ParsedSize parse_size_limit(std::string_view text) {
  std::string quoted = "'";  // appended, not "'" + s: GCC 12 warns falsely there (-Wrestrict)
  quoted += printable(text);
  quoted += '\'';
  const std::string expected =
      quoted + " is not a size: write bytes, or a whole number with KiB, MiB or GiB (e.g. 64MiB)";
  std::uint64_t number = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (end == text.data()) return {std::nullopt, expected};
  const std::string suffix = lower(text.substr(static_cast<std::size_t>(end - text.data())));
  static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 8> units = {
      {{"", 1}, {"b", 1}, {"k", kib}, {"kib", kib}, {"m", mib}, {"mib", mib}, {"g", gib}, {"gib", gib}}};
  std::optional<std::uint64_t> scale;
  for (const auto& [name, factor] : units) {
    if (suffix == name) scale = factor;
  }
  if (!scale) {
    if (suffix == "kb" || suffix == "mb" || suffix == "gb") {
      return {std::nullopt, quoted + " is ambiguous: sizes are 1024-based, write " +
                                std::string{text.substr(0, static_cast<std::size_t>(end - text.data()))} +
                                std::string(1, static_cast<char>(std::toupper(static_cast<unsigned char>(suffix[0])))) +
                                "iB"};
    }
    return {std::nullopt, expected};
  }
  if (ec == std::errc::result_out_of_range || number > max_settable_limit / *scale) {
    return {std::nullopt, quoted + " is too large: the limit can be at most " + format_size(max_settable_limit)};
  }
  if (number == 0) return {std::nullopt, quoted + " is too small: the limit must be more than 0"};
  return {number * *scale, {}};
}

std::string format_size(std::uint64_t bytes) {
  if (bytes != 0 && bytes % gib == 0) return std::to_string(bytes / gib) + " GiB";
  if (bytes != 0 && bytes % mib == 0) return std::to_string(bytes / mib) + " MiB";
  if (bytes != 0 && bytes % kib == 0) return std::to_string(bytes / kib) + " KiB";
  return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
}

}  // namespace berth::util
