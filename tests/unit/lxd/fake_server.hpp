#pragma once
// An in-process fake of an LXD daemon's HTTP side, for unit tests of the transport, remote add and
// the state reader: a unix socket or TLS on 127.0.0.1 (port chosen by the kernel), a handler per
// request, one thread per connection. Real LXD is exercised by the integration tests instead.

#include <poll.h>
#include <sys/socket.h>
#include <atomic>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#pragma GCC diagnostic pop
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <nlohmann/json.hpp>

#include "providers/lxd/openssl_util.hpp"

namespace berth::lxd::testing {

struct FakeRequest {
  std::string method;
  std::string target;
  std::string body;
  std::string peer_fingerprint;  // TLS: the client certificate presented, if any
};

struct FakeResponse {
  int status = 200;
  std::string body;
  bool close = false;  // close the connection after this response, without telling the client
  int delay_ms = 0;    // wait before answering (timeouts)
};

// The sync envelope LXD sends.
inline std::string sync_body(const nlohmann::json& metadata) {
  return nlohmann::json{{"type", "sync"},  {"status", "Success"}, {"status_code", 200},  {"operation", ""},
                        {"error_code", 0}, {"error", ""},         {"metadata", metadata}}
      .dump();
}
inline FakeResponse error_response(int status, const std::string& text) {
  return {status, nlohmann::json{{"type", "error"},
                                 {"status", ""},
                                 {"status_code", 0},
                                 {"operation", ""},
                                 {"error_code", status},
                                 {"error", text},
                                 {"metadata", nullptr}}
                      .dump()};
}

class FakeServer {
 public:
  using Handler = std::function<FakeResponse(const FakeRequest&)>;

