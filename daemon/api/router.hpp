#pragma once
// berthd's route table: a path pattern ("/1.0/certificates/{fingerprint}") with a handler per verb
// and who may call it. The router decodes and checks the path once, decides trust once, and maps
// "no such route" and "not allowed" to LXD's envelopes; handlers see a decoded, checked request.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "http/server.hpp"

namespace berth::daemon::api {

// Who may call a handler. `untrusted`: also a client berthd does not trust (GET /1.0, POST
// /1.0/certificates, an operation's /wait and /websocket with its secret).
enum class Access { trusted, untrusted };

struct Call {
  const http::Request& request;
  std::string path;                           // percent-decoded, checked
  std::map<std::string, std::string> query;   // decoded; the first value of each name
  std::map<std::string, std::string> params;  // the pattern's {names}
  bool trusted = false;
  std::string client_fingerprint;  // TLS: sha256 hex of the client's certificate; "" otherwise

  // ?recursion=: 0, 1 or 2 (anything else is 0).
  [[nodiscard]] int recursion() const;

  // The request body as JSON: nullopt (with `error` set) when it is not JSON or not an object.
  [[nodiscard]] std::optional<nlohmann::json> json_object(std::string& error) const;
};

using RouteHandler = std::function<http::Response(const Call&)>;

// Percent-decodes `path`; nullopt when it is malformed (a bad escape), holds NUL, or has a "." or
// ".." segment, an empty segment, or a backslash after decoding.
[[nodiscard]] std::optional<std::string> decode_path(std::string_view path);
// The query's names and values, decoded ('+' is a space); the first value of a name wins.
[[nodiscard]] std::map<std::string, std::string> decode_query(std::string_view query);

class Router {
 public:
  // Whether a request's client is trusted: decided by the daemon (unix socket, fingerprint in the
  // trust store).
  using TrustCheck = std::function<bool(const http::Request&, const std::string& fingerprint)>;

  explicit Router(TrustCheck trust) : trust_(std::move(trust)) {}

  void add(std::string pattern, std::string method, Access access, RouteHandler handler);

  // Never throws: a handler's exception becomes a 500 envelope.
  [[nodiscard]] http::Response handle(const http::Request& request) const;

 private:
  struct Verb {
    Access access;
    RouteHandler handler;
  };
  struct Route {
    std::vector<std::string> segments;  // "{name}" is a parameter
    std::map<std::string, Verb> verbs;
  };
  TrustCheck trust_;
  std::vector<Route> routes_;
};

}  // namespace berth::daemon::api
