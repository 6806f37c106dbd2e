#include "engine/config/url.hpp"

#include <arpa/inet.h>
#include <sys/un.h>

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

UrlParse fail(std::string why) {
  return UrlParse{std::nullopt, std::move(why)};
}

// Host names as Go's resolver takes them (net.isDomainName: '_' allowed), or dotted IPv4 when
// every label is numeric.
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
    if (!std::all_of(label.begin(), label.end(), [](char c) { return is_alnum(c) || c == '-' || c == '_'; })) {
      return "the host name may contain only ASCII letters, digits, '-', '_' and dots";
    }
    if (label.front() == '-' || label.back() == '-') return "a part of the host name starts or ends with a hyphen";
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  return std::nullopt;
}

// HOST[:PORT], as both remote and image server URLs write it.
UrlParse parse_authority(std::string_view rest, std::uint16_t default_port) {
  RemoteUrl url;
  url.port = default_port;
  std::string_view port;
  bool has_port = false;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return fail("the IPv6 address is missing its closing ']'");
    const std::string_view host = rest.substr(1, close - 1);
    if (host.find('%') != std::string_view::npos) return fail("an IPv6 address with a zone (%) is not supported");
    in6_addr addr{};
    if (host.empty() || inet_pton(AF_INET6, std::string{host}.c_str(), &addr) != 1) {
      return fail("the address in brackets is not a valid IPv6 address");
    }
    url.host = host;
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail("only :PORT may follow the IPv6 address");
      has_port = true;
      port = after.substr(1);
    }
  } else {
    const auto colon = rest.find(':');
    const std::string_view host = rest.substr(0, colon);
    if (colon != std::string_view::npos) {
      if (rest.find(':', colon + 1) != std::string_view::npos) {
        return fail("an IPv6 address must be written in brackets, as https://[ADDRESS]:PORT");
      }
      has_port = true;
      port = rest.substr(colon + 1);
    }
    if (auto p = host_name_problem(host)) return fail(std::move(*p));
    url.host = host;
  }
  if (has_port) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value < 1 || value > 65535) {
      return fail("the port must be a number from 1 to 65535");
    }
    url.port = static_cast<std::uint16_t>(value);
  }
  return UrlParse{std::move(url), {}};
}

UrlParse parse_https(std::string_view rest) {
  // rest is what follows "https://": HOST[:PORT][/]
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#") != std::string_view::npos) return fail("a remote URL has no path, query or fragment");
  if (rest.find('@') != std::string_view::npos) return fail("a remote URL has no user name or password");
  return parse_authority(rest, default_https_port);
}

UrlParse parse_unix(std::string_view rest) {
  // rest is what follows "unix:"
  if (!rest.starts_with("//")) return fail("a socket URL is written unix:///ABSOLUTE/PATH");
  const std::string_view path = rest.substr(2);
  if (!path.starts_with("/")) return fail("a unix socket URL has no host: write unix:///ABSOLUTE/PATH");
  if (path.size() < 2) return fail("the socket path is missing");
  if (path.find('\0') != std::string_view::npos) return fail("the socket path contains a NUL character");
  // A unix socket address holds the path and its terminating NUL.
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return fail("the socket path is longer than " + std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                " bytes, the most a unix socket address holds");
  }
  RemoteUrl url;
  url.scheme = UrlScheme::unix_socket;
  url.port = 0;
  url.socket_path = path;
  return UrlParse{std::move(url), {}};
}

}  // namespace

std::string RemoteUrl::to_string() const {
  if (scheme == UrlScheme::unix_socket) return "unix://" + socket_path;
  const bool ipv6 = host.find(':') != std::string::npos;
  return "https://" + (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

UrlParse parse_remote_url(std::string_view url) {
  if (url.empty()) return fail("the URL is empty");
  if (url.starts_with("https://")) return parse_https(url.substr(8));
  if (url.starts_with("unix:")) return parse_unix(url.substr(5));
  if (url.starts_with("http://")) return fail("plain http is not supported: LXD remotes speak https://");
  if (url.find("://") == std::string_view::npos) {
    return fail("the scheme is missing: write https://HOST[:PORT] or unix:///PATH");
  }
  return fail("the scheme is not supported: only https:// and unix:// are");
}

std::optional<std::string> url_problem(std::string_view url) {
  auto parsed = parse_remote_url(url);
  if (parsed.url) return std::nullopt;
  return std::move(parsed.problem);
}

UrlParse parse_remote_address(std::string_view address) {
  if (address.empty()) return fail("the address is empty");
  if (address.find("://") != std::string_view::npos || address.starts_with("unix:")) {
    return parse_remote_url(address);
  }
  // An unbracketed IPv6 address can carry no port: "::1" is all address.
  if (address.front() == '[' || std::count(address.begin(), address.end(), ':') <= 1) return parse_https(address);
  std::string bracketed;  // built step by step: GCC 12 misreports "[" + std::string (-Wrestrict)
  bracketed.reserve(address.size() + 2);
  bracketed += '[';
  bracketed += address;
  bracketed += ']';
  return parse_https(bracketed);
}

std::string ImageServerUrl::to_string() const {
  // Built step by step: GCC 12 misreports "[" + std::string (-Wrestrict).
  const bool ipv6 = host.find(':') != std::string::npos;
  std::string out = "https://";
  if (ipv6) out += '[';
  out += host;
  if (ipv6) out += ']';
  if (port != default_image_server_port) {
    out += ':';
    out += std::to_string(port);
  }
  out += path;
  return out;
}

ImageServerUrlParse parse_image_server_url(std::string_view url) {
  const auto failed = [](std::string why) { return ImageServerUrlParse{std::nullopt, std::move(why)}; };
  if (url.empty()) return failed("the URL is empty");
  if (url.starts_with("http://")) return failed("plain http is not supported: an image server is read over https://");
  if (!url.starts_with("https://")) return failed("an image server URL starts with https://");
  std::string_view rest = url.substr(8);
  if (rest.find_first_of("?#") != std::string_view::npos) return failed("an image server URL has no query or fragment");
  const auto slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) return failed("an image server URL has no user name or password");
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  // The path is joined with the index's relative paths and sent to the host as written: only
  // characters that need no escaping, and no step that climbs.
  for (const char c : path) {
    if (!is_alnum(c) && std::string_view{"/-._~%+,=:"}.find(c) == std::string_view::npos) {
      return failed("the path may contain only ASCII letters, digits and / - . _ ~ % + , = :");
    }
  }
  if (path.find("//") != std::string_view::npos) return failed("the path has an empty part (//)");
  for (std::size_t start = 1; start < path.size();) {
    const auto end = std::min(path.find('/', start), path.size());
    const std::string_view step = path.substr(start, end - start);
    if (step == "." || step == "..") return failed("the path has a . or .. part");
    start = end + 1;
  }
  auto parsed = parse_authority(authority, default_image_server_port);
  if (!parsed.url) return failed(std::move(parsed.problem));
  return ImageServerUrlParse{ImageServerUrl{parsed.url->host, parsed.url->port, std::string{path}}, {}};
}

std::optional<std::string> normalize_image_fingerprint(std::string_view fingerprint) {
  if (fingerprint.size() != 64 || !std::all_of(fingerprint.begin(), fingerprint.end(), is_hex)) return std::nullopt;
  std::string hex{fingerprint};
  std::transform(hex.begin(), hex.end(), hex.begin(),
                 [](char c) { return (c >= 'A' && c <= 'F') ? static_cast<char>(c - 'A' + 'a') : c; });
  return hex;
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
