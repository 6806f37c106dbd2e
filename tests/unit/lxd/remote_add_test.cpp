#include "providers/lxd/remote_add.hpp"

#include <gtest/gtest.h>

#include "fake_lxd.hpp"
#include "providers/lxd/certificate.hpp"
#include "providers/lxd/fs_util.hpp"
#include "providers/lxd/token.hpp"
#include "temp_dir.hpp"

namespace berth::lxd {
namespace {

using testing::FakeLxd;
using testing::FakeServer;

class RemoteAdd : public testing::FakeTlsLxdTest {
 protected:
  std::string token(const std::string& fingerprint, std::vector<std::string> addresses) {
    lxd_.token_secret = "s3cr3t-token-secret";
    const nlohmann::json j = {{"client_name", "ci"},
                              {"fingerprint", fingerprint},
                              {"addresses", addresses},
                              {"secret", "abc"},
                              {"expires_at", "0001-01-01T00:00:00Z"}};
    // The fake accepts the whole token string as the password, like LXD does.
    lxd_.token_secret = base64_encode(j.dump());
    return lxd_.token_secret;
  }
  std::string address() const { return server_->url().substr(std::string("https://").size()); }
  // Nothing of a secret may be left in the config dir.
  void expect_no_secret_in_files(const std::string& secret) {
    if (!std::filesystem::exists(config_.config_dir)) return;
    for (const auto& e : std::filesystem::recursive_directory_iterator(config_.config_dir)) {
      if (!e.is_regular_file()) continue;
      auto text = detail::read_file(e.path());
      ASSERT_TRUE(text.ok());
      EXPECT_EQ(text->find(secret), std::string::npos) << e.path();
    }
  }
};

TEST_F(RemoteAdd, WithPasswordAndConfirmation) {
  std::string shown;
  AddRemoteRequest req;
  req.name = "foo";
  req.url = address();  // bare host:port, as `lxc remote add` accepts
  req.password = "sekret";
  req.confirm = [&](std::string_view fp) {
    shown = fp;
    return true;
  };
  auto added = add_remote(config_, req);
  ASSERT_TRUE(added.ok()) << added.error().message;
  EXPECT_EQ(shown, server_fp_);
  EXPECT_EQ(added->url, server_->url());
  EXPECT_EQ(added->fingerprint, server_fp_);
  auto store = RemoteStore::load(config_);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(store->find("foo"), *added);
  EXPECT_EQ(*fingerprint_of_pem_file(config_.server_certificate("foo")), server_fp_);
  expect_no_secret_in_files("sekret");

  // Adding the same remote again is fine and needs no password: we are trusted now.
  req.password.reset();
  req.accept_certificate = true;
  EXPECT_TRUE(add_remote(config_, req).ok());
}

TEST_F(RemoteAdd, WrongPassword) {
  AddRemoteRequest req{"foo", server_->url(), std::string("wrong-pw-123"), std::nullopt, true, {}, {}, {}};
  auto added = add_remote(config_, req);
  ASSERT_FALSE(added.ok());
  EXPECT_EQ(added.error().message, "remote foo: the server refused the trust password or token (403)");
  EXPECT_FALSE(std::filesystem::exists(config_.remotes_file()));
  EXPECT_FALSE(std::filesystem::exists(config_.server_certificate("foo")));
  expect_no_secret_in_files("wrong-pw-123");
}

TEST_F(RemoteAdd, DeclinedFingerprint) {
  AddRemoteRequest req{
      "foo", server_->url(), std::string("sekret"), std::nullopt, false, [](std::string_view) { return false; }, {},
      {}};
  auto added = add_remote(config_, req);
  ASSERT_FALSE(added.ok());
  EXPECT_EQ(added.error().kind, ErrorKind::rejected);
  EXPECT_NE(added.error().message.find(server_fp_), std::string::npos);
  for (const auto& r : server_->requests()) EXPECT_NE(r.method, "POST");  // the password was never sent
}

TEST_F(RemoteAdd, NoConfirmationPossible) {
  AddRemoteRequest req{"foo", server_->url(), std::string("sekret"), std::nullopt, false, {}, {}, {}};
  auto added = add_remote(config_, req);
  ASSERT_FALSE(added.ok());
  EXPECT_NE(added.error().message.find("--accept-certificate"), std::string::npos);
}

TEST_F(RemoteAdd, NeitherPasswordNorToken) {
  AddRemoteRequest req{"foo", server_->url(), std::nullopt, std::nullopt, true, {}, {}, {}};
  auto added = add_remote(config_, req);
  ASSERT_FALSE(added.ok());
  EXPECT_EQ(added.error().kind, ErrorKind::not_trusted);
  EXPECT_NE(added.error().message.find("--password"), std::string::npos);
}

TEST_F(RemoteAdd, WithTokenAndNoUrl) {
  const auto t = token(server_fp_, {"127.0.0.1:1", address()});         // the first address does not answer
  AddRemoteRequest req{"foo", "", std::nullopt, t, false, {}, {}, {}};  // no confirm needed: the token pins
  auto added = add_remote(config_, req);
  ASSERT_TRUE(added.ok()) << added.error().message;
  EXPECT_EQ(added->url, server_->url());
  expect_no_secret_in_files(t);
}

TEST_F(RemoteAdd, TokenForAnotherServerIsRefusedBeforeSendingIt) {
  const auto t = token(std::string(64, 'b'), {address()});
  AddRemoteRequest req{"foo", "", std::nullopt, t, true, {}, {}, {}};
  auto added = add_remote(config_, req);
  ASSERT_FALSE(added.ok());
  EXPECT_EQ(added.error().kind, ErrorKind::rejected);
  EXPECT_NE(added.error().message.find("refusing to send the token"), std::string::npos);
  EXPECT_EQ(added.error().message.find(t), std::string::npos);
  for (const auto& r : server_->requests()) EXPECT_NE(r.method, "POST");
}

TEST_F(RemoteAdd, UnreachableNamesRemoteAndUrl) {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  const std::string url = "https://127.0.0.1:" + std::to_string(a.local_endpoint().port());
  a.close();
  AddRemoteRequest req{"foo", url, std::string("sekret"), std::nullopt, true, {}, {}, {}};
  auto added = add_remote(config_, req);
  ASSERT_FALSE(added.ok());
  EXPECT_EQ(added.error().message.rfind("remote foo: cannot connect to " + url + ": ", 0), 0u) << added.error().message;
}

TEST_F(RemoteAdd, ExistingNameWithAnotherUrl) {
  AddRemoteRequest req{"foo", server_->url(), std::string("sekret"), std::nullopt, true, {}, {}, {}};
  ASSERT_TRUE(add_remote(config_, req).ok());
  req.url = "https://127.0.0.1:1";
  auto again = add_remote(config_, req);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().kind, ErrorKind::conflict);
  EXPECT_NE(again.error().message.find("berth remote remove foo"), std::string::npos);
}

TEST_F(RemoteAdd, PasswordAndTokenTogetherAreRefused) {
  AddRemoteRequest req{"foo", server_->url(), std::string("a"), std::string("b"), true, {}, {}, {}};
  EXPECT_EQ(add_remote(config_, req).error().kind, ErrorKind::invalid_argument);
}

TEST_F(RemoteAdd, PasswordAskedOnlyWhenNotTrusted) {
  // The CLI's flow on a terminal: confirm the fingerprint, then type the password.
  int asked = 0;
  AddRemoteRequest req;
  req.name = "foo";
  req.url = server_->url();
  req.confirm = [&](std::string_view fp) { return fp == server_fp_; };
  req.ask_secret = [&]() -> std::optional<std::string> {
    ++asked;
    return "sekret";
  };
  auto added = add_remote(config_, req);
  ASSERT_TRUE(added.ok()) << added.error().message;
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(added->fingerprint, server_fp_);
  EXPECT_EQ(*fingerprint_of_pem_file(config_.server_certificate("foo")), server_fp_);
  expect_no_secret_in_files("sekret");

  // Trusted now: nothing to ask.
  EXPECT_TRUE(add_remote(config_, req).ok());
  EXPECT_EQ(asked, 1);
}

TEST_F(RemoteAdd, NoAnswerToThePasswordPrompt) {
  AddRemoteRequest req;
  req.name = "foo";
  req.url = server_->url();
  req.accept_certificate = true;
  req.ask_secret = [] { return std::optional<std::string>{}; };  // EOF
  auto added = add_remote(config_, req);
  ASSERT_FALSE(added.ok());
  EXPECT_EQ(added.error().kind, ErrorKind::not_trusted);
  EXPECT_FALSE(std::filesystem::exists(config_.remotes_file()));
}

// Issue 7: a server that presents certificate A and then B. Only A, the certificate the user
// confirmed (or accepted with --accept-certificate, or that a token names), may ever receive the
// password or token, and B is never pinned.
class RemoteAddSwitchingServer : public RemoteAdd {
 protected:
  void SetUp() override {
    RemoteAdd::SetUp();
    auto pem = generate_client_certificate({"impostor@test", 30});
    ASSERT_TRUE(pem.ok());
    other_pem_ = *pem;
    other_fp_ = *fingerprint_of_pem(pem->certificate);
    ASSERT_NE(other_fp_, server_fp_);
  }
  void switch_from_connection(int n) {
    server_->present_from_connection(n, other_pem_.certificate, other_pem_.private_key);
  }
  void switch_now() {
    server_->present_from_now(other_pem_.certificate, other_pem_.private_key);
    server_->drop_connections();
  }
  [[nodiscard]] std::string mismatch(const std::string& pinned_as, const std::string& outcome) const {
    return "remote foo: the server presented a different certificate (sha256:" + other_fp_ + ") than the one " +
           pinned_as + " (sha256:" + server_fp_ + "); " + outcome;
  }
  [[nodiscard]] int posts() const {
    int n = 0;
    for (const auto& r : server_->requests()) n += r.method == "POST" ? 1 : 0;
    return n;
  }
  void expect_nothing_saved(const std::string& secret) {
    EXPECT_FALSE(std::filesystem::exists(config_.remotes_file()));
    EXPECT_FALSE(std::filesystem::exists(config_.server_certificates_dir()));
    expect_no_secret_in_files(secret);
  }

