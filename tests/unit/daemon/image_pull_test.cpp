// Images from another server, against an in-process fake of that server (what a real one cannot be
// made to send: a wrong image, an error, another certificate). The interplay with real LXD and
// berthd servers is tests/integration/berthd_images_test.sh.

#include "daemon/images/image_pull.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "../lxd/fake_server.hpp"
#include "../lxd/temp_dir.hpp"
#include "providers/lxd/certificate.hpp"

namespace berth::daemon {
namespace {

namespace fs = std::filesystem;
using lxd::ErrorKind;
using lxd::testing::FakeRequest;
using lxd::testing::FakeResponse;
using lxd::testing::FakeServer;
using lxd::testing::sync_body;

struct Identity {
  lxd::PemPair pem;
  static Identity make() {
    lxd::SelfSignedOptions options;
    options.common_name = "server@test";
    options.valid_days = 30;
    auto p = lxd::generate_client_certificate(options);
    if (!p) std::abort();
    return {*p};
  }
};

// A unified image made with tar, and its bytes.
std::string make_image(const fs::path& dir) {
  fs::create_directories(dir / "img/rootfs/bin");
  std::ofstream{dir / "img/metadata.yaml"} << "architecture: x86_64\ncreation_date: 1700000000\n";
  std::ofstream{dir / "img/rootfs/bin/sh"} << "#!/bin/true\n";
  const auto tarball = dir / "img.tar.gz";
  EXPECT_EQ(
      std::system(("tar -C " + (dir / "img").string() + " -czf " + tarball.string() + " metadata.yaml rootfs").c_str()),
      0);
  std::ifstream in{tarball, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, {}};
}

std::string sha256_hex(const std::string& data) {
  const auto dir = fs::temp_directory_path() / ("berth-pull-hash-" + std::to_string(::getpid()));
  { std::ofstream{dir, std::ios::binary} << data; }
  FILE* pipe = ::popen(("sha256sum " + dir.string()).c_str(), "r");
  char out[65] = {};
  EXPECT_EQ(std::fread(out, 1, 64, pipe), 64u);
  ::pclose(pipe);
  fs::remove(dir);
  return out;
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  return out;
}

class ImagePullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = ImageStore::open(tmp_.path() / "images");
    ASSERT_TRUE(opened);
    store_ = std::move(*opened);
    image_ = make_image(tmp_.path() / "src");
    fingerprint_ = sha256_hex(image_);
  }

  // A server with the image under alias "bb", readable with the secret "s3cret" only.
  FakeServer::Handler server(std::string export_body) {
    return [this, export_body = std::move(export_body)](const FakeRequest& r) -> FakeResponse {
      requests_.push_back(r.target);
      if (r.target == "/1.0/images/aliases/bb") return {200, sync_body({{"name", "bb"}, {"target", fingerprint_}})};
      if (r.target == "/1.0/images/" + fingerprint_ + "?secret=s3cret") {
        return {200, sync_body({{"fingerprint", fingerprint_}, {"properties", {{"os", "busybox"}}}})};
      }
      if (r.target == "/1.0/images/" + fingerprint_ + "/export?secret=s3cret") return {200, export_body};
      return lxd::testing::error_response(404, "Image not found");
    };
  }

  PullSource source(const FakeServer& server) const {
    return PullSource{server.url(), fingerprint_, "", "s3cret", identity_.pem.certificate};
  }

  lxd::testing::TempDir tmp_;
  std::unique_ptr<ImageStore> store_;
  std::string image_, fingerprint_;
  Identity identity_ = Identity::make();
  std::vector<std::string> requests_;
  std::function<bool(const std::string&)> nothing_here_ = [](const std::string&) { return false; };
};

TEST_F(ImagePullTest, DownloadsTheImageWithItsSecretAndChecksItsFingerprint) {
  FakeServer fake(server(image_), identity_.pem.certificate, identity_.pem.private_key);
  auto pulled = pull_image(*store_, source(fake), nothing_here_);
  ASSERT_TRUE(pulled) << pulled.error().message;
  EXPECT_EQ(pulled->fingerprint, fingerprint_);
  ASSERT_TRUE(pulled->stored);
  EXPECT_EQ(pulled->info["properties"]["os"], "busybox");
  EXPECT_EQ(store_->fingerprints(), std::vector<std::string>{fingerprint_});
}

TEST_F(ImagePullTest, AnImageThatIsHereAlreadyIsNotDownloaded) {
  FakeServer fake(server(image_), identity_.pem.certificate, identity_.pem.private_key);
  auto pulled = pull_image(*store_, source(fake), [this](const std::string& fp) { return fp == fingerprint_; });
  ASSERT_TRUE(pulled) << pulled.error().message;
  EXPECT_FALSE(pulled->stored);
  for (const auto& target : requests_) EXPECT_EQ(target.find("/export"), std::string::npos) << target;
  EXPECT_TRUE(store_->fingerprints().empty());
}

