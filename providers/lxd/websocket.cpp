#include "providers/lxd/websocket.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

// GCC 12 at -O2 reports a null dereference inside Asio's scheduler (a false positive after
// inlining); silenced for these headers only, as in client.cpp.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#pragma GCC diagnostic pop
#include <openssl/ssl.h>

#include "engine/config/url.hpp"
#include "http/tls.hpp"
#include "providers/lxd/openssl_util.hpp"

namespace berth::lxd {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace ssl = net::ssl;
using boost::system::error_code;
using Message = http::MessageChannel::Message;

// Runs one asynchronous operation to completion on `ioc` (which nothing else runs yet).
template <class Initiate>
error_code run_once(net::io_context& ioc, Initiate&& initiate) {
  error_code result = net::error::would_block;
  initiate([&result](error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run();
  return result;
}

class DialledChannel final : public http::MessageChannel {
 public:
  DialledChannel() = default;
  DialledChannel(const DialledChannel&) = delete;
  DialledChannel& operator=(const DialledChannel&) = delete;

  ~DialledChannel() override {
    if (io_.joinable()) {
      // Stopped rather than run dry: the websocket's keep-alive timer would hold the io thread
      // for up to half the idle timeout. What is still pending is dropped with the stream.
      net::post(ioc_, [this] {
        error_code ignored;
        beast::get_lowest_layer(*ws_).socket().close(ignored);
        ioc_.stop();
      });
      io_.join();
    }
  }

  Result<void> open(const Endpoint& endpoint, const std::string& target, const TlsOptions& tls,
                    const Timeouts& timeouts) {
    const std::string where = "wss://" + endpoint.authority() + target.substr(0, target.find('?'));
    SSL_CTX* native = ctx_.native_handle();
    SSL_CTX_set_min_proto_version(native, tls.min_version == TlsVersion::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_ciphersuites(native, berth::http::tls13_ciphersuites);
    SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
    if (tls.client_certificate) {
      error_code ec;
      ctx_.use_certificate_chain(net::buffer(tls.client_certificate->certificate_pem), ec);
      const std::string_view key = tls.client_certificate->key_pem.view();
      if (!ec) ctx_.use_private_key(net::buffer(key.data(), key.size()), ssl::context::pem, ec);
      if (ec) return make_error(ErrorKind::io, "cannot load the client certificate for " + where);
    }
    pin_.accept_any = tls.accept_any_server_certificate;
    pin_.expected = config::normalize_fingerprint(tls.pinned_fingerprint).value_or("");
    if (!pin_.accept_any && pin_.expected.empty()) {
      return make_error(ErrorKind::invalid_argument, "no certificate to pin " + where + " to");
    }
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_cert_verify_callback(native, detail::verify_pinned, &pin_);

    const auto failed = [&](const std::string& step, const error_code& ec) {
      const bool timed_out = ec == beast::error::timeout || ec == net::error::operation_aborted;
      return make_error(timed_out ? ErrorKind::timeout : ErrorKind::connect,
                        "cannot open " + where + ": " + step + ": " + (timed_out ? "timed out" : ec.message()));
    };
    net::ip::tcp::resolver resolver(ioc_);
    net::ip::tcp::resolver::results_type endpoints;
    net::steady_timer timer(ioc_);
    timer.expires_after(timeouts.connect);
    timer.async_wait([&resolver](error_code ec) {
      if (!ec) resolver.cancel();
    });
    error_code ec = run_once(ioc_, [&](auto handler) {
      resolver.async_resolve(
          endpoint.host, std::to_string(endpoint.port),
          [&endpoints, &timer, handler](error_code e, net::ip::tcp::resolver::results_type r) mutable {
            endpoints = std::move(r);
            timer.cancel();
            handler(e);
          });
    });
    if (ec) return failed("resolve", ec);

    ws_.emplace(ioc_, ctx_);
    auto& tcp = beast::get_lowest_layer(*ws_);
    tcp.expires_after(timeouts.connect);
    ec = run_once(ioc_, [&](auto handler) { tcp.async_connect(endpoints, std::move(handler)); });
    if (ec) return failed("connect", ec);
    // Small messages (rsync's requests for the next file) must not wait for Nagle's delayed ACK.
    boost::system::error_code ignored;
    tcp.socket().set_option(boost::asio::ip::tcp::no_delay(true), ignored);
    if (!endpoint.host_is_ip()) {
      // SNI (SSL_set_tlsext_host_name is a macro with a C cast; this is what it expands to).
      SSL_ctrl(ws_->next_layer().native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(endpoint.host.c_str()));
    }
    tcp.expires_after(timeouts.connect);
    ec = run_once(ioc_, [&](auto handler) { ws_->next_layer().async_handshake(ssl::stream_base::client, handler); });
    if (ec) {
      if (!pin_.accept_any && !pin_.seen_fingerprint.empty() && pin_.seen_fingerprint != pin_.expected) {
        Error e = make_error(ErrorKind::certificate_mismatch, "cannot open " + where + ": its certificate " +
                                                                  pin_.seen_fingerprint + " is not the expected " +
                                                                  pin_.expected + "; refusing to talk to it");
        e.presented_fingerprint = pin_.seen_fingerprint;
        return e;
      }
      return failed("TLS handshake", ec);
    }
    tcp.expires_after(timeouts.connect);
    ec = run_once(ioc_, [&](auto handler) { ws_->async_handshake(endpoint.authority(), target, handler); });
    if (ec) return failed("websocket handshake", ec);
    tcp.expires_never();
    websocket::stream_base::timeout options{};
    options.handshake_timeout = std::chrono::seconds{30};
    options.idle_timeout = std::chrono::minutes{5};
    options.keep_alive_pings = true;
    ws_->set_option(options);
    ws_->binary(true);
    // One frame per message, masked and written 64 KiB at a time (Beast's default: 4 KiB frames).
    ws_->auto_fragment(false);
    ws_->write_buffer_bytes(64 * 1024);
    ws_->read_message_max(64 * 1024 * 1024);

    ioc_.restart();
    work_.emplace(net::make_work_guard(ioc_));
    net::post(ioc_, [this] { read(); });
    io_ = std::thread([this] { ioc_.run(); });
    return {};
  }

  bool send(std::string data, bool text) override {
    {
      std::unique_lock lock(mu_);
      changed_.wait(lock, [&] { return ended_ || queued_bytes_ <= http::channel_window; });
      if (ended_) return false;
      queued_bytes_ += data.size();
    }
    net::post(ioc_, [this, data = std::move(data), text]() mutable {
      outbox_.emplace_back(std::move(data), text);
      if (!writing_) write();
    });
    return true;
  }

  Message receive(std::chrono::steady_clock::time_point deadline) override {
    std::unique_lock lock(mu_);
    if (!changed_.wait_until(lock, deadline, [&] { return !inbox_.empty() || ended_; })) {
      return {Message::Kind::timeout, {}};
    }
    if (inbox_.empty()) return {Message::Kind::closed, {}};
    Message m = std::move(inbox_.front());
    inbox_.pop_front();
    inbox_bytes_ -= m.data.size();
    if (paused_ && inbox_bytes_ <= http::channel_window / 2) {
      paused_ = false;
      net::post(ioc_, [this] { read(); });
    }
    return m;
  }

  void close() override {
    net::post(ioc_, [this] {
      closing_ = true;
      if (!writing_) shut();
    });
  }

  void abort() override {
    end();
    net::post(ioc_, [this] {
      error_code ignored;
      if (ws_) beast::get_lowest_layer(*ws_).socket().close(ignored);
    });
  }

 private:
  // On the io thread from here on.
  void read() {
    // Read into a string that then moves to the inbox whole: no copy of what may be gigabytes.
    incoming_.clear();
    incoming_buffer_.emplace(incoming_);  // a fresh view: the last one still counts the moved-out bytes
    ws_->async_read(*incoming_buffer_, [this](error_code ec, std::size_t) {
      if (ec) return end();
      Message m{ws_->got_text() ? Message::Kind::text : Message::Kind::binary, std::move(incoming_)};
      incoming_ = std::string();
      bool go_on = true;
      {
        const std::lock_guard lock(mu_);
        inbox_bytes_ += m.data.size();
        inbox_.push_back(std::move(m));
        if (inbox_bytes_ > http::channel_window) paused_ = true;
        go_on = !paused_;
        changed_.notify_all();
      }
      if (go_on) read();
    });
  }

  void write() {
    writing_ = true;
    ws_->text(outbox_.front().second);
    ws_->async_write(net::buffer(outbox_.front().first), [this](error_code ec, std::size_t) {
      writing_ = false;
      {
        const std::lock_guard lock(mu_);
        queued_bytes_ -= outbox_.front().first.size();
        changed_.notify_all();
      }
      outbox_.pop_front();
      if (ec) return end();
      if (!outbox_.empty()) return write();
      if (closing_) shut();
    });
  }

  void shut() {
    ws_->async_close(websocket::close_code::normal, [this](error_code) { end(); });
  }

  void end() {
    const std::lock_guard lock(mu_);
    ended_ = true;
    changed_.notify_all();
  }

  net::io_context ioc_;
  ssl::context ctx_{ssl::context::tls_client};
  detail::PinState pin_;
  std::optional<websocket::stream<beast::ssl_stream<beast::tcp_stream>>> ws_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::thread io_;
  std::string incoming_;  // io thread
  std::optional<net::dynamic_string_buffer<char, std::char_traits<char>, std::allocator<char>>> incoming_buffer_;
  std::deque<std::pair<std::string, bool>> outbox_;  // io thread
  bool writing_ = false;                             // io thread
  bool closing_ = false;                             // io thread

  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<Message> inbox_;
  std::size_t inbox_bytes_ = 0;
  std::size_t queued_bytes_ = 0;
  bool paused_ = false;
  bool ended_ = false;
};

}  // namespace

Result<std::shared_ptr<http::MessageChannel>> dial_websocket(std::string_view url, const TlsOptions& tls,
                                                             const Timeouts& timeouts) {
  const auto scheme_end = url.find("://");
  const auto path_start = scheme_end == std::string_view::npos ? url.npos : url.find('/', scheme_end + 3);
  if (path_start == std::string_view::npos) {
    return make_error(ErrorKind::invalid_argument, "not a websocket URL (https://HOST:PORT/PATH)");
  }
  auto endpoint = parse_url(url.substr(0, path_start));
  if (!endpoint) return endpoint.error();
  if (endpoint->scheme != Scheme::https) {
    return make_error(ErrorKind::invalid_argument, "a websocket URL must be https://");
  }
  auto channel = std::make_shared<DialledChannel>();
  if (auto opened = channel->open(*endpoint, std::string(url.substr(path_start)), tls, timeouts); !opened) {
    return opened.error();
  }
  return std::shared_ptr<http::MessageChannel>(std::move(channel));
}

}  // namespace berth::lxd
