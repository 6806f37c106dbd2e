#include "http/server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <deque>
#include <exception>
#include <future>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <unordered_set>
#include <utility>

// GCC 12 at -O2 reports a null dereference inside Asio's scheduler (a false positive after inlining);
// silenced for these headers only, as in providers/lxd/client.cpp.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#pragma GCC diagnostic pop
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/tls.hpp"

namespace berth::http {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace websocket = beast::websocket;
using boost::system::error_code;
using tcp = net::ip::tcp;

// How long a closing connection waits for the client to finish sending (so that the kernel does
// not reset the connection, and the client its unread answer, over data we never read), and how
// much it reads and throws away meanwhile.
constexpr std::chrono::seconds drain_time{2};
constexpr std::size_t drain_limit = 1024 * 1024;
// After a failed accept (out of descriptors, say), before the next one: not a busy loop.
constexpr std::chrono::milliseconds accept_retry{100};

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// The one rule for hosts: what listen() binds and parse_listen_address() accepts.
std::variant<net::ip::address, std::string> address_of(std::string_view host) {
  if (host.empty()) return std::string{"the host is empty"};
  if (lower(host) == "localhost") return net::ip::address{net::ip::address_v4::loopback()};
  error_code ec;
  const auto address = net::ip::make_address(std::string(host), ec);
  if (ec) return "'" + std::string(host) + "' is not an IP address or localhost";
  return address;
}

std::string endpoint_text(const tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return host + ":" + std::to_string(endpoint.port());
}

// The one place that decides how a failed step is logged: a client going away, an idle keep-alive
// connection timing out or a connection closed by stop() is routine; anything else is a failure.
void fail(const error_code& ec, std::string_view what, std::string_view peer) {
  if (ec == net::error::operation_aborted || ec == net::error::bad_descriptor || ec == bhttp::error::end_of_stream ||
      ec == net::error::eof || ec == net::error::connection_reset || ec == net::error::broken_pipe) {
    spdlog::debug("http: {} {}: {}", peer, what, ec.message());
    return;
  }
  spdlog::warn("http: {} {}: {}", peer, what, ec.message());
}

bool is_token(std::string_view name) {
  static constexpr std::string_view specials = "!#$%&'*+-.^_`|~";
  return !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) != 0 || specials.find(static_cast<char>(c)) != std::string_view::npos;
  });
}

bool is_owned_header(std::string_view name) {
  const auto n = lower(name);
  return n == "content-length" || n == "content-type" || n == "cache-control" || n == "connection" ||
         n == "transfer-encoding";
}

// Errors map to an HTTP status in one place; the bodies say nothing about the server's insides.
Response error_response(int status, std::string_view text) {
  Response response;
  response.status = status;
  response.body = std::string(text) + "\n";
  return response;
}

// What a request that could not be read is answered, or nothing when there is no one to answer.
std::optional<Response> answer_to_read_error(const error_code& ec, std::size_t body_limit) {
  if (ec == bhttp::error::body_limit) {
    return error_response(413, "request body too large (limit " + std::to_string(body_limit) + " bytes)");
  }
  if (ec == bhttp::error::header_limit) return error_response(431, "request header fields too large");
  if (ec == bhttp::error::end_of_stream) return std::nullopt;
  if (ec.category() == make_error_code(bhttp::error::bad_target).category()) {
    return error_response(400, "bad request");
  }
  return std::nullopt;
}

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // From Server::stop(): every pending step ends with operation_aborted, and so does the session.
  virtual void stop() = 0;
};

// Posts work onto the server thread from any thread, until the server stops; after that a post
// does nothing (the io_context may be gone).
class PostGate {
 public:
  explicit PostGate(net::io_context& ioc) : ioc_(&ioc) {}
  void post(std::function<void()> work) {
    const std::lock_guard lock(mu_);
    if (ioc_ != nullptr) net::post(*ioc_, std::move(work));
  }
  void close() {
    const std::lock_guard lock(mu_);
    ioc_ = nullptr;
  }

 private:
  std::mutex mu_;
  net::io_context* ioc_;
};

// What sessions share with the listener. Only the server thread touches it (the gate excepted).
struct Shared {
  Handler handler;
  ServerOptions options;
  std::unordered_set<SessionBase*> sessions;
  bool stopping = false;
  std::shared_ptr<PostGate> gate;
};

using UnixStream = beast::basic_stream<net::local::stream_protocol>;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

