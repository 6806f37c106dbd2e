// Images on image servers in the fleet file: server:, protocol:, fingerprint: and certificate:,
// and what is wrong with them, at file:line:col.

#include <gtest/gtest.h>

#include <fstream>

#include "engine/config/pem.hpp"
#include "engine/config/url.hpp"
#include "tests/unit/config/config_test_support.hpp"
#include "tests/unit/lxd/temp_dir.hpp"

namespace berth::config {
namespace {

using testing::all;
using testing::error_count;
using testing::expect_error;
using testing::load;

constexpr std::string_view certificate_pem = R"(-----BEGIN CERTIFICATE-----
MIIBpjCCAUugAwIBAgIUPHP4nudpn48Xc+5iRxCazTW1YA0wCgYIKoZIzj0EAwIw
JzElMCMGA1UEAwwcYmVydGggdW5pdCB0ZXN0IGltYWdlIHNlcnZlcjAgFw0yNjEy
MDIxOTU0MTNaGA8yMTI2MTEwODE5NTQxM1owJzElMCMGA1UEAwwcYmVydGggdW5p
dCB0ZXN0IGltYWdlIHNlcnZlcjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABCsq
anJdjuJOwGKK8m8Ehg6l9vOEBCoHxGrXhPBd/Zbu8iXZQAn8bf1p0Jb0REnuLvDu
Dz4OLKR9Ul6Z2tlw6wGjUzBRMB0GA1UdDgQWBBT9dUWZnwZIKkoAO2X5LoJm8XFj
zzAfBgNVHSMEGDAWgBT9dUWZnwZIKkoAO2X5LoJm8XFjzzAPBgNVHRMBAf8EBTAD
AQH/MAoGCCqGSM49BAMCA0kAMEYCIQCKwD2rnes1+l5QXbm+RCgaziSn4lBO+mmb
oXiKvSsjTAIhAL/5vNVil0LYs/yyLmzF2uj/yRYDPEo2SqlWhV/znXn9
-----END CERTIFICATE-----
)";

constexpr std::string_view head = R"(version: 1
remotes:
  a: {url: "https://127.0.0.1:8443"}
images:
)";  // images start on line 5

LoadResult load_images(std::string_view images, std::string_view containers = "") {
  return load(std::string{head} + std::string{images} + "containers:\n" + std::string{containers});
}

TEST(ImageServerConfig, ServerImageResolves) {
  const auto r = load_images(R"(  deb: {server: "https://images.example.net/releases/", alias: debian/12}
  lxd: {server: "https://10.0.0.9:8443", protocol: lxd, alias: alpine,
        fingerprint: "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"}
)",
                             "  web: {remote: a, image: deb}\n  db: {remote: a, image: lxd}\n");
  ASSERT_TRUE(r.fleet) << all(r);
  const auto& deb = r.fleet->images.at("deb");
  ASSERT_TRUE(deb.server);
  EXPECT_EQ(deb.server->url, "https://images.example.net/releases");  // canonical: no :443, no trailing '/'
  EXPECT_EQ(deb.server->protocol, model::ImageProtocol::simplestreams);
  EXPECT_FALSE(deb.remote);
  const auto& web = r.fleet->containers.at("web");
  ASSERT_TRUE(web.image);
  EXPECT_TRUE(web.image->remote.empty());
  EXPECT_EQ(web.image->alias, "debian/12");
  EXPECT_EQ(model::to_string(*web.image), "https://images.example.net/releases debian/12");
  const auto& db = r.fleet->containers.at("db");
  ASSERT_TRUE(db.image && db.image->server && db.image->fingerprint);
  EXPECT_EQ(db.image->server->protocol, model::ImageProtocol::lxd);
  EXPECT_EQ(db.image->server->url, "https://10.0.0.9:8443");
  EXPECT_EQ(*db.image->fingerprint, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
  EXPECT_EQ(model::to_string(*db.image), "https://10.0.0.9:8443 alpine (pinned abcdef012345)");
}

TEST(ImageServerConfig, RemoteAndServerAreExclusive) {
  const auto r = load_images("  deb: {remote: a, server: \"https://images.example.net\", alias: debian/12}\n");
  ASSERT_FALSE(r.fleet);
  expect_error(r, 5, 20, "images.deb.server", "remote and server are mutually exclusive");
}

TEST(ImageServerConfig, ServerKeysNeedServer) {
  const auto r = load_images("  deb: {remote: a, alias: debian/12, protocol: lxd, certificate: x.pem}\n");
  ASSERT_FALSE(r.fleet);
  expect_error(r, 5, 38, "images.deb.protocol", "protocol needs server:");
  expect_error(r, 5, 53, "images.deb.certificate", "certificate needs server:");
  EXPECT_EQ(error_count(r), 2U) << all(r);
}

TEST(ImageServerConfig, BadServerUrls) {
  const auto r = load_images(R"(  a1: {server: "http://images.example.net", alias: x}
  a2: {server: "https://images.example.net/a/../b", alias: x}
  a3: {server: "https://user@images.example.net", alias: x}
  a4: {server: "https://images.example.net/?q=1", alias: x}
  a5: {server: "images.example.net", alias: x}
)");
  ASSERT_FALSE(r.fleet);
  const auto* d = expect_error(r, 5, 16, "images.a1.server", "invalid image server URL 'http://images.example.net'");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("plain http is not supported"), std::string::npos) << d->detail;
  expect_error(r, 6, 16, "images.a2.server", "invalid image server URL");
  expect_error(r, 7, 16, "images.a3.server", "invalid image server URL");
  expect_error(r, 8, 16, "images.a4.server", "invalid image server URL");
  expect_error(r, 9, 16, "images.a5.server", "invalid image server URL");
  EXPECT_EQ(error_count(r), 5U) << all(r);
}