  // TLS with the given server certificate and key (PEM). Asks for, but does not require, a client
  // certificate, as LXD does.
  FakeServer(Handler handler, const std::string& cert_pem, const std::string& key_pem)
      : handler_(std::move(handler)), tls_(true) {
    namespace net = boost::asio;
    contexts_.push_back(make_context(cert_pem, key_pem));
    tcp_acceptor_ =
        std::make_unique<net::ip::tcp::acceptor>(ioc_, net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    url_ = "https://127.0.0.1:" + std::to_string(tcp_acceptor_->local_endpoint().port());
    listen_fd_ = tcp_acceptor_->native_handle();
    thread_ = std::thread([this] { accept_loop(); });
  }

  // Plain HTTP over a unix socket at `path`.
  FakeServer(Handler handler, const std::string& path) : handler_(std::move(handler)), tls_(false) {
    namespace net = boost::asio;
    ::unlink(path.c_str());
    unix_acceptor_ =
        std::make_unique<net::local::stream_protocol::acceptor>(ioc_, net::local::stream_protocol::endpoint(path));
    url_ = "unix://" + path;
    listen_fd_ = unix_acceptor_->native_handle();
    thread_ = std::thread([this] { accept_loop(); });
  }

  ~FakeServer() {
    stop_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes the accept loop now, not at its next poll timeout
    {
      std::lock_guard lock(mu_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);  // unblocks reads in connection threads
    }
    if (thread_.joinable()) thread_.join();
    for (auto& t : connection_threads_) t.join();
  }
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  // TLS: a server whose certificate changes between connections (re-keyed, or someone in between).
  // Connection number `from_connection` (0-based, in the order accepted) and every later one
  // present this certificate instead; connections already open keep theirs.
  void present_from_connection(int from_connection, const std::string& cert_pem, const std::string& key_pem) {
    auto ctx = make_context(cert_pem, key_pem);
    std::lock_guard lock(mu_);
    contexts_.push_back(std::move(ctx));
    switch_from_ = from_connection;
  }
  // The same from the next connection on.
  void present_from_now(const std::string& cert_pem, const std::string& key_pem) {
    present_from_connection(connections_, cert_pem, key_pem);
  }
  // Ends every open connection, as a restarting server would; clients must connect again. Returns
  // once the connection threads have closed their sockets.
  void drop_connections() {
    {
      std::lock_guard lock(mu_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard lock(mu_);
        if (open_fds_.empty()) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  [[nodiscard]] const std::string& url() const { return url_; }
  [[nodiscard]] int connections() const { return connections_; }
  [[nodiscard]] std::vector<FakeRequest> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      boost::system::error_code ec;
      if (tls_) {
        auto socket = std::make_shared<boost::asio::ip::tcp::socket>(ioc_);
        tcp_acceptor_->accept(*socket, ec);
        if (ec) continue;
        boost::asio::ssl::context* ctx = nullptr;
        {
          std::lock_guard lock(mu_);
          ctx = connections_ >= switch_from_ ? contexts_.back().get() : contexts_.front().get();
        }
        track(socket->native_handle());
        ++connections_;  // before it is served: a client may finish before this thread runs on
        connection_threads_.emplace_back([this, socket, ctx] {
          boost::beast::ssl_stream<boost::asio::ip::tcp::socket&> stream(*socket, *ctx);
          boost::system::error_code hec;
          stream.handshake(boost::asio::ssl::stream_base::server, hec);
          if (!hec) {
            std::string peer;
            if (X509* cert = SSL_get1_peer_certificate(stream.native_handle())) {
              peer = detail::fingerprint_of(cert);
              X509_free(cert);
            }
            serve(stream, peer);
          }
          untrack_and_close(*socket);
        });
      } else {
        auto socket = std::make_shared<boost::asio::local::stream_protocol::socket>(ioc_);
        unix_acceptor_->accept(*socket, ec);
        if (ec) continue;
        track(socket->native_handle());
        ++connections_;
        connection_threads_.emplace_back([this, socket] {
          serve(*socket, "");
          untrack_and_close(*socket);
        });
      }
    }
  }

  // Asks for, but does not require, a client certificate, as LXD does.
  static std::unique_ptr<boost::asio::ssl::context> make_context(const std::string& cert_pem,
                                                                 const std::string& key_pem) {
    namespace net = boost::asio;
    auto ctx = std::make_unique<net::ssl::context>(net::ssl::context::tls_server);
    ctx->use_certificate_chain(net::buffer(cert_pem));
    ctx->use_private_key(net::buffer(key_pem), net::ssl::context::pem);
    SSL_CTX_set_verify(ctx->native_handle(), SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
    return ctx;
  }

  void track(int fd) {
    std::lock_guard lock(mu_);
    open_fds_.push_back(fd);
  }

  // Under the lock, so that the destructor never shuts down a descriptor number reused elsewhere.
  template <class Socket>
  void untrack_and_close(Socket& socket) {
    std::lock_guard lock(mu_);
    std::erase(open_fds_, socket.native_handle());
    boost::system::error_code ignored;
    socket.close(ignored);
  }

  template <class Stream>
  void serve(Stream& stream, const std::string& peer) {
    namespace http = boost::beast::http;
    boost::beast::flat_buffer buffer;
    while (!stop_) {
      http::request<http::string_body> req;
      boost::system::error_code ec;
      http::read(stream, buffer, req, ec);
      if (ec) return;
      FakeRequest fr{std::string{req.method_string()}, std::string{req.target()}, req.body(), peer};
      {
        std::lock_guard lock(mu_);
        requests_.push_back(fr);
      }
      const FakeResponse out = handler_(fr);
      if (out.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(out.delay_ms));
      http::response<http::string_body> res{static_cast<http::status>(out.status), 11};
      res.set(http::field::content_type, "application/json");
      res.body() = out.body;
      res.keep_alive(true);
      res.prepare_payload();
      http::write(stream, res, ec);
      if (ec || out.close) return;
    }
  }

  Handler handler_;
  bool tls_;
  boost::asio::io_context ioc_;
  // The first certificate, then (from connection switch_from_ on) the last one added. Kept until
  // the server ends: connection threads point at them.
  std::vector<std::unique_ptr<boost::asio::ssl::context>> contexts_;
  int switch_from_ = std::numeric_limits<int>::max();
  std::unique_ptr<boost::asio::ip::tcp::acceptor> tcp_acceptor_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> unix_acceptor_;
  int listen_fd_ = -1;
  std::string url_;
  std::thread thread_;
  std::vector<std::thread> connection_threads_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex mu_;
  std::vector<FakeRequest> requests_;
  std::vector<int> open_fds_;
};

}  // namespace berth::lxd::testing