template <class Stream>
constexpr bool is_tls = std::is_same_v<Stream, TlsStream>;

// The client's certificate (DER) on a TLS stream, "" if it sent none or on any other stream.
template <class Stream>
std::string peer_certificate_of(Stream& stream) {
  if constexpr (is_tls<Stream>) {
    X509* cert = SSL_get1_peer_certificate(stream.native_handle());
    if (cert == nullptr) return {};
    std::string der;
    const int length = i2d_X509(cert, nullptr);
    if (length > 0) {
      der.resize(static_cast<std::size_t>(length));
      auto* out = reinterpret_cast<unsigned char*>(der.data());
      if (i2d_X509(cert, &out) != length) der.clear();
    }
    X509_free(cert);
    return der;
  } else {
    (void)stream;
    return {};
  }
}

// A websocket connection, after the HTTP upgrade: reads messages into on_message, writes a queue
// of messages one at a time, closes on a close frame, an error, stop(), or a full queue.
template <class Stream>
class WsSession final : public SessionBase, public WebSocket, public std::enable_shared_from_this<WsSession<Stream>> {
 public:
  // The session is registered with the listener until it ends, on the server thread; the
  // application may hold it longer, from any thread, and then touches only what it owns.
  WsSession(Stream stream, Shared& shared, std::string peer)
      : ws_(std::move(stream)), shared_(shared), gate_(shared.gate), peer_(std::move(peer)) {
    shared_.sessions.insert(this);
  }
  ~WsSession() override { unregister(); }
  WsSession(const WsSession&) = delete;
  WsSession& operator=(const WsSession&) = delete;

  void run(bhttp::request<bhttp::string_body> request, std::function<void(std::shared_ptr<WebSocket>)> accepted) {
    // The websocket's own timeouts (idle with pings) replace the HTTP ones.
    beast::get_lowest_layer(ws_).expires_never();
    // A quiet peer is pinged (and answers by itself, as every websocket library does) rather than
    // dropped: an idle interactive exec, or a migration's control channel while the fs channel
    // carries gigabytes, stays open; a peer that is gone is still noticed within the idle timeout.
    auto timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
    timeouts.keep_alive_pings = true;
    ws_.set_option(timeouts);
    // A message goes out as one frame, written in large pieces: Beast's default cuts it into
    // frames of 4 KiB, each its own TLS record and system call (a migration's fs channel carries
    // gigabytes).
    ws_.auto_fragment(false);
    ws_.write_buffer_bytes(64 * 1024);
    ws_.async_accept(request, [self = this->shared_from_this(), accepted = std::move(accepted)](error_code ec) {
      if (ec) {
        self->unregister();
        return fail(ec, "websocket handshake", self->peer_);
      }
      self->open_ = true;
      accepted(self);
      self->do_read();
    });
  }

  void send_text(std::string message) override { enqueue(std::move(message), true); }
  void send_binary(std::string message) override { enqueue(std::move(message), false); }
  void close() override {
    // Through the gate: once the server stopped, nothing is posted to its io_context.
    gate_->post([self = this->shared_from_this()] {
      self->closing_ = true;
      if (!self->writing_) self->do_close();
    });
  }
  void abort() override {
    gate_->post([self = this->shared_from_this()] { self->stop(); });
  }
  [[nodiscard]] bool is_open() const override { return open_; }
  [[nodiscard]] std::size_t queued_bytes() const override { return queued_bytes_; }
  [[nodiscard]] std::size_t queued_messages() const override { return queued_messages_; }
  void pause_reading(bool paused) override {
    gate_->post([self = this->shared_from_this(), paused] {
      self->read_paused_ = paused;
      if (!paused && self->open_ && !self->reading_) self->do_read();
    });
  }

  // From stop().
  void stop() override { beast::get_lowest_layer(ws_).close(); }

 private:
  void enqueue(std::string message, bool text) {
    queued_bytes_ += message.size();
    ++queued_messages_;
    gate_->post([self = this->shared_from_this(), message = std::move(message), text]() mutable {
      if (!self->open_ || self->closing_) {
        self->queued_bytes_ -= message.size();
        --self->queued_messages_;
        return;
      }
      if (self->queue_.size() >= max_queued_messages) {
        self->queued_bytes_ -= message.size();
        --self->queued_messages_;
        spdlog::warn("http: {} websocket: {} messages wait unread; disconnected", self->peer_, self->queue_.size());
        return self->stop();
      }
      self->queue_.emplace_back(std::move(message), text);
      if (!self->writing_) self->do_write();
    });
  }

