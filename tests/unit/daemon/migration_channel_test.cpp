// A migration's channel closed once (daemon/migration/channel.hpp): berthd's steps close a channel
// more than once (a receiver closes control after its last word, then both channels as it
// finishes), and a websocket asked for a second close before the peer answered the first kept
// berthd's HTTPS listener, and with it berthd's stop, waiting forever.

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "daemon/migration/channel.hpp"
#include "http/channel.hpp"
#include "http/server.hpp"
#include "providers/lxd/certificate.hpp"
#include "providers/lxd/websocket.hpp"

namespace berth::daemon::migration {
namespace {

using Kind = http::MessageChannel::Message::Kind;
using Clock = std::chrono::steady_clock;

// Records what reaches it.
class FakeChannel final : public http::MessageChannel {
 public:
  bool send(std::string data, bool text) override {
    sent.emplace_back(text ? "text:" + data : data);
    return true;
  }
  Message receive(Clock::time_point) override { return {Kind::binary, "from the peer"}; }
  void close() override { ++closes; }
  void abort() override { ++aborts; }

  std::vector<std::string> sent;
  int closes = 0;
  int aborts = 0;
};

TEST(MigrationChannel, ClosesOnceAndPassesTheRestOn) {
  auto fake = std::make_shared<FakeChannel>();
  auto channel = closed_once(fake);
  EXPECT_TRUE(channel->send("data", false));
  EXPECT_TRUE(channel->send("", true));
  EXPECT_EQ(fake->sent, (std::vector<std::string>{"data", "text:"}));
  EXPECT_EQ(channel->receive(Clock::now()).data, "from the peer");
  channel->close();
  channel->close();
  channel->close();
  EXPECT_EQ(fake->closes, 1);
  // An abort still ends a channel whose close was asked for (a peer that never answers it).
  channel->abort();
  EXPECT_EQ(fake->aborts, 1);
}

TEST(MigrationChannel, NoCloseAfterAnAbort) {
  auto fake = std::make_shared<FakeChannel>();
  auto channel = closed_once(fake);
  channel->abort();
  channel->close();
  EXPECT_EQ(fake->aborts, 1);
  EXPECT_EQ(fake->closes, 0);
}

// The case that hung berthd's stop: an accepted websocket closed twice, the second time before
// the peer answered the first close, then the server stopped.
TEST(MigrationChannel, AWebsocketClosedTwiceLetsItsServerStop) {
  lxd::SelfSignedOptions o;
  o.common_name = "test";
  o.ip_addresses = {"127.0.0.1"};
  auto pair = lxd::generate_server_certificate(o);
  ASSERT_TRUE(pair);
  std::promise<std::shared_ptr<http::MessageChannel>> accepted;
  auto made = http::Server::listen_tls("127.0.0.1", 0, {pair->certificate, pair->private_key},
                                       [&accepted](const http::Request&) {
                                         http::Response response;
                                         response.accept_websocket = [&accepted](std::shared_ptr<http::WebSocket> ws) {
                                           accepted.set_value(closed_once(http::channel_of(ws)));
                                         };
                                         return response;
                                       });
  ASSERT_TRUE(std::holds_alternative<std::unique_ptr<http::Server>>(made));
  auto server = std::move(std::get<std::unique_ptr<http::Server>>(made));
  server->start();
  lxd::TlsOptions tls;
  tls.pinned_fingerprint = *lxd::fingerprint_of_pem(pair->certificate);
  auto dialled =
      lxd::dial_websocket("https://127.0.0.1:" + std::to_string(server->port()) + "/ws?secret=s", tls, lxd::Timeouts{});
  ASSERT_TRUE(dialled) << dialled.error().message;
  auto client = *dialled;
  auto channel = accepted.get_future().get();

  channel->close();
  channel->close();  // at once: the first close handshake is still under way
  EXPECT_EQ(client->receive(Clock::now() + std::chrono::seconds{5}).kind, Kind::closed);
  EXPECT_EQ(channel->receive(Clock::now() + std::chrono::seconds{5}).kind, Kind::closed);
  client.reset();
  channel.reset();

  // Stopped on a thread of its own: should it hang, the test fails instead of hanging, and the
  // server is left behind (its thread still uses it).
  auto stopped = std::make_shared<std::promise<void>>();
  auto done = stopped->get_future();
  http::Server* raw = server.release();
  std::thread([raw, stopped] {
    raw->stop();
    stopped->set_value();
  }).detach();
  ASSERT_EQ(done.wait_for(std::chrono::seconds{10}), std::future_status::ready)
      << "the server did not stop within 10 s: a close handshake never ended";
  delete raw;
}

}  // namespace
}  // namespace berth::daemon::migration
