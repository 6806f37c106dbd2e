#pragma once
// Remote URLs: `https://host[:port]` (port 8443 by default, IPv6 in brackets) or
// `unix:///absolute/path/to/unix.socket`. Nothing else is a remote. What is valid is decided in one
// place, engine/config/url.hpp, for the fleet file and the provider alike; this is its connection
// side.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "engine/config/url.hpp"
#include "providers/lxd/result.hpp"

namespace berth::lxd {

inline constexpr std::uint16_t default_https_port = config::default_https_port;

enum class Scheme { https, unix_socket };

struct Endpoint {
  Scheme scheme = Scheme::https;
  std::string host;  // https: name or address, IPv6 without brackets
  std::uint16_t port = default_https_port;
  std::filesystem::path socket_path;  // unix: absolute

  [[nodiscard]] bool host_is_ipv6() const;
  [[nodiscard]] bool host_is_ip() const;
  // "host:port", IPv6 bracketed: the HTTP Host header and what error messages show.
  [[nodiscard]] std::string authority() const;
  // The canonical URL: "https://host:port" or "unix:///path".
  [[nodiscard]] std::string to_string() const;

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// config::parse_remote_url: a scheme is required; what the rules refuse is an
// ErrorKind::invalid_argument error that says why.
[[nodiscard]] Result<Endpoint> parse_url(std::string_view url);

// config::parse_remote_address (what `berth remote add NAME HOST` accepts, as `lxc remote add`
// does: a bare `host`, `host:port`, `[v6]:port` or an unbracketed IPv6 address become https URLs),
// as the canonical URL.
[[nodiscard]] Result<std::string> normalize_remote_url(std::string_view input);

// One segment of a request path, percent-encoded: LXD accepts `?`, `#`, `%`, `/` and spaces in
// snapshot and alias names, which must not end the path or start a query. Only A-Z a-z 0-9 - . _ ~
// are left as they are (the server decodes the rest).
[[nodiscard]] std::string path_segment(std::string_view name);

// A request target in an LXD project: `?project=NAME` (or `&project=NAME`) added, as the stock
// client does, only when the project is not the default one (empty counts as default) and the
// target names none yet. The one place that decides how a request carries its project.
[[nodiscard]] std::string with_project(std::string_view target, std::string_view project);

}  // namespace berth::lxd
