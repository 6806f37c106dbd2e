#include "providers/lxd/client.hpp"

#include <poll.h>
#include <algorithm>
#include <cctype>
#include <vector>

// GCC 12 at -O2 reports a null dereference inside Asio's scheduler (a false positive after inlining);
// silenced for these headers only, so that Release builds with -Werror work.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#pragma GCC diagnostic pop
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include "engine/config/url.hpp"
#include "engine/model/desired.hpp"
#include "engine/util/json_parse.hpp"
#include "http/tls.hpp"
#include "providers/lxd/certificate.hpp"
#include "providers/lxd/openssl_util.hpp"

namespace berth::lxd {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using boost::system::error_code;
using HttpRequest = http::request<http::string_body>;

std::string seconds_text(std::chrono::milliseconds ms) {
  const auto count = ms.count();
  if (count % 1000 == 0) return std::to_string(count / 1000) + " s";
  return std::to_string(count) + " ms";
}

// Runs one asynchronous operation to completion on a private io_context. The deadline is the
// stream's own expiry (beast::basic_stream), so a stalled peer ends the operation with
// beast::error::timeout instead of blocking the calling thread.
template <class Initiate>
error_code run_sync(net::io_context& ioc, Initiate&& initiate) {
  error_code result = net::error::would_block;
  initiate([&result](error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run();
  return result;
}

bool is_closed_connection(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
         ec == net::error::broken_pipe || ec == net::error::connection_aborted ||
         ec == net::ssl::error::stream_truncated;
}

// True if the peer closed (or wrote unexpectedly to) a connection we are not reading from.
bool fd_readable(int fd) {
  if (fd < 0) return true;
  pollfd p{fd, static_cast<short>(POLLIN | POLLRDHUP), 0};
  const int n = ::poll(&p, 1, 0);
  return n != 0;  // error or readable: either way the connection is not fit for reuse
}

struct ExchangeState {
  bool got_bytes = false;  // some response bytes arrived: the server saw the request
};

struct RawResponse {
  int status = 0;
  Headers headers;
  std::string body;
  bool keep_alive = true;
};

template <class Stream>
Result<RawResponse> exchange(net::io_context& ioc, Stream& stream, beast::flat_buffer& buffer, HttpRequest& req,
                             const Timeouts& limits, ExchangeState& state, const std::string& what) {
  auto& lowest = beast::get_lowest_layer(stream);
  lowest.expires_after(limits.read);
  error_code ec = run_sync(ioc, [&](auto handler) { http::async_write(stream, req, std::move(handler)); });
  http::response_parser<http::string_body> parser;
  // The parser refuses a larger body as soon as its Content-Length (or its chunks so far) exceed
  // the limit, so a huge answer costs neither the memory nor the time to read it whole. The header
  // is read on its own first: Boost 1.74's parser loses the body_limit error when the header and
  // the start of the body arrive in one read (basic_parser::put goes on into the body after
  // finish_header failed), so with one async_read a Content-Length over the limit went unnoticed.
  parser.body_limit(limits.max_response_bytes);
  if (!ec) {
    ec = run_sync(ioc, [&](auto handler) { http::async_read_header(stream, buffer, parser, std::move(handler)); });
  }
  if (!ec && !parser.is_done()) {
    ec = run_sync(ioc, [&](auto handler) { http::async_read(stream, buffer, parser, std::move(handler)); });
  }
  state.got_bytes = parser.got_some();
  lowest.expires_never();
  if (ec == beast::error::timeout) {
    return make_error(ErrorKind::timeout, what + ": no response within " + seconds_text(limits.read));
  }
  if (ec == http::error::body_limit) {
    return make_error(ErrorKind::protocol, what + ": the answer is larger than " +
                                               util::format_size(limits.max_response_bytes) +
                                               "; if that is expected, raise the limit with --max-response-size");
  }
  if (ec) {
    Error e = make_error(is_closed_connection(ec) ? ErrorKind::connect : ErrorKind::protocol,
                         what + ": " + (is_closed_connection(ec) ? "the server closed the connection" : ec.message()));
    return e;
  }
  auto& res = parser.get();
  RawResponse out;
  out.status = static_cast<int>(res.result_int());
  for (const auto& field : res) out.headers.emplace_back(std::string{field.name_string()}, std::string{field.value()});
  out.body = std::move(res.body());
  out.keep_alive = res.keep_alive();
  return out;
}

// One connection's worth of transport. Implementations own their io_context and stream.
class Transport {
 public:
  virtual ~Transport() = default;
  [[nodiscard]] virtual Result<void> open() = 0;
  [[nodiscard]] virtual bool is_open() = 0;
  [[nodiscard]] virtual bool idle_closed() = 0;
  [[nodiscard]] virtual Result<RawResponse> round_trip(HttpRequest& req, ExchangeState& state,
                                                       const std::string& what) = 0;
  virtual void close() = 0;
  [[nodiscard]] virtual std::optional<std::string> peer_pem() const { return std::nullopt; }
  [[nodiscard]] virtual std::optional<std::string> peer_fingerprint() const { return std::nullopt; }
};

class UnixTransport final : public Transport {
 public:
  UnixTransport(std::filesystem::path path, std::string url, Timeouts timeouts)
      : path_(std::move(path)), url_(std::move(url)), timeouts_(timeouts) {}

  Result<void> open() override {
    close();
    stream_.emplace(ioc_);
    stream_->expires_after(timeouts_.connect);
    const net::local::stream_protocol::endpoint ep(path_.string());
    const error_code ec = run_sync(ioc_, [&](auto handler) { stream_->async_connect(ep, std::move(handler)); });
    stream_->expires_never();
    if (ec) {
      close();
      const std::string why =
          ec == beast::error::timeout ? "timed out after " + seconds_text(timeouts_.connect) : ec.message();
      return make_error(ec == beast::error::timeout ? ErrorKind::timeout : ErrorKind::connect,
                        "cannot connect to " + url_ + ": " + why);
    }
    return {};
  }
  bool is_open() override { return stream_.has_value() && stream_->socket().is_open(); }
  bool idle_closed() override { return !is_open() || fd_readable(stream_->socket().native_handle()); }
  Result<RawResponse> round_trip(HttpRequest& req, ExchangeState& state, const std::string& what) override {
    return exchange(ioc_, *stream_, buffer_, req, timeouts_, state, what);
  }
  void close() override {
    if (stream_) {
      error_code ignored;
      stream_->socket().close(ignored);
      stream_.reset();
    }
    buffer_.clear();
  }

 private:
  net::io_context ioc_;
  std::filesystem::path path_;
  std::string url_;
  Timeouts timeouts_;
  std::optional<beast::basic_stream<net::local::stream_protocol>> stream_;
  beast::flat_buffer buffer_;
};

int no_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) {
  return 0;
}

class TlsTransport final : public Transport {
 public:
  TlsTransport(Endpoint endpoint, Timeouts timeouts) : endpoint_(std::move(endpoint)), timeouts_(timeouts) {}

  Result<void> init(const TlsOptions& options) {
    SSL_CTX* native = ctx_.native_handle();
    SSL_CTX_set_min_proto_version(native, options.min_version == TlsVersion::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_ciphersuites(native, berth::http::tls13_ciphersuites);
    // Resumption would skip the certificate callback on reconnects; every connection re-checks the pin.
    SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(native, SSL_OP_NO_TICKET);
    // An encrypted key fails to load instead of OpenSSL's default callback asking on the terminal.
    SSL_CTX_set_default_passwd_cb(native, no_passphrase);
    if (options.client_certificate) {
      const ClientCertificate& mine = *options.client_certificate;
      error_code ec;
      ctx_.use_certificate_chain(net::buffer(mine.certificate_pem), ec);
      if (ec) {
        return make_error(ErrorKind::io, "cannot load the client certificate (" + mine.source +
                                             "): " + detail::openssl_error_text(ec.message()));
      }
      const std::string_view key = mine.key_pem.view();
      ctx_.use_private_key(net::buffer(key.data(), key.size()), ssl::context::pem, ec);
      if (ec) {
        return make_error(ErrorKind::io, "cannot load the client key (" + mine.source +
                                             "): " + detail::openssl_error_text(ec.message()));
      }
    }
    if (options.verify_with_system_cas) {
      // OpenSSL's own chain verification against the default CA paths (SSL_CERT_FILE/SSL_CERT_DIR
      // or the system store); open() adds the host name or address to match.
      verify_host_ = true;
      SSL_CTX_set_default_verify_paths(native);
      SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
      return {};
    }
    pin_.accept_any = options.accept_any_server_certificate;
    pin_.expected = config::normalize_fingerprint(options.pinned_fingerprint).value_or("");
    if (!pin_.accept_any && pin_.expected.empty()) {
      return make_error(ErrorKind::invalid_argument,
                        "the pinned server fingerprint is not a sha256 fingerprint (64 hex digits)");
    }
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_cert_verify_callback(native, detail::verify_pinned, &pin_);
    return {};
  }

  Result<void> open() override {
    close();
    const std::string url = endpoint_.to_string();
    const auto connect_error = [&](const error_code& ec) {
      const bool timed_out = ec == beast::error::timeout || ec == net::error::operation_aborted;
      return make_error(timed_out ? ErrorKind::timeout : ErrorKind::connect,
                        "cannot connect to " + url + ": " +
                            (timed_out ? "timed out after " + seconds_text(timeouts_.connect) : ec.message()));
    };

    std::vector<net::ip::tcp::endpoint> endpoints;
    error_code ec;
    if (endpoint_.host_is_ip()) {
      // An address needs no resolver (whose first use starts a thread of asio's own).
      const auto address = net::ip::make_address(endpoint_.host, ec);
      if (!ec) endpoints.emplace_back(address, endpoint_.port);
    }
    if (endpoints.empty()) {
      // Name resolution has no stream to carry a deadline, so a timer cancels it.
      net::ip::tcp::resolver resolver(ioc_);
      net::steady_timer timer(ioc_);
      timer.expires_after(timeouts_.connect);
      timer.async_wait([&resolver](error_code e) {
        if (!e) resolver.cancel();
      });
      ec = net::error::would_block;
      resolver.async_resolve(endpoint_.host, std::to_string(endpoint_.port),
                             [&](error_code e, const net::ip::tcp::resolver::results_type& r) {
                               ec = e;
                               for (const auto& entry : r) endpoints.push_back(entry.endpoint());
                               timer.cancel();
                             });
      ioc_.restart();
      ioc_.run();
      if (ec) return connect_error(ec);
    }

    stream_.emplace(ioc_, ctx_);
    auto& tcp = beast::get_lowest_layer(*stream_);
    tcp.expires_after(timeouts_.connect);
    ec = run_sync(ioc_, [&](auto handler) { tcp.async_connect(endpoints, std::move(handler)); });
    if (ec) {
      close();
      return connect_error(ec);
    }
    if (!endpoint_.host_is_ip()) {
      // SNI for proxies in front of the daemon; the certificate is still checked by pin only.
      // (SSL_set_tlsext_host_name is a macro with a C cast; this is what it expands to.)
      SSL_ctrl(stream_->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(endpoint_.host.c_str()));
    }
    if (verify_host_) {
      X509_VERIFY_PARAM* param = SSL_get0_param(stream_->native_handle());
      const int set = endpoint_.host_is_ip() ? X509_VERIFY_PARAM_set1_ip_asc(param, endpoint_.host.c_str())
                                             : X509_VERIFY_PARAM_set1_host(param, endpoint_.host.c_str(), 0);
      if (set != 1) {
        close();
        return make_error(ErrorKind::tls, "cannot verify " + url + ": its host cannot be matched to a certificate");
      }
    }
    pin_.seen_fingerprint.clear();
    pin_.seen_pem.clear();
    tcp.expires_after(timeouts_.connect);
    ec = run_sync(ioc_, [&](auto handler) { stream_->async_handshake(ssl::stream_base::client, std::move(handler)); });
    tcp.expires_never();
    if (ec) {
      // Read before close(), which drops the stream and its SSL object.
      const long result = verify_host_ ? SSL_get_verify_result(stream_->native_handle()) : X509_V_OK;
      close();
      if (verify_host_) {
        if (result != X509_V_OK) {
          return make_error(ErrorKind::tls, "TLS handshake with " + url + " failed: its certificate is not trusted (" +
                                                X509_verify_cert_error_string(result) +
                                                "); pin a self-signed server with certificate:");
        }
      } else if (!pin_.accept_any && !pin_.seen_fingerprint.empty() && pin_.seen_fingerprint != pin_.expected) {
        Error e = make_error(ErrorKind::certificate_mismatch,
                             "server certificate fingerprint " + pin_.seen_fingerprint + " does not match the pinned " +
                                 pin_.expected + "; refusing to talk to it");
        e.presented_fingerprint = pin_.seen_fingerprint;
        return e;
      }
      if (ec == beast::error::timeout) return connect_error(ec);
      return make_error(ErrorKind::tls,
                        "TLS handshake with " + url + " failed: " + detail::openssl_error_text(ec.message()));
    }
    spdlog::debug("lxd {}: connected, {} {}, server certificate {}", url, SSL_get_version(stream_->native_handle()),
                  SSL_get_cipher_name(stream_->native_handle()), pin_.seen_fingerprint);
    return {};
  }

  bool is_open() override { return stream_.has_value() && beast::get_lowest_layer(*stream_).socket().is_open(); }
  bool idle_closed() override {
    return !is_open() || fd_readable(beast::get_lowest_layer(*stream_).socket().native_handle());
  }
  Result<RawResponse> round_trip(HttpRequest& req, ExchangeState& state, const std::string& what) override {
    return exchange(ioc_, *stream_, buffer_, req, timeouts_, state, what);
  }
  void close() override {
    if (stream_) {
      // No TLS close_notify: it could block on a dead peer, and LXD does not need it.
      error_code ignored;
      beast::get_lowest_layer(*stream_).socket().close(ignored);
      stream_.reset();
    }
    buffer_.clear();
  }
  std::optional<std::string> peer_pem() const override {
    if (pin_.seen_pem.empty()) return std::nullopt;
    return pin_.seen_pem;
  }
  std::optional<std::string> peer_fingerprint() const override {
    if (pin_.seen_fingerprint.empty()) return std::nullopt;
    return pin_.seen_fingerprint;
  }

 private:
  net::io_context ioc_;
  ssl::context ctx_{ssl::context::tls_client};
  Endpoint endpoint_;
  Timeouts timeouts_;
  detail::PinState pin_;
  bool verify_host_ = false;  // verify_with_system_cas: the CAs and the host name decide, not the pin
  std::optional<beast::ssl_stream<beast::tcp_stream>> stream_;
  beast::flat_buffer buffer_;
};

http::verb to_verb(Method m) {
  switch (m) {
    case Method::get: return http::verb::get;
    case Method::post: return http::verb::post;
    case Method::put: return http::verb::put;
    case Method::patch: return http::verb::patch;
    case Method::delete_: return http::verb::delete_;
  }
  return http::verb::get;
}

bool is_idempotent(Method m) {
  return m == Method::get || m == Method::put || m == Method::delete_;
}

// Secrets travel in query strings (operation websockets, image downloads): keep them out of logs.
std::string redact_target(std::string_view target) {
  std::string out{target};
  for (std::size_t pos = out.find("secret="); pos != std::string::npos; pos = out.find("secret=", pos + 1)) {
    const std::size_t start = pos + 7;
    const std::size_t end = out.find('&', start);
    out.replace(start, (end == std::string::npos ? out.size() : end) - start, "***");
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::string_view to_string(Method m) {
  switch (m) {
    case Method::get: return "GET";
    case Method::post: return "POST";
    case Method::put: return "PUT";
    case Method::patch: return "PATCH";
    case Method::delete_: return "DELETE";
  }
  return "?";
}

namespace {
std::string find_header(const Headers& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return {};
}
}  // namespace

std::string Response::header(std::string_view name) const {
  return find_header(headers, name);
}

std::string HttpResponse::header(std::string_view name) const {
  return find_header(headers, name);
}

std::string Response::etag() const {
  std::string e = header("ETag");
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return e;
}

Result<Response> parse_envelope(int http_status, std::string_view body, Headers headers, std::string_view what) {
  const std::string w{what};
  // Bounded nesting: copies and dumps of JSON recurse once per level, so a deeply nested answer
  // would overflow the stack later. Not const: the metadata is moved out below. Copying it cost
  // 0.65 s and twice the memory for a 40 MB instance list.
  auto parsed = util::parse_bounded_json(body);
  if (parsed.problem == util::JsonProblem::too_deep && http_status < 400) {
    return make_error(ErrorKind::protocol, w + ": the response is nested more than " +
                                               std::to_string(util::max_json_depth) + " levels deep");
  }
  auto& doc = parsed.value;
  if (parsed.problem != util::JsonProblem::none || !doc.is_object() || !doc.contains("type") ||
      !doc["type"].is_string()) {
    if (http_status >= 400) {
      Error e = make_error(ErrorKind::server, w + " failed: HTTP " + std::to_string(http_status));
      e.http_status = http_status;
      return e;
    }
    return make_error(ErrorKind::protocol,
                      w + ": the response is not an LXD JSON envelope (HTTP " + std::to_string(http_status) + ")");
  }
  const std::string type = doc["type"].get<std::string>();
  if (type == "error" || http_status >= 400) {
    std::string text;
    if (const auto it = doc.find("error"); it != doc.end() && it->is_string()) text = it->get<std::string>();
    Error e = make_error(ErrorKind::server, w + " failed: " + (text.empty() ? "error" : text) + " (HTTP " +
                                                std::to_string(http_status) + ")");
    e.http_status = http_status;
    e.lxd_error = text;
    return e;
  }
  Response r;
  r.status = http_status;
  r.headers = std::move(headers);
  if (const auto it = doc.find("metadata"); it != doc.end()) r.metadata = std::move(*it);
  if (type == "sync") {
    r.type = ResponseType::sync;
  } else if (type == "async") {
    r.type = ResponseType::async;
    if (const auto it = doc.find("operation"); it != doc.end() && it->is_string()) r.operation = it->get<std::string>();
    if (r.operation.empty()) r.operation = r.location();
    if (r.operation.empty()) return make_error(ErrorKind::protocol, w + ": async response without an operation");
  } else {
    return make_error(ErrorKind::protocol, w + ": unknown response type \"" + type + "\"");
  }
  return r;
}

struct Client::Impl {
  Endpoint endpoint;
  std::string url;
  Timeouts timeouts;
  std::unique_ptr<Transport> transport;
  int opened = 0;
  bool used = false;  // the current connection has served a request
  std::string project{model::default_project};

  Result<void> open() {
    used = false;
    auto r = transport->open();
    if (r) ++opened;
    return r;
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

const std::string& Client::url() const {
  return impl_->url;
}
std::optional<std::string> Client::server_certificate_pem() const {
  return impl_->transport->peer_pem();
}
std::optional<std::string> Client::server_fingerprint() const {
  return impl_->transport->peer_fingerprint();
}
int Client::connections_opened() const {
  return impl_->opened;
}

void Client::set_project(std::string project) {
  impl_->project = std::move(project);
}
const std::string& Client::project() const {
  return impl_->project;
}

Result<Response> Client::request(Method method, std::string_view raw_target, const std::optional<nlohmann::json>& body,
                                 const Headers& headers) {
  std::optional<std::string> text;
  // Replace, not throw: a value from a fleet file is not guaranteed to be valid UTF-8.
  if (body) text = body->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  auto raw = send(method, raw_target, text ? std::optional<std::string_view>{*text} : std::nullopt, "application/json",
                  headers);
  if (!raw) return raw.error();
  return parse_envelope(raw->status, raw->body, std::move(raw->headers), raw->what);
}

Result<Response> Client::request_bytes(Method method, std::string_view target, std::string_view body,
                                       const Headers& headers) {
  auto raw = send(method, target, body, "application/octet-stream", headers);
  if (!raw) return raw.error();
  return parse_envelope(raw->status, raw->body, std::move(raw->headers), raw->what);
}

Result<std::string> Client::get_bytes(std::string_view target) {
  auto raw = send(Method::get, target, std::nullopt, {}, {});
  if (!raw) return raw.error();
  if (raw->status == 200) return std::move(raw->body);
  // Not the bytes: an error envelope (or something else that is not what was asked for).
  auto parsed = parse_envelope(raw->status, raw->body, std::move(raw->headers), raw->what);
  if (!parsed) return parsed.error();
  return make_error(ErrorKind::protocol, raw->what + ": HTTP " + std::to_string(raw->status));
}

Result<HttpResponse> Client::request_raw(Method method, std::string_view target,
                                         const std::optional<nlohmann::json>& body, const Headers& headers) {
  std::optional<std::string> text;
  if (body) text = body->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  auto raw =
      send(method, target, text ? std::optional<std::string_view>{*text} : std::nullopt, "application/json", headers);
  if (!raw) return raw.error();
  return HttpResponse{raw->status, std::move(raw->headers), std::move(raw->body)};
}

// Every request about /1.0/ carries the client's project (with_project adds ?project= outside
// default), so no caller can forget it.
Result<Client::Exchanged> Client::send(Method method, std::string_view raw_target, std::optional<std::string_view> body,
                                       std::string_view content_type, const Headers& headers) {
  const std::string target =
      raw_target.starts_with("/1.0/") ? with_project(raw_target, impl_->project) : std::string{raw_target};
  const std::string what = std::string{to_string(method)} + " " + redact_target(target);
  HttpRequest req{to_verb(method), target, 11};
  // As Go's client writes it: no port when it is https' default (image servers behind CDNs route by
  // the host name).
  std::string host = impl_->endpoint.authority();
  if (impl_->endpoint.scheme == Scheme::https && impl_->endpoint.port == 443) host.resize(host.size() - 4);
  req.set(http::field::host, host);
  req.set(http::field::user_agent, "berth/0.1");
  req.set(http::field::accept, "application/json");
  for (const auto& [k, v] : headers) req.set(k, v);
  if (body) {
    req.set(http::field::content_type, std::string{content_type});
    req.body() = std::string{*body};
  }
  req.keep_alive(true);
  req.prepare_payload();

  const auto started = std::chrono::steady_clock::now();
  for (int attempt = 0;; ++attempt) {
    auto& t = *impl_->transport;
    if (!t.is_open() || (impl_->used && t.idle_closed())) {
      if (auto opened = impl_->open(); !opened) return opened.error();
    }
    const bool reused = impl_->used;
    ExchangeState state;
    auto raw = t.round_trip(req, state, what);
    if (!raw) {
      t.close();
      // A kept-alive connection the server dropped just as we used it: the request never reached
      // the server, so sending it again on a fresh connection is safe for idempotent methods.
      if (attempt == 0 && reused && !state.got_bytes && raw.error().kind == ErrorKind::connect &&
          is_idempotent(method)) {
        spdlog::debug("lxd {}: {} on a reused connection failed ({}); reconnecting", impl_->url, what,
                      raw.error().message);
        continue;
      }
      return raw.error();
    }
    impl_->used = true;
    if (!raw->keep_alive) t.close();
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
    spdlog::debug("lxd {}: {} -> {} ({} bytes, {} ms)", impl_->url, what, raw->status, raw->body.size(), ms);
    return Exchanged{raw->status, std::move(raw->body), std::move(raw->headers), what};
  }
}

Result<Client> connect_unix(const std::filesystem::path& socket_path, const Timeouts& timeouts) {
  if (!socket_path.is_absolute()) {
    return make_error(ErrorKind::invalid_argument, "unix socket path must be absolute: " + socket_path.string());
  }
  auto impl = std::make_unique<Client::Impl>();
  impl->endpoint.scheme = Scheme::unix_socket;
  impl->endpoint.port = 0;
  impl->endpoint.socket_path = socket_path;
  impl->url = impl->endpoint.to_string();
  impl->timeouts = timeouts;
  impl->transport = std::make_unique<UnixTransport>(socket_path, impl->url, timeouts);
  if (auto r = impl->open(); !r) return r.error();
  return Client{std::move(impl)};
}

Result<Client> connect_https(std::string_view url, const TlsOptions& tls, const Timeouts& timeouts) {
  auto ep = parse_url(url);
  if (!ep) return ep.error();
  if (ep->scheme != Scheme::https) {
    return make_error(ErrorKind::invalid_argument, "connect_https needs an https:// URL, not " + std::string{url});
  }
  auto impl = std::make_unique<Client::Impl>();
  impl->endpoint = *ep;
  impl->url = ep->to_string();
  impl->timeouts = timeouts;
  auto transport = std::make_unique<TlsTransport>(*ep, timeouts);
  if (auto r = transport->init(tls); !r) return r.error();
  impl->transport = std::move(transport);
  if (auto r = impl->open(); !r) return r.error();
  return Client{std::move(impl)};
}

Result<Client> connect(std::string_view url, const TlsOptions& tls, const Timeouts& timeouts) {
  auto ep = parse_url(url);
  if (!ep) return ep.error();
  if (ep->scheme == Scheme::unix_socket) return connect_unix(ep->socket_path, timeouts);
  return connect_https(url, tls, timeouts);
}

}  // namespace berth::lxd
