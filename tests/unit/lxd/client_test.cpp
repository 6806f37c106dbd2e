#include "providers/lxd/client.hpp"

#include <gtest/gtest.h>

#include "fake_server.hpp"
#include "providers/lxd/certificate.hpp"
#include "providers/lxd/fs_util.hpp"
#include "temp_dir.hpp"

namespace berth::lxd {
namespace {

using testing::FakeRequest;
using testing::FakeResponse;
using testing::FakeServer;
using testing::sync_body;

FakeResponse echo(const FakeRequest& r) {
  return {200, sync_body({{"target", r.target}, {"method", r.method}})};
}

struct ServerIdentity {
  PemPair pem;
  std::string fingerprint;
  static ServerIdentity make() {
    auto p = generate_client_certificate({"server@test", 30});
    if (!p.ok()) std::abort();
    return {*p, *fingerprint_of_pem(p->certificate)};
  }
};

TEST(ClientUnix, KeepsOneConnectionAlive) {
  testing::TempDir tmp;
  FakeServer server(echo, (tmp.path() / "s.sock").string());
  auto client = connect(server.url(), {});
  ASSERT_TRUE(client.ok()) << client.error().message;
  for (int i = 0; i < 3; ++i) {
    auto r = client->get("/1.0/instances?recursion=1");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->metadata["target"], "/1.0/instances?recursion=1");
  }
  EXPECT_EQ(client->connections_opened(), 1);
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(client->url(), server.url());
}

TEST(ClientUnix, ReconnectsWhenTheServerClosedAnIdleConnection) {
  testing::TempDir tmp;
  FakeServer server(
      [](const FakeRequest& r) {
        return FakeResponse{200, sync_body(r.target), /*close=*/true};
      },
      (tmp.path() / "s.sock").string());
  auto client = connect_unix(tmp.path() / "s.sock");
  ASSERT_TRUE(client.ok());
  for (int i = 0; i < 3; ++i) {
    auto r = client->get("/1.0");
    ASSERT_TRUE(r.ok()) << "request " << i << ": " << r.error().message;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the close arrive
  }
  EXPECT_EQ(client->connections_opened(), 3);
}

TEST(ClientUnix, SendsBodyAndParsesErrors) {
  testing::TempDir tmp;
  FakeServer server(
      [](const FakeRequest& r) {
        if (r.method == "POST") return testing::error_response(403, "not authorized");
        return testing::error_response(404, "Instance not found");
      },
      (tmp.path() / "s.sock").string());
  auto client = connect_unix(tmp.path() / "s.sock");
  ASSERT_TRUE(client.ok());
  auto r = client->request(Method::post, "/1.0/certificates", nlohmann::json{{"password", "sekret-pw"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().http_status, 403);
  EXPECT_EQ(r.error().message.find("sekret-pw"), std::string::npos);  // a body never reaches a message
  EXPECT_EQ(server.requests().back().body, R"({"password":"sekret-pw"})");
  auto nf = client->get("/1.0/instances/c9");
  ASSERT_FALSE(nf.ok());
  EXPECT_EQ(nf.error().http_status, 404);
  EXPECT_EQ(nf.error().lxd_error, "Instance not found");
}

TEST(ClientUnix, ReadTimeout) {
  testing::TempDir tmp;
  FakeServer server(
      [](const FakeRequest&) {
        return FakeResponse{200, sync_body(1), false, 600};
      },
      (tmp.path() / "s.sock").string());
  Timeouts t;
  t.read = std::chrono::milliseconds(100);
  auto client = connect_unix(tmp.path() / "s.sock", t);
  ASSERT_TRUE(client.ok());
  const auto start = std::chrono::steady_clock::now();
  auto r = client->get("/1.0");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
}

TEST(ClientUnix, MissingSocketIsAConnectError) {
  testing::TempDir tmp;
  auto client = connect("unix://" + (tmp.path() / "nothing.sock").string(), {});
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().kind, ErrorKind::connect);
  EXPECT_NE(client.error().message.find("cannot connect to unix://"), std::string::npos);
}

TEST(ClientConnect, BadUrl) {
  auto client = connect("http://127.0.0.1:1", {});
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().kind, ErrorKind::invalid_argument);
}

TEST(ClientTls, PinnedServerAndClientCertificate) {
  const auto server_id = ServerIdentity::make();
  FakeServer server(echo, server_id.pem.certificate, server_id.pem.private_key);
  auto client_pem = generate_client_certificate({"berth@test", 30});
  ASSERT_TRUE(client_pem.ok());

  TlsOptions tls;
  auto mine = std::make_shared<ClientCertificate>();
  mine->certificate_pem = client_pem->certificate;
  mine->key_pem = SecretText{client_pem->private_key};  // from memory: no file is involved
  mine->source = "test";
  tls.client_certificate = std::move(mine);
  tls.pinned_fingerprint = "sha256:" + server_id.fingerprint;  // any spelling normalize_fingerprint accepts
  auto client = connect_https(server.url(), tls);
  ASSERT_TRUE(client.ok()) << client.error().message;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client->get("/1.0").ok());
  EXPECT_EQ(client->connections_opened(), 1);
  EXPECT_EQ(client->server_fingerprint(), server_id.fingerprint);
  EXPECT_EQ(server.requests().back().peer_fingerprint, *fingerprint_of_pem(client_pem->certificate));
}

