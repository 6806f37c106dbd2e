#include "providers/lxd/url.hpp"

#include <algorithm>

#include "engine/model/desired.hpp"

namespace berth::lxd {

namespace {

Error bad_url(std::string_view url, std::string_view why) {
  return make_error(ErrorKind::invalid_argument, "invalid URL \"" + std::string{url} + "\": " + std::string{why});
}

Result<Endpoint> endpoint_of(std::string_view input, const config::UrlParse& parsed) {
  if (!parsed.url) return bad_url(input, parsed.problem);
  Endpoint ep;
  if (parsed.url->scheme == config::UrlScheme::unix_socket) {
    ep.scheme = Scheme::unix_socket;
    ep.port = 0;
    ep.socket_path = std::filesystem::path{parsed.url->socket_path};
  } else {
    ep.scheme = Scheme::https;
    ep.host = parsed.url->host;
    ep.port = parsed.url->port;
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
  return endpoint_of(url, config::parse_remote_url(url));
}

Result<std::string> normalize_remote_url(std::string_view input) {
  auto ep = endpoint_of(input, config::parse_remote_address(input));
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

std::string with_project(std::string_view target, std::string_view project) {
  std::string out{target};
  if (project.empty() || project == model::default_project) return out;
  const auto query = out.find('?');
  if (query != std::string::npos) {
    const std::string_view params = std::string_view{out}.substr(query);
    if (params.find("?project=") != std::string_view::npos || params.find("&project=") != std::string_view::npos) {
      return out;
    }
  }
  out += query == std::string::npos ? "?project=" : "&project=";
  out += path_segment(project);
  return out;
}

}  // namespace berth::lxd
