// Websockets as message channels (http/channel.hpp): a TLS server on loopback accepts them
// (http::channel_of), lxd::dial_websocket dials them pinned to its certificate, and what crosses
// arrives whole, in order, with its frame type, and without either side buffering without bound.

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <future>
#include <thread>

#include "http/channel.hpp"
#include "http/server.hpp"
#include "providers/lxd/certificate.hpp"
#include "providers/lxd/websocket.hpp"

namespace berth::lxd {
namespace {

using Kind = http::MessageChannel::Message::Kind;
using Clock = std::chrono::steady_clock;

Clock::time_point in(std::chrono::milliseconds ms) {
  return Clock::now() + ms;
}

// A TLS server whose every websocket becomes a channel handed to the test.
class ChannelServer {
 public:
  ChannelServer() {
    SelfSignedOptions o;
    o.common_name = "test";
    o.ip_addresses = {"127.0.0.1"};
    auto pair = generate_server_certificate(o);
    EXPECT_TRUE(pair);
    certificate_ = pair->certificate;
    auto made = http::Server::listen_tls("127.0.0.1", 0, {pair->certificate, pair->private_key},
                                         [this](const http::Request& r) {
                                           http::Response response;
                                           if (r.target != "/ws?secret=s") {
                                             response.status = 403;
                                             return response;
                                           }
                                           response.accept_websocket = [this](std::shared_ptr<http::WebSocket> ws) {
                                             accepted_.set_value(http::channel_of(ws));
                                           };
                                           return response;
                                         });
    server_ = std::move(std::get<std::unique_ptr<http::Server>>(made));
    server_->start();
  }
  [[nodiscard]] std::string url(const std::string& target = "/ws?secret=s") const {
    return "https://127.0.0.1:" + std::to_string(server_->port()) + target;
  }
  [[nodiscard]] TlsOptions pinned() const {
    TlsOptions tls;
    tls.pinned_fingerprint = *fingerprint_of_pem(certificate_);
    return tls;
  }
  std::shared_ptr<http::MessageChannel> accepted() { return accepted_.get_future().get(); }

 private:
  std::string certificate_;
  std::promise<std::shared_ptr<http::MessageChannel>> accepted_;
  std::unique_ptr<http::Server> server_;
};

TEST(WebsocketChannel, MessagesCrossBothWaysWithTheirKind) {
  ChannelServer server;
  auto dialled = dial_websocket(server.url(), server.pinned());
  ASSERT_TRUE(dialled) << dialled.error().message;
  auto client = *dialled;
  auto accepted = server.accepted();

  ASSERT_TRUE(client->send(std::string("\x00\x01 binary", 9), false));
  ASSERT_TRUE(client->send("", true));  // the barrier: an empty text frame
  auto m = accepted->receive(in(std::chrono::seconds{5}));
  EXPECT_EQ(m.kind, Kind::binary);
  EXPECT_EQ(m.data, std::string("\x00\x01 binary", 9));
  m = accepted->receive(in(std::chrono::seconds{5}));
  EXPECT_EQ(m.kind, Kind::text);
  EXPECT_EQ(m.data, "");

  ASSERT_TRUE(accepted->send("back", false));
  m = client->receive(in(std::chrono::seconds{5}));
  EXPECT_EQ(m.kind, Kind::binary);
  EXPECT_EQ(m.data, "back");
  EXPECT_EQ(client->receive(in(std::chrono::milliseconds{50})).kind, Kind::timeout);

  accepted->close();
  EXPECT_EQ(client->receive(in(std::chrono::seconds{5})).kind, Kind::closed);
  EXPECT_EQ(accepted->receive(in(std::chrono::seconds{5})).kind, Kind::closed);
  EXPECT_FALSE(client->send("late", false));
}

TEST(WebsocketChannel, AnotherCertificateOrAWrongPathIsRefused) {
  ChannelServer server;
  TlsOptions wrong;
  wrong.pinned_fingerprint = std::string(64, 'a');
  auto refused = dial_websocket(server.url(), wrong);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, ErrorKind::certificate_mismatch);
  auto forbidden = dial_websocket(server.url("/ws?secret=other"), server.pinned());
  ASSERT_FALSE(forbidden);
  EXPECT_EQ(forbidden.error().kind, ErrorKind::connect);
  EXPECT_FALSE(dial_websocket("https://127.0.0.1:1", server.pinned()));  // no path
}

// 64 MiB each way in 256 KiB messages while the other side does not read for a while: the sender
// is held back near the window instead of queueing it all, and everything arrives in order.
TEST(WebsocketChannel, ASenderWaitsForASlowReaderAndNothingIsLost) {
  ChannelServer server;
  auto client = *dial_websocket(server.url(), server.pinned());
  auto accepted = server.accepted();
  constexpr std::size_t chunk = 256 * 1024;
  constexpr int count = 256;

  for (auto [from, to] : {std::pair{accepted, client}, std::pair{client, accepted}}) {
    std::atomic<int> sent{0};
    std::thread sender([&, from = from] {
      for (int i = 0; i < count; ++i) {
        std::string data(chunk, static_cast<char>('a' + i % 26));
        data.replace(0, sizeof(int), reinterpret_cast<const char*>(&i), sizeof(int));
        if (!from->send(std::move(data), false)) return;
        ++sent;
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds{500});
    // Both windows, the sockets' buffers and a message in flight on each side, at most.
    EXPECT_LT(static_cast<std::size_t>(sent.load()) * chunk, 4 * http::channel_window + 16 * chunk);
    for (int i = 0; i < count; ++i) {
      const auto m = to->receive(in(std::chrono::seconds{20}));
      ASSERT_EQ(m.kind, Kind::binary) << i;
      ASSERT_EQ(m.data.size(), chunk);
      int n = -1;
      std::memcpy(&n, m.data.data(), sizeof(int));
      ASSERT_EQ(n, i);
      ASSERT_EQ(m.data.back(), static_cast<char>('a' + i % 26));
    }
    sender.join();
    EXPECT_EQ(sent.load(), count);
  }
}

}  // namespace
}  // namespace berth::lxd
