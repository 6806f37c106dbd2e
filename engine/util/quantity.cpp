#include "engine/util/quantity.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <utility>
#include <vector>

namespace berth::util {
namespace {

// LXD keeps sizes in an int64: anything above this is refused there, so it is refused here.
constexpr std::uint64_t max_lxd_size = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// A whole decimal number, digits only (no sign, no spaces), that fits in `T`.
template <class T>
std::optional<T> parse_digits(std::string_view text) {
  if (text.empty() || !std::all_of(text.begin(), text.end(), is_digit)) return std::nullopt;
  T value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

std::optional<std::uint64_t> parse_byte_size(std::string_view text) {
  // As LXD 5.0 shared/units/units.go ParseByteSizeString, except that the empty string, which LXD
  // reads as 0, is no size here: nowhere berth reads one does an empty value mean zero.
  static constexpr std::uint64_t k = 1000;
  static constexpr std::uint64_t ki = 1024;
  static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 15> units = {{
      {"", 1},
      {"B", 1},
      {" bytes", 1},
      {"kB", k},
      {"MB", k * k},
      {"GB", k * k * k},
      {"TB", k * k * k * k},
      {"PB", k * k * k * k * k},
      {"EB", k * k * k * k * k * k},
      {"KiB", ki},
      {"MiB", ki * ki},
      {"GiB", ki * ki * ki},
      {"TiB", ki * ki * ki * ki},
      {"PiB", ki * ki * ki * ki * ki},
      {"EiB", ki * ki * ki * ki * ki * ki},
  }};
  const auto digits_end = std::find_if_not(text.begin(), text.end(), is_digit);
  const auto number = parse_digits<std::uint64_t>(text.substr(0, static_cast<std::size_t>(digits_end - text.begin())));
  if (!number || *number > max_lxd_size) return std::nullopt;
  const std::string_view suffix = text.substr(static_cast<std::size_t>(digits_end - text.begin()));
  for (const auto& [name, factor] : units) {
    if (name != suffix) continue;
    if (*number > max_lxd_size / factor) return std::nullopt;
    return *number * factor;
  }
  return std::nullopt;
}

std::optional<std::uint64_t> parse_memory_limit(std::string_view text, std::optional<std::uint64_t> host_memory) {
  // As LXD 5.0 validates limits.memory (shared/instance.go) and applies it (driver_lxc.go): a
  // percentage is of the host's total memory, computed as (total / 100) * percent; zero is refused.
  if (text.ends_with('%')) {
    const auto percent = parse_digits<std::uint64_t>(text.substr(0, text.size() - 1));
    if (!percent || *percent == 0 || !host_memory) return std::nullopt;
    const std::uint64_t hundredth = *host_memory / 100;
    if (hundredth != 0 && *percent > max_lxd_size / hundredth) return std::nullopt;
    return hundredth * *percent;
  }
  const auto bytes = parse_byte_size(text);
  if (!bytes || *bytes == 0) return std::nullopt;
  return bytes;
}

std::optional<std::int64_t> parse_cpu_count(std::string_view text) {
  // LXD 5.0 reads a plain number as a count (lxd/devices.go deviceTaskBalance) and anything else
  // as a set of CPU ids (validate.IsValidCPUSet, resources.ParseCpuset): "N" or "N-M", by commas.
  if (auto count = parse_digits<std::int64_t>(text)) return count;
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    const std::string_view chunk = text.substr(start, comma == std::string_view::npos ? comma : comma - start);
    const std::size_t dash = chunk.find('-');
    const auto low = parse_digits<std::int64_t>(chunk.substr(0, dash));
    const auto high = dash == std::string_view::npos ? low : parse_digits<std::int64_t>(chunk.substr(dash + 1));
    if (!low || !high || *high < *low) return std::nullopt;
    ranges.emplace_back(*low, *high);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  // Ranges may be wide ("0-4095"): count and check for overlaps without listing the ids.
  std::sort(ranges.begin(), ranges.end());
  std::int64_t count = 0;
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    if (i > 0 && ranges[i].first <= ranges[i - 1].second) return std::nullopt;  // a CPU named twice
    const std::int64_t width = ranges[i].second - ranges[i].first;              // no overflow: both are >= 0
    if (width == std::numeric_limits<std::int64_t>::max() ||
        count > std::numeric_limits<std::int64_t>::max() - width - 1)
      return std::nullopt;
    count += width + 1;
  }
  return count;
}

std::string format_bytes(std::uint64_t bytes) {
  static constexpr std::array<std::string_view, 5> names = {"B", "KiB", "MiB", "GiB", "TiB"};
  std::size_t unit = 0;
  while (unit + 1 < names.size() && bytes >= (std::uint64_t{1} << (10 * (unit + 1)))) ++unit;
  if (unit == 0) {
    std::string text = std::to_string(bytes);
    text += 'B';
    return text;
  }
  // Tenths of the unit, rounded half up; a value that rounds up to 1024 of a unit is one of the next.
  auto tenths_in = [bytes](std::size_t u) {
    const std::uint64_t size = std::uint64_t{1} << (10 * u);
    return bytes / size * 10 + ((bytes % size) * 10 + size / 2) / size;
  };
  std::uint64_t tenths = tenths_in(unit);
  if (tenths >= 10240 && unit + 1 < names.size()) tenths = tenths_in(++unit);
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict, bug 105329) on "." + s.
  std::string text = std::to_string(tenths / 10);
  if (tenths % 10 != 0) {
    text += '.';
    text += static_cast<char>('0' + tenths % 10);
  }
  text += names[unit];
  return text;
}

}  // namespace berth::util
