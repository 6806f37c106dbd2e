#pragma once
// A small HTTP/1.1 server on Boost.Beast, over plain TCP, TLS or a unix socket: `berth watch` serves
// its metrics, status page and controls through it, and berthd its API. It knows no routes: every
// request goes to one Handler, which returns a Response value.
//
// Concurrency contract: one io_context run by one thread of the server's own. Every connection's
// steps and every call of the handler happen on that thread, one at a time, so the handler needs no
// lock for the server's sake but must not block for long (slow work belongs elsewhere, answered
// with 202) and must not call stop(). Beast stays behind this header.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace berth::http {

struct Request {
  std::string method;         // as sent, except HEAD, which the handler sees as GET
  std::string target;         // path and query as sent
  std::string authorization;  // the Authorization header, "" if none
  std::string body;
  std::string peer;  // "127.0.0.1:40112", "[::1]:40112", "unix" on a unix socket
  std::vector<std::pair<std::string, std::string>> headers;  // every header, names as sent
  bool local = false;                                        // came through a unix socket (listen_unix)
  bool websocket_upgrade = false;                            // asks to become a websocket (Response::accept_websocket)
  std::string peer_certificate;  // TLS (listen_tls): the client's certificate, DER; "" if it sent none

  // The first header of that name (case-insensitive), "" if none.
  [[nodiscard]] std::string header(std::string_view name) const;
};

// A websocket the server accepted (Response::accept_websocket). Sending queues the message and
// returns at once, from any thread; messages go out in order. A peer that lets more than
// `max_queued_messages` wait unread is disconnected. on_message and on_close are called on the
// server thread; set them in the accept callback, before returning from it.
class WebSocket {
 public:
  static constexpr std::size_t max_queued_messages = 1024;

  virtual ~WebSocket() = default;
  virtual void send_text(std::string message) = 0;
  virtual void send_binary(std::string message) = 0;
  // A close frame after what is queued.
  virtual void close() = 0;
  // Ends it now: what is queued is dropped and the connection closed (a peer that stopped reading
  // cannot hold it). on_close follows.
  virtual void abort() = 0;
  // False once the socket ended, however it ended.
  [[nodiscard]] virtual bool is_open() const = 0;
  // Bytes sent and not yet written to the connection: a sender that must not outrun the peer
  // waits for on_written while this is high.
  [[nodiscard]] virtual std::size_t queued_bytes() const = 0;
  // Messages sent and not yet written: a sender of many small messages keeps this well under
  // max_queued_messages.
  [[nodiscard]] virtual std::size_t queued_messages() const = 0;
  // Stops reading from the peer after the message being read (TCP then holds the peer back), or
  // reads on; from any thread. For a receiver that cannot keep up with on_message.
  virtual void pause_reading(bool paused) = 0;

  std::function<void(const std::string& message, bool text)> on_message;
  std::function<void()> on_close;    // once, when the socket ended
  std::function<void()> on_written;  // after each message went out
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // Extra headers. The server owns Content-Length, Content-Type, Cache-Control (always no-store),
  // Connection and Transfer-Encoding; a handler's copy of one of those, a name that is not an
  // HTTP token, or a value with CR, LF or NUL in it is dropped with a warning.
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, the request becomes a websocket (a request that is no upgrade is answered 400), and
  // this is called with it on the server thread; status, body and headers are not sent.
  std::function<void(std::shared_ptr<WebSocket>)> accept_websocket;
  // When set, the answer comes later (a long poll); status, body and headers are not sent.
  std::shared_ptr<struct Deferred> deferred;
};

// An answer given later. `start` is called on the server thread with a `reply` that may be called
// once, from any thread, even after the server stopped (then it does nothing); when it has not
// been called `timeout` after the start, the answer is `on_timeout()` (on the server thread) and a
// later reply is dropped. `start` must not block.
struct Deferred {
  std::function<void(std::function<void(Response)> reply)> start;
  std::chrono::milliseconds timeout{0};
  std::function<Response()> on_timeout;
};

// Called on the server thread. An exception it throws becomes a 500 with a generic body, logged.
using Handler = std::function<Response(const Request&)>;

struct ServerOptions {
  std::size_t body_limit = 64 * 1024;  // larger request bodies are answered 413
  std::chrono::seconds timeout{30};    // for every read and write, including a keep-alive wait
  int max_connections = 64;            // connections beyond it are closed as soon as accepted
  // A larger body limit for some requests (image uploads), decided from the request before its
  // body is read (`body` is empty; method, target, headers, peer certificate are set); the body of
  // such a request may take `large_body_timeout` to arrive. Called on the server thread.
  std::function<std::size_t(const Request& head)> body_limit_for;
  std::chrono::seconds large_body_timeout{3600};
};

// The server's certificate and key, PEM. TLS 1.2 at least; a client certificate is asked for and
// not verified (the handler decides trust from Request::peer_certificate, as LXD does).
struct TlsIdentity {
  std::string certificate_pem;
  std::string key_pem;  // a secret: never logged
};

class Server {
 public:
  // Binds and listens on host:port; host is an IPv4 or IPv6 literal (no brackets) or "localhost"
  // (127.0.0.1); port 0 picks a free one. An address that cannot be bound is an error value
  // naming it ("listen on 127.0.0.1:80: Permission denied"), never an exception.
  [[nodiscard]] static std::variant<std::unique_ptr<Server>, std::string> listen(const std::string& host,
                                                                                 std::uint16_t port, Handler handler,
                                                                                 ServerOptions options = {});
  // The same over TLS.
  [[nodiscard]] static std::variant<std::unique_ptr<Server>, std::string> listen_tls(const std::string& host,
                                                                                     std::uint16_t port,
                                                                                     const TlsIdentity& identity,
                                                                                     Handler handler,
                                                                                     ServerOptions options = {});
  // Plain HTTP on a unix socket at `path` (an old socket there is replaced); requests are `local`.
  // The socket's mode is the caller's to set.
  [[nodiscard]] static std::variant<std::unique_ptr<Server>, std::string> listen_unix(const std::string& path,
                                                                                      Handler handler,
                                                                                      ServerOptions options = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound port.
  [[nodiscard]] std::uint16_t port() const;
  // Starts serving on the server thread. Once only; after stop() it does nothing.
  void start();
  // Stops accepting new connections and frees the address; the open ones are served until they
  // end. From any thread, the handler included (it then waits for the server thread to close the
  // listener, so never while holding something that thread may wait for). Idempotent.
  void stop_accepting();
  // Stops accepting, closes every connection (an answer still being written is cut off), and
  // joins the server thread. Idempotent; the destructor calls it. Not from the handler.
  void stop();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A listen address as written on a command line: "127.0.0.1:9478", "[::1]:9478", "localhost:9478".
// The host must be one listen() accepts and is never empty (all interfaces are "0.0.0.0:PORT" or
// "[::]:PORT", written out); the port is 0-65535. Returns host (without brackets) and port, or a
// message saying what is wrong with `text`.
[[nodiscard]] std::variant<std::pair<std::string, std::uint16_t>, std::string> parse_listen_address(
    std::string_view text);

// True for 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) and "localhost"; brackets around an IPv6
// literal are allowed. False for anything else, including names other than localhost.
[[nodiscard]] bool is_loopback(std::string_view host);

}  // namespace berth::http
