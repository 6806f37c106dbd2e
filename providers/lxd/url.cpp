#include "providers/lxd/url.hpp"

#include <algorithm>
#include <charconv>

namespace berth::lxd {

namespace {

Error bad_url(std::string_view url, std::string_view why) {
  return make_error(ErrorKind::invalid_argument, "invalid URL \"" + std::string{url} + "\": " + std::string{why});
}

bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

bool is_ipv6_char(char c) {
  return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':' || c == '.' || c == '%';
}

Result<std::uint16_t> parse_port(std::string_view url, std::string_view text) {
  if (text.empty()) return bad_url(url, "empty port");
  unsigned value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || ptr != text.data() + text.size() || value == 0 || value > 65535) {
    return bad_url(url, "port must be a number from 1 to 65535");
  }
  return static_cast<std::uint16_t>(value);
}

// Parses "host", "host:port", "[v6]" or "[v6]:port" (the part after "https://").
Result<Endpoint> parse_authority(std::string_view url, std::string_view authority) {
  Endpoint ep;
  ep.scheme = Scheme::https;
  if (authority.empty()) return bad_url(url, "missing host");
  if (authority.find('@') != std::string_view::npos) return bad_url(url, "user info is not supported");
  std::string_view port_text;
  bool has_port = false;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return bad_url(url, "unterminated '[' in IPv6 address");
    ep.host = std::string{authority.substr(1, close - 1)};
    if (ep.host.empty() || !std::all_of(ep.host.begin(), ep.host.end(), is_ipv6_char) ||
        ep.host.find(':') == std::string::npos) {
      return bad_url(url, "invalid IPv6 address in brackets");
    }
    const auto rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad_url(url, "unexpected text after ']'");
      port_text = rest.substr(1);
      has_port = true;
    }
  } else {
    const auto colon = authority.find(':');
    if (colon != std::string_view::npos && authority.find(':', colon + 1) != std::string_view::npos) {
      return bad_url(url, "IPv6 addresses must be written in brackets, e.g. https://[::1]:8443");
    }
    ep.host = std::string{authority.substr(0, colon)};
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      has_port = true;
    }
    if (ep.host.empty()) return bad_url(url, "missing host");
    if (!std::all_of(ep.host.begin(), ep.host.end(), is_host_char)) {
      return bad_url(url, "host contains characters that are not allowed");
    }
  }
  if (has_port) {
    auto port = parse_port(url, port_text);
    if (!port) return port.error();
    ep.port = *port;
  }
  return ep;
}

}  // namespace

bool Endpoint::host_is_ipv6() const {
  return host.find(':') != std::string::npos;
}

bool Endpoint::host_is_ip() const {
  if (host_is_ipv6()) return true;
  return !host.empty() &&
         std::all_of(host.begin(), host.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

std::string Endpoint::authority() const {
  if (scheme == Scheme::unix_socket) return "lxd";  // what LXD's own client sends as Host over the socket
  return (host_is_ipv6() ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string Endpoint::to_string() const {
  if (scheme == Scheme::unix_socket) return "unix://" + socket_path.string();
  return "https://" + authority();
}

Result<Endpoint> parse_url(std::string_view url) {
  constexpr std::string_view https_prefix = "https://";
  constexpr std::string_view unix_prefix = "unix://";
  if (url.empty()) return bad_url(url, "empty");
  if (url.starts_with(unix_prefix)) {
    const auto path = url.substr(unix_prefix.size());
    if (path.empty() || path.front() != '/') {
      return bad_url(url, "a unix URL needs an absolute socket path, e.g. unix:///var/lib/lxd/unix.socket");
    }
    if (path.find_first_of("?#") != std::string_view::npos) return bad_url(url, "query or fragment in a unix URL");
    Endpoint ep;
    ep.scheme = Scheme::unix_socket;
    ep.host.clear();
    ep.port = 0;
    ep.socket_path = std::filesystem::path{std::string{path}};
    return ep;
  }
  if (url.starts_with("http://")) return bad_url(url, "plain http is not supported; use https:// or unix://");
  if (!url.starts_with(https_prefix)) {
    return bad_url(url, "expected https://host[:port] or unix:///path/to/unix.socket");
  }
  auto rest = url.substr(https_prefix.size());
  const auto slash = rest.find_first_of("/?#");
  if (slash != std::string_view::npos) {
    // A single trailing slash is harmless; any other path would be silently ignored, so refuse it.
    if (rest.substr(slash) != "/") return bad_url(url, "a remote URL has no path, query or fragment");
    rest = rest.substr(0, slash);
  }
  return parse_authority(url, rest);
}

Result<std::string> normalize_remote_url(std::string_view input) {
  if (input.find("://") != std::string_view::npos) {
    auto ep = parse_url(input);
    if (!ep) return ep.error();
    return ep->to_string();
  }
  std::string authority{input};
  // An unbracketed IPv6 address can carry no port: "::1" is all address.
  if (!authority.empty() && authority.front() != '[' && std::count(authority.begin(), authority.end(), ':') > 1) {
    authority = "[" + authority + "]";
  }
  auto ep = parse_authority(input, authority);
  if (!ep) return ep.error();
  return ep->to_string();
}

std::string path_segment(std::string_view name) {
  // "." and ".." are path steps, not names: spelt out, they cannot climb out of a collection.
  if (name == ".") return "%2E";
  if (name == "..") return "%2E%2E";
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(name.size());
  for (const char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 0x0f]);
    }
  }
  return out;
}

}  // namespace berth::lxd
