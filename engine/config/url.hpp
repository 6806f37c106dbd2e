#pragma once
// The one home of the rules for a remote's address and certificate fingerprint: the fleet file,
// `berth remote add`, `berth remote import-lxc` and the LXD provider all decide with these
// functions (remote names are in names.hpp). Pure string checks: nothing here resolves a name or
// opens a connection.
//
// A remote URL is https://HOST[:PORT][/] or unix:///ABSOLUTE/PATH:
//   - HOST is a host name, a dotted IPv4 address, or an IPv6 address in brackets (no zone);
//   - a host name is dot-separated labels of 1-63 ASCII letters, digits, '-' and '_', no label
//     starting or ending with '-', at most 253 characters, optionally ending with '.'. This is
//     what Go's resolver, and so the `lxc` client, accepts; berth pins servers by fingerprint and
//     never matches a name against a certificate, so '_' is as safe as any other character;
//   - PORT is 1-65535 (default 8443);
//   - no user name, path, query or fragment (one trailing '/' is allowed);
//   - the socket path is absolute, without NUL, and short enough for a unix socket address.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace berth::config {

inline constexpr std::uint16_t default_https_port = 8443;

enum class UrlScheme { https, unix_socket };

struct RemoteUrl {
  UrlScheme scheme = UrlScheme::https;
  std::string host;  // https: a host name or address; IPv6 without brackets
  std::uint16_t port = default_https_port;
  std::string socket_path;  // unix: absolute

  // The canonical form: https://host:port (IPv6 in brackets) or unix:///path.
  [[nodiscard]] std::string to_string() const;
};

// A parsed URL, or why the text is not one. The reason never quotes the text, so that it can be
// shown for a value that came from the environment.
struct UrlParse {
  std::optional<RemoteUrl> url;
  std::string problem;  // set exactly when url is not
};

[[nodiscard]] UrlParse parse_remote_url(std::string_view url);

// parse_remote_url's reason, or nullopt for a valid URL.
[[nodiscard]] std::optional<std::string> url_problem(std::string_view url);

// What `berth remote add NAME ADDRESS` takes, as `lxc remote add` does: a URL, or a bare `host`,
// `host:port`, `[v6]:port` or unbracketed IPv6 address, which mean https. The same rules apply.
[[nodiscard]] UrlParse parse_remote_address(std::string_view address);

// An image server (`images: {NAME: {server: URL}}`): https://HOST[:PORT][/PATH]. HOST and PORT
// follow the remote rules above, but the port defaults to 443 as for any https URL, and a path is
// allowed (simplestreams trees often live below one, e.g. /releases): ASCII letters, digits and
// / - . _ ~ % + , = :, no empty, . or .. part, no query or fragment. Trailing '/'s are dropped.
inline constexpr std::uint16_t default_image_server_port = 443;

struct ImageServerUrl {
  std::string host;  // IPv6 without brackets
  std::uint16_t port = default_image_server_port;
  std::string path;  // "" or "/a/b"
  // The canonical form: https://host[:port]/path, the port only when it is not 443.
  [[nodiscard]] std::string to_string() const;
};

struct ImageServerUrlParse {
  std::optional<ImageServerUrl> url;
  std::string problem;  // set exactly when url is not; never quotes the text
};

[[nodiscard]] ImageServerUrlParse parse_image_server_url(std::string_view url);

// An image fingerprint as LXD names images: 64 hex digits (any case), as 64 lowercase ones.
[[nodiscard]] std::optional<std::string> normalize_image_fingerprint(std::string_view fingerprint);

// "sha256:<64 hex>", "<64 hex>" or 32 colon-separated hex pairs (as `openssl x509 -fingerprint
// -sha256` prints them), the hex digits in any case, as 64 lowercase hex digits; nullopt when it is
// none of those.
[[nodiscard]] std::optional<std::string> normalize_fingerprint(std::string_view fingerprint);

}  // namespace berth::config