  void do_read() {
    reading_ = true;
    ws_.async_read(buffer_, [self = this->shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(error_code ec) {
    reading_ = false;
    if (ec) {
      if (ec != websocket::error::closed) fail(ec, "websocket read", peer_);
      return ended();
    }
    const std::string message = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    if (on_message) {
      try {
        on_message(message, ws_.got_text());
      } catch (const std::exception& e) {
        spdlog::error("http: {} websocket: the message handler failed: {}", peer_, e.what());
      }
    }
    if (!read_paused_) do_read();
  }

  void do_write() {
    cork(true);
    writing_ = true;
    ws_.text(queue_.front().second);
    ws_.async_write(net::buffer(queue_.front().first),
                    [self = this->shared_from_this()](error_code ec, std::size_t) { self->on_write(ec); });
  }

  void on_write(error_code ec) {
    writing_ = false;
    if (ec) {
      fail(ec, "websocket write", peer_);
      return stop();
    }
    queued_bytes_ -= queue_.front().first.size();
    --queued_messages_;
    queue_.pop_front();
    if (on_written) {
      try {
        on_written();
      } catch (const std::exception& e) {
        spdlog::error("http: {} websocket: the written handler failed: {}", peer_, e.what());
      }
    }
    if (!queue_.empty()) return do_write();
    cork(false);
    if (closing_) do_close();
  }

  // While messages are written back to back, TCP sends full segments only (the last one goes at
  // the uncork): TLS hands the socket one record of 16 KiB per system call, and without the cork
  // each would travel as its own packet, with its own wake-up of the reader.
  void cork(bool on) {
    if (corked_ == on) return;
    corked_ = on;
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      const int value = on ? 1 : 0;
      (void)::setsockopt(beast::get_lowest_layer(ws_).socket().native_handle(), IPPROTO_TCP, TCP_CORK, &value,
                         sizeof value);
    }
  }

  // Once: a websocket takes one close handshake, and Beast never completes a second async_close
  // started while the first one runs (it waits for a write lock the first gives back without
  // waking it), which would keep this session and the io_context, and so stop(), forever.
  void do_close() {
    if (std::exchange(close_started_, true)) return;
    ws_.async_close(websocket::close_code::normal, [self = this->shared_from_this()](error_code) {});
  }

  // Once, however the socket ended; on the server thread.
  void ended() {
    unregister();
    if (!open_) return;
    open_ = false;
    if (on_close) on_close();
    on_message = nullptr;
    on_close = nullptr;
    on_written = nullptr;
  }

  // On the server thread (or in the destructor when it never left it).
  void unregister() {
    if (!registered_) return;
    registered_ = false;
    shared_.sessions.erase(this);
  }

  websocket::stream<Stream> ws_;
  Shared& shared_;
  std::shared_ptr<PostGate> gate_;
  bool registered_ = true;
  std::string peer_;
  beast::flat_buffer buffer_;
  std::deque<std::pair<std::string, bool>> queue_;
  std::atomic<std::size_t> queued_bytes_{0};  // sent by the application, not yet written
  std::atomic<std::size_t> queued_messages_{0};
  bool corked_ = false;
  bool writing_ = false;
  bool closing_ = false;
  bool close_started_ = false;
  bool reading_ = false;
  bool read_paused_ = false;
  std::atomic<bool> open_{false};
};

// One HTTP/1.1 connection: (a TLS handshake,) read a request, answer it, read the next, until the
// client closes, a timeout, an error answer that ends the connection, or stop(). One response is
// written at a time and the next request is not read before it is out, so the write queue is
// bounded at one.
template <class Stream>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(Stream stream, Shared& shared, std::string peer)
      : stream_(std::move(stream)), shared_(shared), peer_(std::move(peer)) {
    continue_.result(bhttp::status::continue_);
    continue_.version(11);
    shared_.sessions.insert(this);
  }
  ~Session() override { shared_.sessions.erase(this); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void run() {
    if constexpr (is_tls<Stream>) {
      layer().expires_after(shared_.options.timeout);
      stream_.async_handshake(net::ssl::stream_base::server, [self = this->shared_from_this()](error_code ec) {
        if (ec) {
          fail(ec, "TLS handshake", self->peer_);
          return self->do_close();
        }
        self->peer_certificate_ = peer_certificate_of(self->stream_);
        self->do_read();
      });
    } else {
      do_read();
    }
  }

  void stop() override {
    layer().close();
    defer_timer_.cancel();
  }

 private:
  auto& layer() { return beast::get_lowest_layer(stream_); }

  // A fresh parser per request: its body limit and state start over.
  void do_read() {
    body_timeout_ = {};
    body_limit_ = shared_.options.body_limit;
    parser_.emplace();
    // With a limit per request, the header decides it (on_read_header); until then none applies.
    // (Not boost::none: Beast 1.74 compares a length with an empty limit as "too large".)
    if (shared_.options.body_limit_for) {
      parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    } else {
      parser_->body_limit(body_limit_);
    }
    layer().expires_after(shared_.options.timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_, [self = this->shared_from_this()](error_code ec, std::size_t) {
      self->on_read_header(ec);
    });
  }

  void on_read_header(error_code ec) {
    if (ec) return on_read_error(ec);
    if (shared_.options.body_limit_for) {
      const auto limit = shared_.options.body_limit_for(request_of(parser_->get(), {}));
      if (limit > body_limit_) {
        body_limit_ = limit;
        body_timeout_ = shared_.options.large_body_timeout;
      }
      const auto length = parser_->content_length();
      if (length && *length > body_limit_) return on_read_error(bhttp::error::body_limit);
      parser_->body_limit(body_limit_);
    }
    if (parser_->is_done()) return on_read({});
    if (lower(std::string(parser_->get()[bhttp::field::expect])) == "100-continue") return do_continue();
    do_read_body();
  }

  // The client waits for a 100 before it sends the body (curl does for larger ones).
  void do_continue() {
    layer().expires_after(shared_.options.timeout);
    bhttp::async_write(stream_, continue_, [self = this->shared_from_this()](error_code ec, std::size_t) {
      if (ec) return fail(ec, "write 100 Continue", self->peer_);
      self->do_read_body();
    });
  }

  void do_read_body() {
    layer().expires_after(std::max(shared_.options.timeout, body_timeout_));
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = this->shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read_error(error_code ec) {
    if (ec == beast::error::timeout && !parser_->got_some() && buffer_.size() == 0) {
      spdlog::debug("http: {} idle, closed", peer_);
      return do_close();
    }
    if (auto answer = answer_to_read_error(ec, body_limit_)) {
      spdlog::warn("http: {} bad request: {}; answered {}", peer_, ec.message(), answer->status);
      return do_write(std::move(*answer), false, 11, false);
    }
    fail(ec, "read", peer_);
    do_close();
  }

  void on_read(error_code ec) {
    if (ec) return on_read_error(ec);
    auto& req = parser_->get();
    const bool head = req.method() == bhttp::verb::head;
    const Request request = request_of(req, std::move(req.body()));
    Response response = call_handler(request);
    spdlog::debug("http: {} {} {} -> {} ({} bytes)", peer_, std::string(req.method_string()), path_of(request.target),
                  response.status, response.body.size());
    if (response.accept_websocket) {
      if (request.websocket_upgrade) return upgrade(std::move(response.accept_websocket));
      response = error_response(400, "not a websocket upgrade");
    }
    if (response.deferred) return defer(std::move(response.deferred), head, req.version(), req.keep_alive());
    do_write(std::move(response), head, req.version(), req.keep_alive());
  }

  // Waits for the deferred answer or its timeout, whichever comes first; the connection reads
  // nothing meanwhile (HTTP/1.1 answers in order).
  void defer(std::shared_ptr<Deferred> deferred, bool head, unsigned version, bool keep_alive) {
    // Each deferred request has its own generation: a reply (or timer) of an earlier one on this
    // connection, arriving late, must not answer this one.
    const std::uint64_t generation = ++defer_generation_;
    const auto answer = [head, version, keep_alive, generation](Session& self, Response response) {
      if (self.answered_ || self.defer_generation_ != generation) return;
      self.answered_ = true;
      self.defer_timer_.cancel();
      self.do_write(std::move(response), head, version, keep_alive);
    };
    answered_ = false;
    layer().expires_never();
    defer_timer_.expires_after(deferred->timeout);
    defer_timer_.async_wait([self = this->shared_from_this(), deferred, answer, generation](error_code ec) {
      if (ec || self->answered_ || self->defer_generation_ != generation) return;
      Response response = error_response(500, "internal server error");
      try {
        if (deferred->on_timeout) response = deferred->on_timeout();
      } catch (const std::exception& e) {
        spdlog::warn("http: a deferred answer's timeout failed: {}", e.what());
      }
      answer(*self, std::move(response));
    });
    std::weak_ptr<Session> weak = this->shared_from_this();
    auto reply = [gate = shared_.gate, weak, answer](Response response) {
      gate->post([weak, answer, response = std::move(response)]() mutable {
        if (const auto self = weak.lock()) answer(*self, std::move(response));
      });
    };
    try {
      deferred->start(std::move(reply));
    } catch (const std::exception& e) {
      spdlog::warn("http: a deferred answer failed to start: {}", e.what());
      answer(*this, error_response(500, "internal server error"));
    }
  }

  // What the handler sees of a request.
  template <class Message>
  Request request_of(const Message& req, std::string body) const {
    const bool head = req.method() == bhttp::verb::head;
    Request request{head ? "GET" : std::string(req.method_string()),
                    std::string(req.target()),
                    std::string(req[bhttp::field::authorization]),
                    std::move(body),
                    peer_,
                    {},
                    std::is_same_v<Stream, UnixStream>,
                    websocket::is_upgrade(req),
                    peer_certificate_};
    for (const auto& field : req) request.headers.emplace_back(field.name_string(), field.value());
    return request;
  }

  // Never throws: a handler's exception is a bug of the handler, answered 500, not the process's end.
  [[nodiscard]] Response call_handler(const Request& request) const {
    try {
      return shared_.handler(request);
    } catch (const std::exception& e) {
      spdlog::warn("http: handler failed on {} {}: {}", request.method, path_of(request.target), e.what());
    } catch (...) {
      spdlog::warn("http: handler failed on {} {}: unknown exception", request.method, path_of(request.target));
    }
    return error_response(500, "internal server error");
  }

  // The query may carry something secret; logs get the path only.
  static std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }

  void do_write(Response response, bool head, unsigned version, bool keep_alive) {
    if (response.status < 200 || response.status > 599) {
      spdlog::warn("http: handler answered status {}; sending 500", response.status);
      response = error_response(500, "internal server error");
    }
    const bool close = !keep_alive || response.status == 400 || response.status == 413 || response.status == 431;
    res_ = {};
    res_.version(version);
    res_.result(static_cast<unsigned>(response.status));
    res_.set(bhttp::field::content_type, response.content_type);
    res_.set(bhttp::field::cache_control, "no-store");
    for (const auto& [name, value] : response.headers) {
      if (!is_token(name) || value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos ||
          is_owned_header(name)) {
        spdlog::warn("http: handler's header '{}' dropped", is_token(name) ? name : "(not a token)");
        continue;
      }
      res_.insert(name, value);
    }
    res_.keep_alive(!close);
    // 204 and 304 have no body and, by RFC 9110, no Content-Length; HEAD gets the length of the
    // body it would have had.
    if (response.status != 204 && response.status != 304) {
      res_.content_length(response.body.size());
      if (!head) res_.body() = std::move(response.body);
    }
    layer().expires_after(shared_.options.timeout);
    bhttp::async_write(stream_, res_, [self = this->shared_from_this(), close](error_code ec, std::size_t) {
      self->on_write(ec, close);
    });
  }

  void on_write(error_code ec, bool close) {
    if (ec) {
      fail(ec, "write", peer_);
      return do_close();
    }
    if (close) return do_drain();
    do_read();
  }

  // A lingering close: send FIN (after TLS's close_notify), then read and discard until the client
  // closes too.
  void do_drain() {
    if constexpr (is_tls<Stream>) {
      layer().expires_after(std::min<std::chrono::seconds>(drain_time, shared_.options.timeout));
      stream_.async_shutdown([self = this->shared_from_this()](error_code) { self->do_close(); });
    } else {
      error_code ignored;
      layer().socket().shutdown(net::socket_base::shutdown_send, ignored);
      drained_ = 0;
      do_drain_read();
    }
  }

  void do_drain_read() {
    layer().expires_after(std::min<std::chrono::seconds>(drain_time, shared_.options.timeout));
    stream_.async_read_some(net::buffer(drain_buffer_),
                            [self = this->shared_from_this()](error_code ec, std::size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > drain_limit) return self->do_close();
                              self->do_drain_read();
                            });
  }

  void do_close() { layer().close(); }

  // The connection becomes a websocket: its stream and the upgrade request go to a WsSession.
  void upgrade(std::function<void(std::shared_ptr<WebSocket>)> accepted) {
    std::make_shared<WsSession<Stream>>(std::move(stream_), shared_, peer_)
        ->run(parser_->release(), std::move(accepted));
  }

  Stream stream_;
  Shared& shared_;
  std::string peer_;
  std::string peer_certificate_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::response<bhttp::empty_body> continue_;
  bhttp::response<bhttp::string_body> res_;
  std::array<char, 4096> drain_buffer_{};
  std::size_t drained_ = 0;
  std::chrono::seconds body_timeout_{};
  std::size_t body_limit_ = 0;  // this request's
  net::steady_timer defer_timer_{stream_.get_executor()};
  bool answered_ = true;
  std::uint64_t defer_generation_ = 0;
};

}  // namespace

