#include "daemon/api/trust.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <array>
#include <charconv>
#include <map>
#include <stdexcept>
#include <vector>

#include "engine/util/scrypt.hpp"

namespace berth::daemon::api {
namespace {

constexpr std::size_t salt_bytes = 32;
constexpr util::ScryptParams lxd_scrypt{1 << 14, 8, 1, 64};

std::string to_hex(const std::uint8_t* bytes, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(digits[bytes[i] >> 4]);
    out.push_back(digits[bytes[i] & 0x0f]);
  }
  return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    unsigned value = 0;
    const auto [p, ec] = std::from_chars(hex.data() + i, hex.data() + i + 2, value, 16);
    if (ec != std::errc{} || p != hex.data() + i + 2) return std::nullopt;
    out.push_back(static_cast<char>(value));
  }
  return out;
}

}  // namespace

std::string hash_trust_password(std::string_view password) {
  std::array<std::uint8_t, salt_bytes> salt{};
  if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1) throw std::runtime_error("no random bytes");
  const std::string salt_text(salt.begin(), salt.end());
  const auto hash = util::scrypt(password, salt_text, lxd_scrypt);
  if (!hash) throw std::logic_error("scrypt refused LXD's parameters");
  return to_hex(salt.data(), salt.size()) + to_hex(hash->data(), hash->size());
}

bool check_trust_password(std::string_view password, std::string_view stored) {
  const auto raw = from_hex(stored);
  if (!raw || raw->size() != salt_bytes + lxd_scrypt.length) return false;
  const auto hash = util::scrypt(password, raw->substr(0, salt_bytes), lxd_scrypt);
  if (!hash) return false;
  return CRYPTO_memcmp(hash->data(), raw->data() + salt_bytes, hash->size()) == 0;
}

std::optional<std::chrono::system_clock::time_point> expiry_after(std::chrono::system_clock::time_point now,
                                                                  std::string_view expression) {
  using namespace std::chrono;
  std::map<char, int> amounts;
  std::size_t start = 0;
  bool any = false;
  while (start < expression.size()) {
    const auto space = expression.find(' ', start);
    const auto word =
        expression.substr(start, space == std::string_view::npos ? std::string_view::npos : space - start);
    start = space == std::string_view::npos ? expression.size() : space + 1;
    if (word.size() < 2) return std::nullopt;
    const char unit = word.back();
    if (std::string_view("SMHdwmy").find(unit) == std::string_view::npos || amounts.contains(unit)) return std::nullopt;
    int value = 0;
    const auto digits = word.substr(0, word.size() - 1);
    const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc{} || p != digits.data() + digits.size() || value < 0 || value > 100000) return std::nullopt;
    if ((unit == 'y' && value > 1000) || (unit == 'm' && value > 12000)) return std::nullopt;
    amounts[unit] = value;
    any = true;
  }
  if (!any) return std::nullopt;
  // Calendar units first (months and years as the calendar has them), then the fixed ones.
  const auto day = floor<days>(now);
  year_month_day date{day};
  date += years{amounts['y']};
  date += months{amounts['m']};
  if (!date.ok()) date = date.year() / date.month() / last;
  auto t = sys_days{date} + (now - day);
  t += weeks{amounts['w']} + days{amounts['d']} + hours{amounts['H']} + minutes{amounts['M']} + seconds{amounts['S']};
  return time_point_cast<system_clock::duration>(t);
}

}  // namespace berth::daemon::api