TEST(ClientTls, WrongPinIsRefusedBeforeAnyRequest) {
  const auto server_id = ServerIdentity::make();
  FakeServer server(echo, server_id.pem.certificate, server_id.pem.private_key);
  TlsOptions tls;
  tls.pinned_fingerprint = std::string(64, '0');
  auto client = connect_https(server.url(), tls);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().kind, ErrorKind::certificate_mismatch);
  EXPECT_EQ(client.error().message, "server certificate fingerprint " + server_id.fingerprint +
                                        " does not match the pinned " + std::string(64, '0') +
                                        "; refusing to talk to it");
  EXPECT_TRUE(server.requests().empty());
}

TEST(ClientTls, AcceptAnyCapturesTheCertificate) {
  const auto server_id = ServerIdentity::make();
  FakeServer server(echo, server_id.pem.certificate, server_id.pem.private_key);
  TlsOptions tls;
  tls.accept_any_server_certificate = true;
  auto client = connect_https(server.url(), tls);
  ASSERT_TRUE(client.ok()) << client.error().message;
  ASSERT_TRUE(client->server_certificate_pem().has_value());
  EXPECT_EQ(*fingerprint_of_pem(*client->server_certificate_pem()), server_id.fingerprint);
  EXPECT_EQ(server.requests().size(), 0u);
  ASSERT_TRUE(client->get("/").ok());
  EXPECT_TRUE(server.requests().back().peer_fingerprint.empty());  // no client certificate was sent
}

// A body over the limit is refused as soon as its Content-Length is read: the error names the
// request, the limit and the flag that raises it, and the client stays usable.
TEST(ClientUnix, AnswerLargerThanTheLimitIsAClearError) {
  testing::TempDir tmp;
  const std::string big = sync_body(std::string(40'000'000, 'x'));
  FakeServer server(
      [&](const FakeRequest& r) {
        if (r.target == "/1.0") return FakeResponse{200, sync_body("small")};
        return FakeResponse{200, big};
      },
      (tmp.path() / "s.sock").string());
  auto client = connect_unix(tmp.path() / "s.sock");  // the default limit, 32 MiB
  ASSERT_TRUE(client.ok());
  auto r = client->get("/1.0/instances?recursion=1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::protocol);
  EXPECT_EQ(r.error().message,
            "GET /1.0/instances?recursion=1: the answer is larger than 32 MiB; if that is expected, raise the limit "
            "with --max-response-size");
  auto after = client->get("/1.0");
  ASSERT_TRUE(after.ok()) << after.error().message;
  EXPECT_EQ(after->metadata, "small");

  Timeouts raised;
  raised.max_response_bytes = 64 * util::mib;
  auto roomy = connect_unix(tmp.path() / "s.sock", raised);
  ASSERT_TRUE(roomy.ok());
  auto whole = roomy->get("/1.0/instances?recursion=1");
  ASSERT_TRUE(whole.ok()) << whole.error().message;
  EXPECT_EQ(whole->metadata.get_ref<const std::string&>().size(), 40'000'000U);
}

TEST(ClientTls, PinIsRequiredUnlessAcceptingAny) {
  auto client = connect_https("https://127.0.0.1:1", {});
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().kind, ErrorKind::invalid_argument);
}

TEST(ClientTls, RefusedConnectionNamesTheUrl) {
  // Bind and close a port so that nothing listens on it.
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  const auto port = a.local_endpoint().port();
  a.close();
  TlsOptions tls;
  tls.accept_any_server_certificate = true;
  auto client = connect_https("https://127.0.0.1:" + std::to_string(port), tls);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().kind, ErrorKind::connect);
  EXPECT_EQ(client.error().message.rfind("cannot connect to https://127.0.0.1:" + std::to_string(port) + ": ", 0), 0u)
      << client.error().message;
}

}  // namespace
}  // namespace berth::lxd
