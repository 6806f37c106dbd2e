// berthd's handlers, called as the HTTP server calls them: trust by token (single use, the
// presenting client's certificate), restricted certificates refused, server config with If-Match
// and the hidden password, and hostile bodies answered 400.

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../lxd/temp_dir.hpp"
#include "daemon/api/api.hpp"
#include "daemon/api/trust.hpp"
#include "engine/util/sha256.hpp"
#include "providers/lxd/certificate.hpp"
#include "providers/lxd/token.hpp"

namespace berth::daemon::api {
namespace {

std::string der_of_pem(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  const int n = i2d_X509(cert, nullptr);
  std::string der(static_cast<std::size_t>(n), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509(cert, &out);
  X509_free(cert);
  return der;
}

std::string client_der(const std::string& name) {
  return der_of_pem(lxd::generate_client_certificate({name, 30, {}, {}})->certificate);
}

class ApiTest : public ::testing::Test {
 protected:
  ApiTest()
      : db_(std::move(Database::open(tmp_.path() / "berthd.db").value())),
        api_(*db_, ops_, events_,
             {"host", "PEM", std::string(64, 'a'), [] { return std::vector<std::string>{"127.0.0.1:8443"}; }}) {}

  http::Response call(const std::string& method, const std::string& target, const std::string& body, bool local,
                      const std::string& cert = {}, std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::Request r;
    r.method = method;
    r.target = target;
    r.body = body;
    r.local = local;
    r.peer = local ? "unix" : "127.0.0.1:5000";
    r.peer_certificate = cert;
    r.headers = std::move(headers);
    return api_.handle(r);
  }
  static nlohmann::json json(const http::Response& r) { return nlohmann::json::parse(r.body); }

  std::string issue_token(const std::string& name) {
    const auto r = call("POST", "/1.0/certificates", nlohmann::json{{"token", true}, {"name", name}}.dump(), true);
    EXPECT_EQ(r.status, 202) << r.body;
    const auto md = json(r)["metadata"]["metadata"];
    const nlohmann::json token = {{"client_name", name},
                                  {"fingerprint", md["fingerprint"]},
                                  {"addresses", md["addresses"]},
                                  {"secret", md["secret"]},
                                  {"expires_at", "0001-01-01T00:00:00Z"}};
    return lxd::base64_encode(token.dump());
  }

  lxd::testing::TempDir tmp_;
  std::unique_ptr<Database> db_;
  Operations ops_;
  Events events_;
  Api api_;
};

TEST_F(ApiTest, ATokenAdmitsThePresentingClientOnceWhateverCertificateItNames) {
  const auto token = issue_token("ci");
  const auto mine = client_der("ci@runner");
  const auto other = client_der("someone@else");
  const auto body = nlohmann::json{{"password", token}, {"certificate", lxd::base64_encode(other)}}.dump();
  const auto r = call("POST", "/1.0/certificates", body, false, mine);
  ASSERT_EQ(r.status, 201) << r.body;
  auto all = db_->certificates();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ(all->front().fingerprint, util::sha256_hex(mine));
  EXPECT_EQ(all->front().name, "ci");
  // Used up.
  const auto again =
      call("POST", "/1.0/certificates", nlohmann::json{{"password", token}}.dump(), false, client_der("late@runner"));
  EXPECT_EQ(again.status, 403);
  // And the client is trusted from now on.
  EXPECT_EQ(call("GET", "/1.0/certificates", "", false, mine).status, 200);
  EXPECT_EQ(call("GET", "/1.0/certificates", "", false, other).status, 403);
}

TEST_F(ApiTest, TheTrustPasswordAdmitsAndAWrongOneDoesNot) {
  ASSERT_EQ(call("PATCH", "/1.0", R"({"config":{"core.trust_password":"pw"}})", true).status, 200);
  const auto mine = client_der("a@b");
  EXPECT_EQ(call("POST", "/1.0/certificates", R"({"password":"nope"})", false, mine).status, 403);
  EXPECT_EQ(call("POST", "/1.0/certificates", R"({"password":"pw"})", false, mine).status, 201);
  EXPECT_EQ(call("POST", "/1.0/certificates", R"({"password":"pw"})", false, mine).status, 400) << "already trusted";
}

TEST_F(ApiTest, RestrictedCertificatesAreRefusedNotMadeAdmins) {
  ASSERT_EQ(call("PATCH", "/1.0", R"({"config":{"core.trust_password":"pw"}})", true).status, 200);
  const auto r = call("POST", "/1.0/certificates", R"({"password":"pw","restricted":true})", false, client_der("r@x"));
  EXPECT_EQ(r.status, 400);
  const auto t = call("POST", "/1.0/certificates", R"({"token":true,"name":"r","restricted":true})", true);
  EXPECT_EQ(t.status, 400);
  EXPECT_TRUE(db_->certificates()->empty());
}

TEST_F(ApiTest, ServerConfigHonoursIfMatchAndKeepsTheHiddenPassword) {
  ASSERT_EQ(call("PUT", "/1.0", R"({"config":{"core.trust_password":"pw","user.a":"1"}})", true).status, 200);
  const auto got = call("GET", "/1.0", "", true);
  const auto config = json(got)["metadata"]["config"];
  EXPECT_EQ(config["core.trust_password"], true);
  EXPECT_EQ(got.body.find("\"pw\""), std::string::npos);
  std::string etag;
  for (const auto& [k, v] : got.headers) {
    if (k == "ETag") etag = v;
  }
  ASSERT_FALSE(etag.empty());
  // lxc config set: the whole config back, the password as `true`, with If-Match.
  EXPECT_EQ(
      call("PUT", "/1.0", R"({"config":{"core.trust_password":true,"user.a":"2"}})", true, {}, {{"If-Match", etag}})
          .status,
      200);
  EXPECT_EQ(call("PUT", "/1.0", R"({"config":{"user.a":"3"}})", true, {}, {{"If-Match", etag}}).status, 412)
      << "the ETag is stale now";
  const auto stored = db_->config();
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->at("user.a"), "2");
  EXPECT_TRUE(check_trust_password("pw", stored->at("core.trust_password")));
}

TEST_F(ApiTest, HostileBodiesAre400s) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  for (const std::string& body : {deep, std::string("{\"config\":"), std::string("[]"), std::string("\"x\""),
                                  std::string(R"({"config":{"user.a":{"x":1}}})"), std::string(R"({"config":[1]})"),
                                  std::string(R"({"config":{"core.remote_token_expiry":"soon"}})"),
                                  std::string(R"({"config":{"core.https_address":5}})")}) {
    EXPECT_EQ(call("PUT", "/1.0", body, true).status, 400) << body.substr(0, 60);
  }
  for (const std::string& body :
       {deep, std::string(R"({"token":"yes","name":5,"password":7,"type":[],"projects":{}})"),
        std::string(R"({"certificate":"!!!"})"), std::string(R"({"certificate":"aGVsbG8="})")}) {
    const auto r = call("POST", "/1.0/certificates", body, true);
    EXPECT_GE(r.status, 400) << body.substr(0, 60);
    EXPECT_LT(r.status, 500) << body.substr(0, 60);
  }
}

}  // namespace
}  // namespace berth::daemon::api