TEST(ImageServerConfig, BadProtocolAndFingerprint) {
  const auto r = load_images(R"(  a1: {server: "https://images.example.net", alias: x, protocol: http}
  a2: {server: "https://images.example.net", alias: x, fingerprint: abc123}
)");
  ASSERT_FALSE(r.fleet);
  expect_error(r, 5, 66, "images.a1.protocol", "invalid value 'http'");
  const auto* d = expect_error(r, 6, 69, "images.a2.fingerprint", "invalid image fingerprint 'abc123'");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("64 hex digits"), std::string::npos);
}

TEST(ImageServerConfig, CertificateIsReadRelativeToTheFleetFile) {
  lxd::testing::TempDir dir;
  std::filesystem::create_directories(dir.path() / "certs");
  std::ofstream(dir.path() / "certs" / "server.pem") << "a comment before it\n" << certificate_pem;
  std::ofstream(dir.path() / "bad.pem") << "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
  std::ofstream(dir.path() / "key.pem") << "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  const std::string fleet =
      std::string{head} + R"(  good: {server: "https://127.0.0.1:8444", alias: bb, certificate: certs/server.pem}
containers: {}
)";
  std::ofstream(dir.path() / "fleet.yaml") << fleet;
  auto r = load_fleet_file(dir.path() / "fleet.yaml", testing::fixed_env({}));
  ASSERT_TRUE(r.fleet) << all(r);
  EXPECT_EQ(r.fleet->images.at("good").server->certificate, certificate_pem);

  std::ofstream(dir.path() / "fleet.yaml")
      << std::string{head} + R"(  a1: {server: "https://127.0.0.1:8444", alias: bb, certificate: missing.pem}
  a2: {server: "https://127.0.0.1:8444", alias: bb, certificate: bad.pem}
  a3: {server: "https://127.0.0.1:8444", alias: bb, certificate: key.pem}
  a4: {server: "https://127.0.0.1:8444", alias: bb, certificate: certs}
  a5: {server: "https://127.0.0.1:8444", alias: bb, certificate: /dev/null}
containers: {}
)";
  r = load_fleet_file(dir.path() / "fleet.yaml", testing::fixed_env({}));
  ASSERT_FALSE(r.fleet);
  const std::string text = all(r);
  EXPECT_NE(text.find(":5:66: error: images.a1.certificate: unusable certificate file '" +
                      (dir.path() / "missing.pem").string() + "': no such file"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(":6:66: error: images.a2.certificate: unusable certificate file '" +
                      (dir.path() / "bad.pem").string() + "': the certificate is not valid base64"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("key.pem': it has no -----BEGIN CERTIFICATE----- line"), std::string::npos) << text;
  EXPECT_NE(text.find("certs': it is a directory"), std::string::npos) << text;
  EXPECT_NE(text.find("'/dev/null': it is not a regular file"), std::string::npos) << text;
}

TEST(ImageServerConfig, PemCheck) {
  const auto good = check_certificate_pem(certificate_pem);
  ASSERT_TRUE(good.pem) << good.problem;
  EXPECT_EQ(*good.pem, certificate_pem);
  // CRLF line ends and other line lengths are read the same way.
  std::string crlf;
  for (const char c : certificate_pem) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  EXPECT_EQ(check_certificate_pem(crlf).pem, good.pem);
  // A truncated body is not a whole DER certificate.
  std::string cut{certificate_pem};
  cut.erase(cut.find("oXiKvSsj"), 57);
  EXPECT_FALSE(check_certificate_pem(cut).pem);
  EXPECT_FALSE(check_certificate_pem("").pem);
  EXPECT_FALSE(check_certificate_pem("-----BEGIN CERTIFICATE-----\nMIIB\n").pem);
}

TEST(ImageServerConfig, ImageServerUrlRules) {
  EXPECT_EQ(parse_image_server_url("https://images.example.net").url->to_string(), "https://images.example.net");
  EXPECT_EQ(parse_image_server_url("https://images.example.net:443/").url->to_string(), "https://images.example.net");
  EXPECT_EQ(parse_image_server_url("https://[::1]:8444/a//b").problem, "the path has an empty part (//)");
  EXPECT_EQ(parse_image_server_url("https://[::1]:8444/a/b/").url->to_string(), "https://[::1]:8444/a/b");
  EXPECT_EQ(parse_image_server_url("https://cloud-images.ubuntu.com/releases").url->path, "/releases");
  EXPECT_FALSE(parse_image_server_url("https://x/a b").url);
  EXPECT_FALSE(parse_image_server_url("https://x:0").url);
  EXPECT_FALSE(parse_image_server_url("unix:///var/lib/lxd/unix.socket").url);
  EXPECT_EQ(normalize_image_fingerprint(std::string(64, 'A')), std::string(64, 'a'));
  EXPECT_FALSE(normalize_image_fingerprint(std::string(63, 'a')));
  EXPECT_FALSE(normalize_image_fingerprint("sha256:" + std::string(64, 'a')));
}

}  // namespace
}  // namespace berth::config