  PemPair other_pem_;
  std::string other_fp_;
};

TEST_F(RemoteAddSwitchingServer, AcceptCertificatePinsTheFirstOne) {
  switch_from_connection(1);  // the fetch sees A, every later connection B
  AddRemoteRequest req{"foo", server_->url(), std::string("sekret"), std::nullopt, true, {}, {}, {}};
  auto added = add_remote(config_, req);
  ASSERT_FALSE(added.ok());
  EXPECT_EQ(added.error().kind, ErrorKind::certificate_mismatch);
  EXPECT_EQ(added.error().message, mismatch("confirmed", "nothing was sent or saved"));
  EXPECT_EQ(posts(), 0);
  EXPECT_GE(server_->connections(), 2);
  expect_nothing_saved("sekret");
}

TEST_F(RemoteAddSwitchingServer, ConfirmedCertificateIsTheOnlyOneGivenThePassword) {
  switch_from_connection(1);
  std::vector<std::string> shown;
  AddRemoteRequest req;
  req.name = "foo";
  req.url = server_->url();
  req.password = "sekret";
  req.confirm = [&](std::string_view fp) {
    shown.emplace_back(fp);
    return fp == server_fp_;
  };
  auto added = add_remote(config_, req);
  ASSERT_FALSE(added.ok());
  EXPECT_EQ(shown, std::vector<std::string>{server_fp_});  // asked once, about A, never about B
  EXPECT_EQ(added.error().kind, ErrorKind::certificate_mismatch);
  EXPECT_EQ(added.error().message, mismatch("confirmed", "nothing was sent or saved"));
  EXPECT_EQ(posts(), 0);
  expect_nothing_saved("sekret");
}

TEST_F(RemoteAddSwitchingServer, PasswordTypedAfterConfirmingGoesOnlyToTheConfirmedOne) {
  // The flow of issue 7: A is confirmed, the server does not trust us yet, and while the password
  // is being typed the server restarts with B. The password must not follow it.
  int asked = 0;
  AddRemoteRequest req;
  req.name = "foo";
  req.url = server_->url();
  req.confirm = [&](std::string_view fp) { return fp == server_fp_; };
  req.ask_secret = [&]() -> std::optional<std::string> {
    ++asked;
    switch_now();
    return "sekret";
  };
  auto added = add_remote(config_, req);
  ASSERT_FALSE(added.ok());
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(added.error().kind, ErrorKind::certificate_mismatch);
  EXPECT_EQ(added.error().message, mismatch("confirmed", "nothing was sent or saved"));
  EXPECT_EQ(posts(), 0);
  expect_nothing_saved("sekret");
}

TEST_F(RemoteAddSwitchingServer, TokenIsOnlySentToTheCertificateItNames) {
  const auto t = token(server_fp_, {address()});
  switch_from_connection(1);
  AddRemoteRequest req{"foo", "", std::nullopt, t, false, {}, {}, {}};
  auto added = add_remote(config_, req);
  ASSERT_FALSE(added.ok());
  EXPECT_EQ(added.error().kind, ErrorKind::certificate_mismatch);
  EXPECT_EQ(added.error().message, mismatch("the token names", "nothing was sent or saved"));
  EXPECT_EQ(posts(), 0);
  EXPECT_EQ(lxd_.token_secret, t);  // not consumed
  expect_nothing_saved(t);
}

TEST_F(RemoteAddSwitchingServer, SwitchAfterThePasswordWasSentSavesNothing) {
  // The password reaches A; the connection then closes and the check that we are trusted now
  // meets B.
  server_ = std::make_unique<FakeServer>(
      [this](const testing::FakeRequest& r) {
        auto out = lxd_.handle(r);
        if (r.method == "POST") out.close = true;
        return out;
      },
      server_pem_.certificate, server_pem_.private_key);
  switch_from_connection(2);  // 0: the fetch, 1: GET /1.0 and the POST, 2: GET /1.0 again
  AddRemoteRequest req{"foo", server_->url(), std::string("sekret"), std::nullopt, true, {}, {}, {}};
  auto added = add_remote(config_, req);
  ASSERT_FALSE(added.ok());
  EXPECT_EQ(added.error().kind, ErrorKind::certificate_mismatch);
  EXPECT_EQ(added.error().message,
            mismatch("confirmed", "nothing was saved (the password or token went only to the pinned server)"));
  EXPECT_EQ(posts(), 1);
  expect_nothing_saved("sekret");
}

}  // namespace
}  // namespace berth::lxd