namespace berth::daemon::api {
namespace {

// GET /1.0/operations/{id}/websocket?secret=: the secret is the credential (no trusted certificate
// needed), opens one channel once, is not spent by a request that is no upgrade, and dies with
// its operation.
TEST_F(ApiTest, AWebsocketOperationsSecretOpensOneChannelOnceAndDiesWithTheOperation) {
  const auto op = ops_.add_websocket("Executing command", nlohmann::json::object(),
                                     {{"fds", {{"0", "s0"}, {"1", "s1"}, {"control", "sc"}}}});
  const std::string id = op["id"];
  std::vector<std::string> opened;
  const auto channel = [&opened](std::string name) {
    return [&opened, name](const std::shared_ptr<http::WebSocket>&) { opened.push_back(name); };
  };
  ASSERT_TRUE(api_.sockets().add(id, {{"s0", channel("0")}, {"s1", channel("1")}, {"sc", channel("control")}}));
  const auto connect = [this](const std::string& target, bool upgrade = true) {
    http::Request r;
    r.method = "GET";
    r.target = target;
    r.peer = "127.0.0.1:5000";  // untrusted: no certificate
    r.websocket_upgrade = upgrade;
    return api_.handle(r);
  };
  const std::string base = "/1.0/operations/" + id + "/websocket";

  auto r = connect(base + "?secret=s0");
  ASSERT_TRUE(r.accept_websocket) << r.status << " " << r.body;
  r.accept_websocket(nullptr);
  EXPECT_EQ(opened, std::vector<std::string>{"0"});
  EXPECT_EQ(connect(base + "?secret=s0").status, 403) << "a secret opens its channel once";
  EXPECT_EQ(connect(base + "?secret=nope").status, 403);
  EXPECT_EQ(connect(base).status, 400) << "no secret";
  EXPECT_EQ(connect(base + "?secret=sc", false).status, 400) << "not an upgrade";
  r = connect(base + "?secret=sc");
  ASSERT_TRUE(r.accept_websocket) << "the plain GET did not spend the secret";
  r.accept_websocket(nullptr);
  EXPECT_EQ(opened, (std::vector<std::string>{"0", "control"}));

  EXPECT_TRUE(ops_.finish(id, nlohmann::json{{"return", 0}}));
  EXPECT_FALSE(ops_.finish(id, nlohmann::json::object())) << "once";
  EXPECT_EQ(json(call("GET", "/1.0/operations/" + id, "", true))["metadata"]["metadata"]["return"], 0);
  EXPECT_EQ(connect(base + "?secret=s1").status, 400) << "an ended operation takes no connection";
  EXPECT_FALSE(api_.sockets().take(id, "s1")) << "its channels went with it";
  EXPECT_EQ(connect("/1.0/operations/no-such-op/websocket?secret=s1").status, 404);

  const auto token = ops_.add_token(TokenKind::certificate_add, "t", {{"secret", "tok"}}, nlohmann::json::object());
  EXPECT_EQ(connect("/1.0/operations/" + token["id"].get<std::string>() + "/websocket?secret=tok").status, 400)
      << "a token operation is no websocket";
  EXPECT_FALSE(api_.sockets().add(token["id"], {{"x", channel("x")}}));
}

TEST(HttpsListenAddress, ReadsWhatLxdReads) {
  using Endpoint = std::pair<std::string, std::uint16_t>;
  const auto read = [](const std::string& text) {
    const auto parsed = https_listen_address(text);
    return std::holds_alternative<Endpoint>(parsed) ? std::get<Endpoint>(parsed) : Endpoint{"error", 0};
  };
  EXPECT_EQ(read("127.0.0.1:9443"), Endpoint("127.0.0.1", 9443));
  EXPECT_EQ(read("127.0.0.1"), Endpoint("127.0.0.1", 8443));
  EXPECT_EQ(read("127.0.0.1:"), Endpoint("127.0.0.1", 8443));
  EXPECT_EQ(read("[::1]:9443"), Endpoint("::1", 9443));
  EXPECT_EQ(read("[::]"), Endpoint("::", 8443));
  EXPECT_EQ(read("::"), Endpoint("::", 8443));
  EXPECT_EQ(read(":9443"), Endpoint("::", 9443));
  EXPECT_TRUE(std::holds_alternative<std::string>(https_listen_address("")));
  for (const char* bad : {"example.com:8443", "127.0.0.1:99999", "127.0.0.1:x", "[::1", "1.2.3.4.5"}) {
    const auto parsed = https_listen_address(bad);
    ASSERT_TRUE(std::holds_alternative<std::string>(parsed)) << bad;
    EXPECT_NE(std::get<std::string>(parsed).find('\''), std::string::npos) << "names the address: " << bad;
  }
}

TEST_F(ApiTest, AChangedHttpsAddressMovesTheListenerOrIsPutBack) {
  std::vector<std::string> asked;
  std::optional<std::string> outcome;  // what the listener answers
  api_.set_relisten([&](const std::string& address, std::function<void(std::optional<std::string>)> done) {
    asked.push_back(address);
    done(outcome);
  });
  const auto answer = [&](const http::Response& r) {
    if (!r.deferred) return r;
    http::Response got;
    r.deferred->start([&](http::Response reply) { got = std::move(reply); });
    return got;
  };
  const auto stored = [&] {
    auto config = db_->config();
    return config && config->count("core.https_address") ? config->at("core.https_address") : std::string("-");
  };
  EXPECT_EQ(answer(call("PATCH", "/1.0", R"({"config":{"core.https_address":"127.0.0.1:9443"}})", true)).status, 200);
  EXPECT_EQ(stored(), "127.0.0.1:9443");
  EXPECT_EQ(asked, std::vector<std::string>{"127.0.0.1:9443"});
  // The same again moves nothing; another key neither.
  EXPECT_EQ(answer(call("PATCH", "/1.0", R"({"config":{"core.https_address":"127.0.0.1:9443"}})", true)).status, 200);
  EXPECT_EQ(answer(call("PATCH", "/1.0", R"({"config":{"user.x":"y"}})", true)).status, 200);
  EXPECT_EQ(asked.size(), 1u);
  // An address that cannot be bound: 400 naming the key, and the old one stays.
  outcome = "listen on 127.0.0.1:1: Permission denied";
  const auto refused = answer(call("PATCH", "/1.0", R"({"config":{"core.https_address":"127.0.0.1:1"}})", true));
  EXPECT_EQ(refused.status, 400);
  EXPECT_NE(refused.body.find("core.https_address"), std::string::npos) << refused.body;
  EXPECT_EQ(stored(), "127.0.0.1:9443");
  // One that is no address is refused before the listener is asked.
  EXPECT_EQ(call("PATCH", "/1.0", R"({"config":{"core.https_address":"example.com:1"}})", true).status, 400);
  EXPECT_EQ(asked.size(), 2u);
  // Unset: the listener stops.
  outcome.reset();
  EXPECT_EQ(answer(call("PATCH", "/1.0", R"({"config":{"core.https_address":""}})", true)).status, 200);
  EXPECT_EQ(asked.back(), "");
  EXPECT_EQ(stored(), "-");
}

}  // namespace
}  // namespace berth::daemon::api
