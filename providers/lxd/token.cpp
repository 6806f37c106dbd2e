#include "providers/lxd/token.hpp"

#include <array>

#include <nlohmann/json.hpp>

#include "engine/config/url.hpp"

namespace berth::lxd {

namespace {

constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int, 256> make_decode_table() {
  std::array<int, 256> t{};
  for (auto& v : t) v = -1;
  for (std::size_t i = 0; i < alphabet.size(); ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<int>(i);
  t[static_cast<unsigned char>('-')] = 62;
  t[static_cast<unsigned char>('_')] = 63;
  return t;
}
constexpr auto decode_table = make_decode_table();

bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

Error bad_token(std::string_view why) {
  return make_error(ErrorKind::invalid_argument, "invalid certificate add token: " + std::string{why});
}

}  // namespace

Result<std::string> base64_decode(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return make_error(ErrorKind::invalid_argument, "not base64 (bad length)");
  std::string out;
  out.reserve(text.size() * 3 / 4);
  unsigned acc = 0;
  int bits = 0;
  for (const char c : text) {
    const int v = decode_table[static_cast<unsigned char>(c)];
    if (v < 0) return make_error(ErrorKind::invalid_argument, "not base64 (unexpected character)");
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xffU));
    }
  }
  return out;
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const auto n = (static_cast<unsigned>(static_cast<unsigned char>(bytes[i])) << 16) |
                   (static_cast<unsigned>(static_cast<unsigned char>(bytes[i + 1])) << 8) |
                   static_cast<unsigned>(static_cast<unsigned char>(bytes[i + 2]));
    out.push_back(alphabet[(n >> 18) & 63]);
    out.push_back(alphabet[(n >> 12) & 63]);
    out.push_back(alphabet[(n >> 6) & 63]);
    out.push_back(alphabet[n & 63]);
  }
  if (const std::size_t rest = bytes.size() - i; rest > 0) {
    unsigned n = static_cast<unsigned>(static_cast<unsigned char>(bytes[i])) << 16;
    if (rest == 2) n |= static_cast<unsigned>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out.push_back(alphabet[(n >> 18) & 63]);
    out.push_back(alphabet[(n >> 12) & 63]);
    out.push_back(rest == 2 ? alphabet[(n >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

Result<CertificateToken> decode_token(std::string_view token) {
  auto raw = base64_decode(token);
  if (!raw) return bad_token("it is not base64");
  const auto doc = nlohmann::json::parse(*raw, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return bad_token("it does not contain a JSON object");

  CertificateToken t;
  const auto get_string = [&](const char* key, std::string& into) {
    const auto it = doc.find(key);
    if (it != doc.end() && it->is_string()) into = it->get<std::string>();
  };
  get_string("client_name", t.client_name);
  get_string("fingerprint", t.fingerprint);
  get_string("secret", t.secret);
  get_string("expires_at", t.expires_at);
  if (const auto it = doc.find("addresses"); it != doc.end() && it->is_array()) {
    for (const auto& a : *it) {
      if (a.is_string() && !a.get<std::string>().empty()) t.addresses.push_back(a.get<std::string>());
    }
  }
  if (t.client_name.empty()) return bad_token("no client name in it");
  if (t.addresses.empty()) return bad_token("no server address in it");
  if (t.secret.empty()) return bad_token("no secret in it");
  if (t.fingerprint.empty()) return bad_token("no server fingerprint in it");
  const auto fingerprint = config::normalize_fingerprint(t.fingerprint);
  if (!fingerprint) return bad_token("its server fingerprint is not a sha256 fingerprint");
  t.fingerprint = *fingerprint;
  return t;
}

}  // namespace berth::lxd