// Member order matters: the io_context is destroyed before `shared` (handlers it still holds at
// its end end sessions, which unregister there) and after the acceptors and timer (which use it).
struct Server::Impl {
  Impl(Handler handler, ServerOptions options) : shared{std::move(handler), options, {}, false, nullptr} {
    shared.gate = std::make_shared<PostGate>(ioc);
  }

  void do_accept() {
    if (unix_acceptor) {
      unix_acceptor->async_accept([this](error_code ec, net::local::stream_protocol::socket socket) {
        if (!accepted(ec)) return;
        start_session<UnixStream>(UnixStream(std::move(socket)), "unix");
      });
      return;
    }
    acceptor.async_accept([this](error_code ec, tcp::socket socket) {
      if (!accepted(ec)) return;
      error_code pec;
      const auto remote = socket.remote_endpoint(pec);
      const std::string peer = pec ? std::string("(unknown peer)") : endpoint_text(remote);
      // An answer goes out in several writes (TLS records, header then body): with Nagle's delay
      // the last waits for the client's delayed ACK, ~40 ms per request on a keep-alive connection.
      socket.set_option(tcp::no_delay(true), pec);
      if (tls) {
        start_session<TlsStream>(TlsStream(beast::tcp_stream(std::move(socket)), *tls), peer);
      } else {
        start_session<beast::tcp_stream>(beast::tcp_stream(std::move(socket)), peer);
      }
    });
  }

