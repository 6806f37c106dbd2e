#pragma once
// The transport to one LXD-style daemon: HTTP/1.1 over a unix socket or over TLS, chosen by a
// factory (connect_unix, connect_https, or connect by URL) that returns the same Client type.
//
// Concurrency contract: a Client is one connection and is used by one thread at a time. To issue
// requests in parallel, open several Clients. Requests are synchronous; every connect and read has
// a deadline (Timeouts), so no call can hang forever.
//
// Keep-alive: one connection serves many requests. If the server closed it while idle, the next
// request reconnects transparently (and is retried once if it is idempotent and the failure
// happened before any response byte arrived).
//
// Server authentication over TLS is by pin: the leaf certificate's sha256 fingerprint must equal
// TlsOptions::pinned_fingerprint. There is no hostname or CA verification, so IP-only hosts with
// self-signed certificates work, as with `lxc`. Only image servers that are not pinned are
// verified against the system's CAs instead (TlsOptions::verify_with_system_cas).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/util/limits.hpp"
#include "providers/lxd/result.hpp"
#include "providers/lxd/secret_text.hpp"
#include "providers/lxd/url.hpp"

namespace berth::lxd {

// The bounds of every exchange with a daemon: how long it may take and how much it may send.
struct Timeouts {
  std::chrono::milliseconds connect{10'000};  // TCP/unix connect plus the TLS handshake
  std::chrono::milliseconds read{60'000};     // sending one request and reading its whole response
  // A response body larger than this ends the request with an error that names the limit (the
  // CLI's --max-response-size), before it is held in memory. The default is decided in
  // engine/util/limits.hpp.
  std::uint64_t max_response_bytes = util::InputLimits{}.response_bytes;
};

enum class TlsVersion { tls1_2, tls1_3 };

// The certificate berth presents to a server, with its private key. Both are handed to OpenSSL from
// memory: the transport never writes them anywhere (nor does anything else, but the generation of
// the config dir's own client.key).
struct ClientCertificate {
  std::string certificate_pem;  // the certificate first, then any chain
  SecretText key_pem;
  std::string source;  // where they came from, for messages (never their content)
};

struct TlsOptions {
  // Presented to the server. Null: no client certificate (e.g. to fetch the server's certificate
  // during `remote add`). Shared, read-only: one loaded identity serves every connection.
  std::shared_ptr<const ClientCertificate> client_certificate;
  // Expected sha256 fingerprint of the server's leaf certificate (any spelling
  // config::normalize_fingerprint accepts). Required unless accept_any_server_certificate is set.
  std::string pinned_fingerprint;
  // Accept whatever certificate the server presents and remember it (Client::server_certificate_pem).
  // Only for `remote add`, before the user has confirmed the fingerprint: never send anything that
  // needs trust over such a connection.
  bool accept_any_server_certificate = false;
  // Verify the server the way a web client does instead of by pin: a chain to the system's CAs and
  // the URL's host name (or IP address) in the certificate. For image servers that are not pinned;
  // pinned_fingerprint is then ignored.
  bool verify_with_system_cas = false;
  TlsVersion min_version = TlsVersion::tls1_2;  // TLS 1.3 is negotiated whenever the server has it
};

enum class Method { get, post, put, patch, delete_ };

[[nodiscard]] std::string_view to_string(Method m);

using Headers = std::vector<std::pair<std::string, std::string>>;

enum class ResponseType { sync, async };

// A successful LXD envelope. Error envelopes become Error{kind = server} instead.
struct Response {
  int status = 0;  // HTTP status: 200, 201 (sync with Location) or 202 (async)
  Headers headers;
  ResponseType type = ResponseType::sync;
  std::string operation;    // async: "/1.0/operations/<uuid>"
  nlohmann::json metadata;  // sync: the payload; async: the Operation object

  // Case-insensitive header lookup; empty if absent.
  [[nodiscard]] std::string header(std::string_view name) const;
  // The ETag without its quotes, as PUT's If-Match wants it back.
  [[nodiscard]] std::string etag() const;
  [[nodiscard]] std::string location() const { return header("Location"); }
};

// Turns an HTTP status and body into a Response or an Error (lxd-protocol.md §1.2). `what` names the
// request ("GET /1.0/instances") for error messages. Exposed for tests.
[[nodiscard]] Result<Response> parse_envelope(int http_status, std::string_view body, Headers headers,
                                              std::string_view what);

// Any HTTP answer, read whole (up to Timeouts::max_response_bytes): image server documents that are
// not LXD envelopes.
struct HttpResponse {
  int status = 0;
  Headers headers;
  std::string body;

  // Case-insensitive header lookup; empty if absent.
  [[nodiscard]] std::string header(std::string_view name) const;
};

class Client {
 public:
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();

  // `target` is the path and query, e.g. "/1.0/instances?recursion=1". Never logs or echoes `body`:
  // it may carry a trust password.
  [[nodiscard]] Result<Response> request(Method method, std::string_view target,
                                         const std::optional<nlohmann::json>& body = std::nullopt,
                                         const Headers& headers = {});
  [[nodiscard]] Result<Response> get(std::string_view target) { return request(Method::get, target); }
  // A request whose body is bytes (a file pushed with the file API); the answer is an envelope.
  [[nodiscard]] Result<Response> request_bytes(Method method, std::string_view target, std::string_view body,
                                               const Headers& headers = {});
  // A GET whose answer on success is bytes, not an envelope (a file, an exec's recorded output);
  // bounded by Timeouts::max_response_bytes like every answer.
  [[nodiscard]] Result<std::string> get_bytes(std::string_view target);
  // The same exchange without reading the body as an LXD envelope: any status is returned.
  [[nodiscard]] Result<HttpResponse> request_raw(Method method, std::string_view target,
                                                 const std::optional<nlohmann::json>& body = std::nullopt,
                                                 const Headers& headers = {});

  // The LXD project every later request is about: each target under /1.0/ but /1.0 itself gets
  // `?project=NAME` (with_project) unless it is the default project or the target names one.
  void set_project(std::string project);
  [[nodiscard]] const std::string& project() const;

  // The canonical URL this client talks to ("https://host:port" or "unix:///path").
  [[nodiscard]] const std::string& url() const;
  // TLS only: the server's leaf certificate seen at the latest handshake, and its fingerprint.
  [[nodiscard]] std::optional<std::string> server_certificate_pem() const;
  [[nodiscard]] std::optional<std::string> server_fingerprint() const;
  // Connections opened so far (1 + transparent reconnects); for tests and diagnostics.
  [[nodiscard]] int connections_opened() const;

  struct Impl;

 private:
  struct Exchanged {
    int status = 0;
    std::string body;
    Headers headers;
    std::string what;  // "GET /1.0/...", for messages
  };
  [[nodiscard]] Result<Exchanged> send(Method method, std::string_view target, std::optional<std::string_view> body,
                                       std::string_view content_type, const Headers& headers);

  explicit Client(std::unique_ptr<Impl> impl);
  friend Result<Client> connect_unix(const std::filesystem::path&, const Timeouts&);
  friend Result<Client> connect_https(std::string_view, const TlsOptions&, const Timeouts&);
  std::unique_ptr<Impl> impl_;
};

// Both connect eagerly, so an unreachable host or a wrong pin is reported here, with the URL.
[[nodiscard]] Result<Client> connect_unix(const std::filesystem::path& socket_path, const Timeouts& timeouts = {});
[[nodiscard]] Result<Client> connect_https(std::string_view url, const TlsOptions& tls, const Timeouts& timeouts = {});
// Dispatches on the URL's scheme; `tls` is ignored for unix://.
[[nodiscard]] Result<Client> connect(std::string_view url, const TlsOptions& tls, const Timeouts& timeouts = {});

}  // namespace berth::lxd
