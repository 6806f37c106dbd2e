#pragma once
// berthd's REST API (the LXD 1.0 subset in docs/berthd.md): the route table and its handlers.
// Handlers run on the HTTP servers' threads (one per listener) and must not block: anything slow
// becomes an operation. Shared state is the database (its own lock) and the operations table
// (its own lock); the rest is fixed at start.

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "daemon/api/operation_sockets.hpp"
#include "daemon/api/router.hpp"
#include "daemon/db/database.hpp"
#include "daemon/events/events.hpp"
#include "daemon/operations/operations.hpp"
#include "http/server.hpp"

namespace berth::daemon::api {

// A token bucket: at most `burst` at once, refilled at `per_second`. Each password check costs a
// scrypt (tens of milliseconds, 16 MiB), so guesses are bounded, and so is the time they take from
// trusted clients. Thread-safe.
class AttemptLimiter {
 public:
  AttemptLimiter(double burst, double per_second) : burst_(burst), rate_(per_second), tokens_(burst) {}
  [[nodiscard]] bool try_take();

 private:
  std::mutex mu_;
  double burst_;
  double rate_;
  double tokens_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

// core.https_address as LXD reads it (CanonicalNetworkAddress): "HOST:PORT", "[V6]:PORT", a bare
// address ("127.0.0.1", "::", "[::]") on LXD's port 8443, ":PORT" on every interface. Returns the
// host (no brackets) and port, or what is wrong with `text`.
[[nodiscard]] std::variant<std::pair<std::string, std::uint16_t>, std::string> https_listen_address(
    const std::string& text);

// What the daemon is, as GET /1.0 reports it.
struct ServerIdentity {
  std::string server_name;              // the host name
  std::string certificate_pem;          // the server certificate
  std::string certificate_fingerprint;  // its sha256 hex
  // Where it listens, "host:port" (IPv6 bracketed), as environment.addresses and certificate add
  // tokens carry them; empty when it listens on the unix socket only.
  std::function<std::vector<std::string>()> addresses;
};

class Api {
 public:
  Api(Database& db, Operations& operations, Events& events, ServerIdentity identity);
  // Its routes hold `this`.
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  [[nodiscard]] http::Response handle(const http::Request& request) const { return router_.handle(request); }

  // Whether the request's client is trusted (the unix socket, or a certificate in the trust store).
  [[nodiscard]] bool trusts(const http::Request& request) const;

  // More routes (instances, images), and the API extensions they implement, before serving.
  void add_routes(const std::function<void(Router&)>& add, const std::vector<std::string>& extensions);

  // The channels of websocket operations, which /1.0/operations/{id}/websocket connects.
  [[nodiscard]] OperationSockets& sockets() const { return sockets_; }

  // Moves the HTTPS listener to a new core.https_address ("" stops it) and calls `done` once
  // with nullopt when it listens there, or with why it cannot (then the old listener is kept).
  // Must not block: the work happens on another thread, and `done` may be called from it.
  using Relisten =
      std::function<void(const std::string& address, std::function<void(std::optional<std::string> error)> done)>;
  // Set before serving; without it a changed address is stored only (it counts at the next start).
  void set_relisten(Relisten relisten) { relisten_ = std::move(relisten); }

  // What GET /1.0/metrics answers (Prometheus text), asked per request; set before serving.
  void set_metrics(std::function<std::string()> metrics) { metrics_ = std::move(metrics); }

  // The server config keys berthd accepts: core.https_address, core.trust_password,
  // core.remote_token_expiry and user.*.
  [[nodiscard]] static bool known_config_key(const std::string& key);

 private:
  bool trusted(const http::Request& request, const std::string& fingerprint) const;

  http::Response get_root(const Call& call) const;
  http::Response get_server(const Call& call) const;
  http::Response update_server(const Call& call, bool patch) const;
  http::Response list_certificates(const Call& call) const;
  http::Response add_certificate(const Call& call) const;
  http::Response get_certificate(const Call& call) const;
  http::Response delete_certificate(const Call& call) const;
  std::variant<TrustedCertificate, http::Response> find_certificate(const std::string& prefix) const;
  http::Response list_operations(const Call& call) const;
  http::Response get_operation(const Call& call) const;
  http::Response cancel_operation(const Call& call) const;
  http::Response wait_operation(const Call& call) const;
  http::Response connect_operation(const Call& call) const;
  http::Response get_events(const Call& call) const;
  http::Response get_metrics(const Call& call) const;

  Database& db_;
  std::vector<std::string> extensions_{"certificate_token"};
  Operations& operations_;
  Events& events_;
  mutable OperationSockets sockets_;
  ServerIdentity identity_;
  Relisten relisten_;
  std::function<std::string()> metrics_;
  mutable AttemptLimiter password_attempts_{20, 20};  // a burst of 20, then 20 a second
  Router router_;
};

}  // namespace berth::daemon::api