  // False when there is nothing to start: stopping, or a failed accept (retried shortly).
  bool accepted(error_code ec) {
    if (shared.stopping || !accepting) return false;
    if (!ec) return true;
    fail(ec, "accept", "listener");
    retry.expires_after(accept_retry);
    retry.async_wait([this](error_code wec) {
      if (!wec && !shared.stopping && accepting) do_accept();
    });
    return false;
  }

  template <class Stream>
  void start_session(Stream stream, const std::string& peer) {
    if (shared.sessions.size() >= static_cast<std::size_t>(shared.options.max_connections)) {
      spdlog::warn("http: {} refused: {} connections open already (max_connections)", peer, shared.sessions.size());
      beast::get_lowest_layer(stream).close();
    } else {
      std::make_shared<Session<Stream>>(std::move(stream), shared, peer)->run();
    }
    do_accept();
  }

  // On the server thread (or before it starts).
  void close_listener() {
    accepting = false;
    error_code ignored;
    acceptor.close(ignored);
    if (unix_acceptor) unix_acceptor->close(ignored);
    retry.cancel();
  }

  // On the server thread.
  void close_all() {
    shared.stopping = true;
    shared.gate->close();
    error_code ignored;
    acceptor.close(ignored);
    if (unix_acceptor) unix_acceptor->close(ignored);
    retry.cancel();
    const std::vector<SessionBase*> open(shared.sessions.begin(), shared.sessions.end());
    for (SessionBase* session : open) session->stop();
  }

