#include "engine/config/pem.hpp"

#include <cstdint>
#include <vector>

namespace berth::config {
namespace {

constexpr std::string_view begin_line = "-----BEGIN CERTIFICATE-----";
constexpr std::string_view end_line = "-----END CERTIFICATE-----";

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard base64 with padding; whitespace between characters is skipped. nullopt when malformed.
std::optional<std::vector<std::uint8_t>> decode_base64(std::string_view text) {
  std::vector<std::uint8_t> out;
  std::uint32_t bits = 0;
  int count = 0;
  int padding = 0;
  for (const char c : text) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    const int v = base64_value(c);
    if (v < 0 || padding > 0) return std::nullopt;
    bits = (bits << 6) | static_cast<std::uint32_t>(v);
    if (++count == 4) {
      out.push_back(static_cast<std::uint8_t>(bits >> 16));
      out.push_back(static_cast<std::uint8_t>(bits >> 8));
      out.push_back(static_cast<std::uint8_t>(bits));
      bits = 0;
      count = 0;
    }
  }
  if (count == 1 || padding > 2 || (count != 0 && count + padding != 4) || (count == 0 && padding != 0)) {
    return std::nullopt;
  }
  if (count == 2) out.push_back(static_cast<std::uint8_t>(bits >> 4));
  if (count == 3) {
    out.push_back(static_cast<std::uint8_t>(bits >> 10));
    out.push_back(static_cast<std::uint8_t>(bits >> 2));
  }
  return out;
}

// A DER SEQUENCE (tag 0x30) whose definite length covers exactly the bytes decoded.
bool is_der_sequence(const std::vector<std::uint8_t>& der) {
  if (der.size() < 2 || der[0] != 0x30) return false;
  std::size_t length = der[1];
  std::size_t header = 2;
  if (length & 0x80) {
    const std::size_t n = length & 0x7f;
    if (n == 0 || n > 4 || der.size() < 2 + n) return false;
    length = 0;
    for (std::size_t i = 0; i < n; ++i) length = (length << 8) | der[2 + i];
    header += n;
  }
  return header + length == der.size();
}

}  // namespace

PemCheck check_certificate_pem(std::string_view text) {
  const auto begin = text.find(begin_line);
  if (begin == std::string_view::npos) {
    return {std::nullopt, "it has no -----BEGIN CERTIFICATE----- line: a PEM certificate is expected"};
  }
  const auto body_start = begin + begin_line.size();
  const auto end = text.find(end_line, body_start);
  if (end == std::string_view::npos) return {std::nullopt, "the certificate has no -----END CERTIFICATE----- line"};
  const std::string_view body = text.substr(body_start, end - body_start);
  const auto der = decode_base64(body);
  if (!der) return {std::nullopt, "the certificate is not valid base64"};
  if (!is_der_sequence(*der)) return {std::nullopt, "the certificate is not a DER-encoded certificate"};
  std::string pem{begin_line};
  pem += '\n';
  std::string line;
  for (const char c : body) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    line += c;
    if (line.size() == 64) {
      pem += line + '\n';
      line.clear();
    }
  }
  if (!line.empty()) pem += line + '\n';
  pem += end_line;
  pem += '\n';
  return {std::move(pem), {}};
}

}  // namespace berth::config
