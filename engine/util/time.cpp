#include "engine/util/time.hpp"

#include <array>
#include <charconv>
#include <ctime>

namespace berth::util {

std::string rfc3339_utc(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  std::array<char, 32> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf.data();
}

std::optional<std::chrono::system_clock::time_point> parse_rfc3339_utc(std::string_view text) {
  using namespace std::chrono;
  // Drop a fraction of a second: "…:SS.123456789Z" -> "…:SSZ".
  std::string plain(text);
  if (const auto dot = plain.find('.'); dot != std::string::npos && plain.back() == 'Z') {
    const auto fraction = std::string_view(plain).substr(dot + 1, plain.size() - dot - 2);
    if (fraction.empty() || fraction.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
    plain = plain.substr(0, dot) + "Z";
  }
  if (plain.size() != 20 || plain[4] != '-' || plain[7] != '-' || plain[10] != 'T' || plain[13] != ':' ||
      plain[16] != ':' || plain[19] != 'Z') {
    return std::nullopt;
  }
  auto number = [&](std::size_t at, std::size_t n) -> std::optional<int> {
    for (std::size_t i = at; i < at + n; ++i) {
      if (plain[i] < '0' || plain[i] > '9') return std::nullopt;
    }
    int v = 0;
    const auto [p, ec] = std::from_chars(plain.data() + at, plain.data() + at + n, v);
    if (ec != std::errc{} || p != plain.data() + at + n) return std::nullopt;
    return v;
  };
  const auto y = number(0, 4), mo = number(5, 2), d = number(8, 2), h = number(11, 2), mi = number(14, 2),
             s = number(17, 2);
  if (!y || !mo || !d || !h || !mi || !s || *h > 23 || *mi > 59 || *s > 60) return std::nullopt;
  // What a system_clock time point (nanoseconds since 1970 in 64 bits) can hold; Go's zero time
  // (year 1) is outside, as is year 9999.
  if (*y < 1678 || *y > 2261) return std::nullopt;
  const year_month_day date{year{*y}, month{static_cast<unsigned>(*mo)}, day{static_cast<unsigned>(*d)}};
  if (!date.ok()) return std::nullopt;
  return time_point_cast<system_clock::duration>(sys_days{date} + hours{*h} + minutes{*mi} + seconds{*s});
}

std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text) {
  if (text.empty()) return std::nullopt;
  if (text.back() == 'Z' || text.back() == 'z') {
    std::string utc(text);
    utc.back() = 'Z';
    return parse_rfc3339_utc(utc);
  }
  constexpr std::size_t offset_size = 6;  // "+HH:MM"
  if (text.size() <= offset_size) return std::nullopt;
  const auto offset = text.substr(text.size() - offset_size);
  const auto digit = [&](std::size_t i) { return offset[i] >= '0' && offset[i] <= '9'; };
  if ((offset[0] != '+' && offset[0] != '-') || offset[3] != ':' || !digit(1) || !digit(2) || !digit(4) || !digit(5)) {
    return std::nullopt;
  }
  const int hh = (offset[1] - '0') * 10 + (offset[2] - '0');
  const int mm = (offset[4] - '0') * 10 + (offset[5] - '0');
  if (hh > 23 || mm > 59) return std::nullopt;
  auto local = parse_rfc3339_utc(std::string(text.substr(0, text.size() - offset_size)) + "Z");
  if (!local) return std::nullopt;
  const std::chrono::minutes shift{hh * 60 + mm};
  // Local time is UTC plus the offset: UTC is local minus it.
  return offset[0] == '+' ? *local - shift : *local + shift;
}

}  // namespace berth::util