  Shared shared;
  std::optional<net::ssl::context> tls;  // set for listen_tls
  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::optional<net::local::stream_protocol::acceptor> unix_acceptor;  // set for listen_unix
  net::steady_timer retry{ioc};
  std::thread thread;
  std::uint16_t port = 0;  // read once at listen(): the acceptor belongs to the server thread after start()
  bool started = false;
  bool stopped = false;
  bool accepting = true;                          // the server thread's
  std::atomic<bool> stop_accepting_asked{false};  // stop_accepting() is done at most once
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  stop();
}

namespace {

// What is wrong with a handler and options, "" when nothing.
std::string check_options(const Handler& handler, const ServerOptions& options) {
  if (!handler) return "no handler";
  if (options.max_connections < 1) return "max_connections must be at least 1";
  if (options.timeout.count() < 1) return "the timeout must be at least 1 second";
  return {};
}

}  // namespace

std::string Request::header(std::string_view name) const {
  const auto wanted = lower(name);
  for (const auto& [n, v] : headers) {
    if (lower(n) == wanted) return v;
  }
  return {};
}

std::variant<std::unique_ptr<Server>, std::string> Server::listen_tls(const std::string& host, std::uint16_t port,
                                                                      const TlsIdentity& identity, Handler handler,
                                                                      ServerOptions options) {
  net::ssl::context ctx(net::ssl::context::tls_server);
  ctx.set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 | net::ssl::context::no_sslv3 |
                  net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1 | net::ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  SSL_CTX_set_ciphersuites(ctx.native_handle(), tls13_ciphersuites);
  // Ask for a client certificate and accept whatever comes: trust is the handler's decision, per
  // request, from the certificate's fingerprint.
  SSL_CTX_set_verify(ctx.native_handle(), SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
  // With client certificates asked for, OpenSSL refuses a resumed TLS 1.2 session without a session
  // id context. No resumption at all: no tickets and no session cache, so a resumption is a plain
  // miss. (OpenSSL's server cache is on by default and keeps each session, with the client's
  // parsed certificate, for hours: ~40 KiB per connection, 16 MiB after a few hundred `lxc` calls.)
  static constexpr unsigned char session_context[] = "berth";
  SSL_CTX_set_session_id_context(ctx.native_handle(), session_context, sizeof session_context - 1);
  SSL_CTX_set_options(ctx.native_handle(), SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx.native_handle(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx.native_handle(), 0);
  error_code ec;
  ctx.use_certificate_chain(net::buffer(identity.certificate_pem), ec);
  if (ec) return "TLS: the server certificate cannot be used: " + ec.message();
  ctx.use_private_key(net::buffer(identity.key_pem), net::ssl::context::pem, ec);
  if (ec) return "TLS: the server key cannot be used: " + ec.message();
  auto server = listen(host, port, std::move(handler), options);
  if (auto* ok = std::get_if<std::unique_ptr<Server>>(&server)) (*ok)->impl_->tls.emplace(std::move(ctx));
  return server;
}

std::variant<std::unique_ptr<Server>, std::string> Server::listen_unix(const std::string& path, Handler handler,
                                                                       ServerOptions options) {
  if (const auto bad = check_options(handler, options); !bad.empty()) return "listen on " + path + ": " + bad;
  auto impl = std::make_unique<Impl>(std::move(handler), options);
  ::unlink(path.c_str());
  error_code ec;
  auto& acceptor = impl->unix_acceptor.emplace(impl->ioc);
  const net::local::stream_protocol::endpoint endpoint(path);
  if (acceptor.open(endpoint.protocol(), ec); ec) return "listen on " + path + ": " + ec.message();
  // Made 0600: nobody else can connect before the caller gives the socket its mode.
  const mode_t old_umask = ::umask(0177);
  acceptor.bind(endpoint, ec);
  ::umask(old_umask);
  if (ec) return "listen on " + path + ": " + ec.message();
  if (acceptor.listen(net::socket_base::max_listen_connections, ec); ec) {
    return "listen on " + path + ": " + ec.message();
  }
  spdlog::debug("http: listening on {}", path);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

std::variant<std::unique_ptr<Server>, std::string> Server::listen(const std::string& host, std::uint16_t port,
                                                                  Handler handler, ServerOptions options) {
  const std::string where =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  if (const auto bad = check_options(handler, options); !bad.empty()) return "listen on " + where + ": " + bad;
  const auto address = address_of(host);
  if (const auto* error = std::get_if<std::string>(&address)) return "listen on " + where + ": " + *error;

  auto impl = std::make_unique<Impl>(std::move(handler), options);
  const tcp::endpoint endpoint(std::get<net::ip::address>(address), port);
  error_code ec;
  auto& acceptor = impl->acceptor;
  if (acceptor.open(endpoint.protocol(), ec); ec) return "listen on " + where + ": " + ec.message();
  if (acceptor.set_option(net::socket_base::reuse_address(true), ec); ec) {
    return "listen on " + where + ": " + ec.message();
  }
  if (acceptor.bind(endpoint, ec); ec) return "listen on " + where + ": " + ec.message();
  if (acceptor.listen(net::socket_base::max_listen_connections, ec); ec) {
    return "listen on " + where + ": " + ec.message();
  }
  const auto bound = acceptor.local_endpoint(ec);
  if (ec) return "listen on " + where + ": " + ec.message();
  impl->port = bound.port();
  spdlog::debug("http: listening on {}", endpoint_text(bound));
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

std::uint16_t Server::port() const {
  return impl_->port;
}

void Server::start() {
  auto& impl = *impl_;
  if (impl.started || impl.stopped) return;
  impl.started = true;
  impl.do_accept();
  impl.thread = std::thread([&impl] {
    // Nothing below throws by design (the handler's exceptions are caught per request); should a
    // bug throw anyway, the loop goes on serving, as Asio allows.
    for (;;) {
      try {
        impl.ioc.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("http: server thread: {}", e.what());
      }
    }
  });
}

void Server::stop_accepting() {
  auto& impl = *impl_;
  if (impl.stop_accepting_asked.exchange(true) || impl.stopped) return;
  if (!impl.thread.joinable() || impl.thread.get_id() == std::this_thread::get_id()) {
    impl.close_listener();
    return;
  }
  // The listener is the server thread's; it has work (the pending accept), so the post runs.
  std::promise<void> closed;
  auto done = closed.get_future();
  net::post(impl.ioc, [&impl, &closed] {
    impl.close_listener();
    closed.set_value();
  });
  done.wait();
}

void Server::stop() {
  auto& impl = *impl_;
  if (impl.stopped) return;
  if (impl.thread.joinable() && impl.thread.get_id() == std::this_thread::get_id()) {
    throw std::logic_error("http::Server::stop() called on the server thread");
  }
  impl.stopped = true;
  if (!impl.thread.joinable()) {
    impl.close_all();
    return;
  }
  // Closing everything on the server thread leaves the io_context without work: run() returns.
  net::post(impl.ioc, [&impl] { impl.close_all(); });
  impl.thread.join();
  // run() may have returned before (a listener that stopped accepting and had no connection
  // left): nothing may be posted to the io_context from now on either way.
  impl.shared.gate->close();
}

std::variant<std::pair<std::string, std::uint16_t>, std::string> parse_listen_address(std::string_view text) {
  const std::string quoted = "'" + std::string(text) + "'";
  const std::string example = "; expected HOST:PORT such as 127.0.0.1:9478, [::1]:9478 or 0.0.0.0:9478";
  if (text.empty()) return "empty listen address" + example;

  std::string_view host;
  std::string_view port;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return quoted + ": no ']' after the IPv6 address" + example;
    host = text.substr(1, close - 1);
    const auto rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return quoted + ": no ':PORT' after ']'" + example;
    port = rest.substr(1);
    if (host.find(':') == std::string_view::npos) return quoted + ": brackets are for IPv6 addresses only" + example;
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return quoted + ": no port" + example;
    if (text.find(':') != colon) return quoted + ": an IPv6 address needs brackets, as in [::1]:9478";
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty()) {
    return quoted + ": no host; name the address to listen on (0.0.0.0 for every interface)" + example;
  }
  if (port.empty()) return quoted + ": no port after ':'" + example;
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return quoted + ": the port '" + std::string(port) + "' is not a number from 0 to 65535";
  }
  const int number = std::stoi(std::string(port));
  if (number > 65535) return quoted + ": the port " + std::to_string(number) + " is out of range (0 to 65535)";
  const auto address = address_of(host);
  if (const auto* error = std::get_if<std::string>(&address)) return quoted + ": " + *error;
  return std::pair{std::string(host), static_cast<std::uint16_t>(number)};
}

bool is_loopback(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (lower(host) == "localhost") return true;
  error_code ec;
  const auto address = net::ip::make_address(std::string(host), ec);
  if (ec) return false;
  if (address.is_v4()) return address.to_v4().is_loopback();
  const auto v6 = address.to_v6();
  if (v6.is_v4_mapped()) return net::ip::make_address_v4(net::ip::v4_mapped, v6).is_loopback();
  return v6.is_loopback();
}

}  // namespace berth::http