TEST_F(ImagePullTest, APublicImageIsFoundByItsAlias) {
  FakeServer fake(
      [this](const FakeRequest& r) -> FakeResponse {
        if (r.target == "/1.0/images/aliases/bb") return {200, sync_body({{"name", "bb"}, {"target", fingerprint_}})};
        if (r.target == "/1.0/images/" + fingerprint_) return {200, sync_body({{"fingerprint", fingerprint_}})};
        if (r.target == "/1.0/images/" + fingerprint_ + "/export") return {200, image_};
        return lxd::testing::error_response(404, "not found");
      },
      identity_.pem.certificate, identity_.pem.private_key);
  PullSource public_source{fake.url(), "", "bb", "", identity_.pem.certificate};
  auto pulled = pull_image(*store_, public_source, nothing_here_);
  ASSERT_TRUE(pulled) << pulled.error().message;
  EXPECT_EQ(pulled->fingerprint, fingerprint_);
}

TEST_F(ImagePullTest, BytesThatAreNotTheImageAreRefusedAndNothingIsLeft) {
  FakeServer fake(server(image_ + "tampered"), identity_.pem.certificate, identity_.pem.private_key);
  auto pulled = pull_image(*store_, source(fake), nothing_here_);
  ASSERT_FALSE(pulled);
  EXPECT_NE(pulled.error().message.find(fingerprint_.substr(0, 12)), std::string::npos) << pulled.error().message;
  EXPECT_TRUE(entries(store_->dir()).empty()) << "no upload or image file is left";
}

TEST_F(ImagePullTest, AServerThatRefusesIsNamedAndTheSecretIsNot) {
  FakeServer fake(server(image_), identity_.pem.certificate, identity_.pem.private_key);
  auto wrong = source(fake);
  wrong.secret = "other";
  auto pulled = pull_image(*store_, wrong, nothing_here_);
  ASSERT_FALSE(pulled);
  EXPECT_NE(pulled.error().message.find(fake.url()), std::string::npos) << pulled.error().message;
  EXPECT_NE(pulled.error().message.find("Image not found"), std::string::npos) << pulled.error().message;
  EXPECT_EQ(pulled.error().message.find("other"), std::string::npos) << "the secret is not in the message";
}

TEST_F(ImagePullTest, AServerWithAnotherCertificateIsNotTalkedTo) {
  FakeServer fake(server(image_), identity_.pem.certificate, identity_.pem.private_key);
  auto other = source(fake);
  other.certificate = Identity::make().pem.certificate;
  auto pulled = pull_image(*store_, other, nothing_here_);
  ASSERT_FALSE(pulled);
  EXPECT_TRUE(requests_.empty());
  EXPECT_NE(pulled.error().message.find(fake.url()), std::string::npos) << pulled.error().message;
}

TEST_F(ImagePullTest, AnAnswerThatIsNotAnImageObjectIsAProtocolError) {
  FakeServer fake(
      [](const FakeRequest&) -> FakeResponse {
        return {200, sync_body({{"fingerprint", "../x"}})};
      },
      identity_.pem.certificate, identity_.pem.private_key);
  auto pulled = pull_image(*store_, source(fake), nothing_here_);
  ASSERT_FALSE(pulled);
  EXPECT_EQ(pulled.error().kind, ErrorKind::protocol);
  EXPECT_TRUE(entries(store_->dir()).empty());
}

TEST(PullSource, TheRequestsSourceIsChecked) {
  const auto says = [](const nlohmann::json& source, const std::string& text) {
    auto parsed = parse_pull_source(source);
    ASSERT_FALSE(parsed) << source.dump();
    EXPECT_EQ(parsed.error().kind, ErrorKind::invalid_argument);
    EXPECT_NE(parsed.error().message.find(text), std::string::npos) << parsed.error().message;
  };
  says({{"server", "https://127.0.0.1:8443"}, {"protocol", "simplestreams"}, {"alias", "bb"}}, "simplestreams");
  says({{"alias", "bb"}}, "source.server");
  says({{"server", "http://127.0.0.1:8443"}, {"alias", "bb"}}, "https://");
  says({{"server", "https://127.0.0.1:8443"}}, "fingerprint or an alias");
  says({{"server", "https://127.0.0.1:8443"}, {"fingerprint", "../etc"}}, "fingerprint");
  says({{"server", "https://127.0.0.1:8443"}, {"fingerprint", "abc"}, {"secret", "a&b=c"}}, "secret");
  says({{"server", "https://127.0.0.1:8443"}, {"fingerprint", "abc"}, {"certificate", "junk"}}, "certificate");
  says({{"server", 8443}, {"fingerprint", "abc"}}, "source.server must be a string");
  auto ok = parse_pull_source(
      {{"server", "https://127.0.0.1:8443"}, {"protocol", "lxd"}, {"fingerprint", "abc"}, {"secret", "0a1b"}});
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->fingerprint, "abc");
  EXPECT_EQ(ok->secret, "0a1b");
}

}  // namespace
}  // namespace berth::daemon
