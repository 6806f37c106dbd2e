#include "engine/config/url.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace berth::config {
namespace {

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alnum(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// RFC 1123 host names, or dotted IPv4 when every label is numeric.
std::optional<std::string> host_name_problem(std::string_view host) {
  if (host.empty()) return "the host is missing";
  if (host.size() > 253) return "the host name is longer than 253 characters";
  const bool all_numeric = std::all_of(host.begin(), host.end(), [](char c) { return is_digit(c) || c == '.'; });
  if (all_numeric) {
    in_addr addr{};
    if (inet_pton(AF_INET, std::string{host}.c_str(), &addr) != 1) return "the IPv4 address is not valid";
    return std::nullopt;
  }
  std::string_view rest = host;
  if (rest.back() == '.') rest.remove_suffix(1);  // a fully qualified name may end with '.'
  while (true) {
    const auto dot = rest.find('.');
    const std::string_view label = rest.substr(0, dot);
    if (label.empty() || label.size() > 63) return "each part of the host name must be 1-63 characters long";
    if (!std::all_of(label.begin(), label.end(), [](char c) { return is_alnum(c) || c == '-'; })) {
      return "the host name may contain only letters, digits, hyphens and dots";
    }
    if (label.front() == '-' || label.back() == '-') return "a part of the host name starts or ends with a hyphen";
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  return std::nullopt;
}

std::optional<std::string> https_problem(std::string_view rest) {
  // rest is what follows "https://": HOST[:PORT][/]
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#") != std::string_view::npos) return "a remote URL has no path, query or fragment";
  if (rest.find('@') != std::string_view::npos) return "a remote URL has no user name or password";
  std::string_view host;
  std::string_view port;
  bool has_port = false;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return "the IPv6 address is missing its closing ']'";
    host = rest.substr(1, close - 1);
    in6_addr addr{};
    if (host.empty() || inet_pton(AF_INET6, std::string{host}.c_str(), &addr) != 1) {
      return "the address in brackets is not a valid IPv6 address";
    }
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return "only :PORT may follow the IPv6 address";
      has_port = true;
      port = after.substr(1);
    }
  } else {
    const auto colon = rest.find(':');
    host = rest.substr(0, colon);
    if (colon != std::string_view::npos) {
      if (rest.find(':', colon + 1) != std::string_view::npos) {
        return "an IPv6 address must be written in brackets, as https://[ADDRESS]:PORT";
      }
      has_port = true;
      port = rest.substr(colon + 1);
    }
    if (auto p = host_name_problem(host)) return p;
  }
  if (has_port) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value < 1 || value > 65535) {
      return "the port must be a number from 1 to 65535";
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> url_problem(std::string_view url) {
  if (url.empty()) return "the URL is empty";
  if (url.starts_with("https://")) return https_problem(url.substr(8));
  if (url.starts_with("unix:")) {
    const std::string_view rest = url.substr(5);
    if (!rest.starts_with("//")) return "a socket URL is written unix:///ABSOLUTE/PATH";
    const std::string_view path = rest.substr(2);
    if (!path.starts_with("/")) return "a unix socket URL has no host: write unix:///ABSOLUTE/PATH";
    if (path.size() < 2) return "the socket path is missing";
    if (path.find('\0') != std::string_view::npos) return "the socket path contains a NUL character";
    return std::nullopt;
  }
  if (url.starts_with("http://")) return "plain http is not supported: LXD remotes speak https://";
  if (url.find("://") == std::string_view::npos)
    return "the scheme is missing: write https://HOST[:PORT] or unix:///PATH";
  return "the scheme is not supported: only https:// and unix:// are";
}

std::optional<std::string> normalize_fingerprint(std::string_view fingerprint) {
  std::string_view rest = fingerprint;
  if (rest.starts_with("sha256:")) rest.remove_prefix(7);
  std::string hex;
  if (rest.size() == 64) {
    hex = rest;
  } else if (rest.size() == 95) {
    for (std::size_t i = 0; i < rest.size(); ++i) {
      if (i % 3 == 2) {
        if (rest[i] != ':') return std::nullopt;
      } else {
        hex += rest[i];
      }
    }
  } else {
    return std::nullopt;
  }
  if (!std::all_of(hex.begin(), hex.end(), is_hex)) return std::nullopt;
  std::transform(hex.begin(), hex.end(), hex.begin(),
                 [](char c) { return (c >= 'A' && c <= 'F') ? static_cast<char>(c - 'A' + 'a') : c; });
  return hex;
}

}  // namespace berth::config
