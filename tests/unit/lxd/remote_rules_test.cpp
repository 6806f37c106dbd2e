// One rule each for remote URLs, remote names and fingerprints: the fleet file, `berth remote add`,
// the remote store, tokens and the provider's connection code give the same answer for the same
// input (engine/config/url.hpp and names.hpp decide; everyone else asks them).

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/config/load.hpp"
#include "engine/config/names.hpp"
#include "engine/config/url.hpp"
#include "providers/lxd/certificate.hpp"
#include "providers/lxd/remote_add.hpp"
#include "providers/lxd/remote_store.hpp"
#include "providers/lxd/token.hpp"
#include "providers/lxd/url.hpp"
#include "temp_dir.hpp"

namespace berth::lxd {
namespace {

config::EnvLookup no_env() {
  return [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
}

std::string yaml_quoted(const std::string& s) {
  return nlohmann::json(s).dump();  // a JSON string is a YAML double-quoted scalar
}

// Errors of a fleet file whose only remote is `name` with `url` and, when given, `fingerprint`.
bool fleet_accepts(const std::string& name, const std::string& url, const std::string& fingerprint = {}) {
  std::string text = "version: 1\nremotes:\n  " + yaml_quoted(name) + ":\n    url: " + yaml_quoted(url) + "\n";
  if (!fingerprint.empty()) text += "    fingerprint: " + yaml_quoted(fingerprint) + "\n";
  const auto loaded = config::load_fleet_text(text, "fleet.yaml", no_env());
  return loaded.fleet.has_value();
}

struct UrlCase {
  std::string url;
  bool valid;
};

const std::vector<UrlCase> url_cases = {
    {"https://h", true},
    {"https://h:8443", true},
    {"https://[::1]:8443", true},
    {"https://[fd00::1]", true},
    {"unix:///x", true},
    {"unix:///var/lib/lxd/unix.socket", true},
    {"https://10.0.0.1", true},
    {"https://10.0.0.1:9443/", true},
    {"https://lxd.example.com:8443", true},
    {"https://a-b.c.example.", true},
    {"https://my_host:8443", true},  // '_' as Go's resolver (and so `lxc`) takes it
    {"https://_srv.example", true},
    {"https://h?x=1", false},
    {"", false},
    {"http://h:8443", false},
    {"ftp://h", false},
    {"HTTPS://h", false},
    {"https://", false},
    {"https://:8443", false},
    {"https://h:0", false},
    {"https://h:65536", false},
    {"https://h:", false},
    {"https://h:84x3", false},
    {"https://h/1.0", false},
    {"https://h#f", false},
    {"https://u:p@h", false},
    {"https://fd00::1", false},
    {"https://[fd00::1", false},
    {"https://[zz::1]:8443", false},
    {"https://[fe80::1%eth0]:8443", false},
    {"https://[::1]x", false},
    {"https://300.1.1.1", false},
    {"https://1.2.3", false},
    {"https://-h.example", false},
    {"https://h-.example", false},
    {"https://h..example", false},
    {"https://ho st", false},
    {"https://h\xc3\xa9", false},
    {"https://" + std::string(64, 'a') + ".example", false},
    {"unix://host/s", false},
    {"unix:/s", false},
    {"unix:///", false},
    {"unix://", false},
    {"unix:///" + std::string(120, 's'), false},
};

TEST(RemoteRules, UrlsGetTheSameAnswerEverywhere) {
  testing::TempDir tmp;
  const ClientConfig config{tmp.path() / "cfg"};
  for (const auto& [url, valid] : url_cases) {
    SCOPED_TRACE(url);
    EXPECT_EQ(!config::url_problem(url).has_value(), valid) << config::url_problem(url).value_or("");
    EXPECT_EQ(fleet_accepts("r", url), valid);
    EXPECT_EQ(parse_url(url).ok(), valid);
    // `berth remote add` takes bare addresses too; anything with a scheme is a URL.
    if (url.find("://") != std::string::npos || url.starts_with("unix:")) {
      EXPECT_EQ(normalize_remote_url(url).ok(), valid);
    }
    if (!valid) {
      AddRemoteRequest request;
      request.name = "r";
      request.url = url;
      request.accept_certificate = true;
      auto added = add_remote(config, request);
      ASSERT_FALSE(added.ok());
      EXPECT_EQ(added.error().kind, ErrorKind::invalid_argument) << added.error().message;
    }
  }
  EXPECT_FALSE(std::filesystem::exists(config.remotes_file()));
}

TEST(RemoteRules, CanonicalUrls) {
  EXPECT_EQ(*normalize_remote_url("https://h"), "https://h:8443");
  EXPECT_EQ(*normalize_remote_url("https://[::1]:8443/"), "https://[::1]:8443");
  EXPECT_EQ(*normalize_remote_url("my_host"), "https://my_host:8443");
  EXPECT_EQ(*normalize_remote_url("fd00::1"), "https://[fd00::1]:8443");
  EXPECT_EQ(*normalize_remote_url("unix:///x"), "unix:///x");
  EXPECT_EQ(config::parse_remote_url("https://[::1]:9000").url->to_string(), "https://[::1]:9000");
  // A bare address gets the URL rules: the same reasons, whichever way it is written.
  EXPECT_EQ(config::parse_remote_address("h:0").problem, config::parse_remote_url("https://h:0").problem);
  EXPECT_EQ(config::parse_remote_address("h_x..y").problem, config::parse_remote_url("https://h_x..y").problem);
  EXPECT_FALSE(normalize_remote_url("").ok());
}

struct NameCase {
  std::string name;
  bool valid;
};

const std::vector<NameCase> name_cases = {
    {"h1", true},
    {"my.lab", true},
    {"lxd.example.com", true},
    {"10.0.0.5", true},
    {"_x", true},
    {"a-b_c.d", true},
    {"Web", true},
    {std::string(63, 'a'), true},
    {"", false},
    {"-x", false},
    {".x", false},
    {".", false},
    {"..", false},
    {"../etc", false},
    {"a b", false},
    {"a:b", false},
    {"a/b", false},
    {"\xc3\xbc"
     "ber",
     false},
    {std::string(64, 'a'), false},
};

TEST(RemoteRules, NamesGetTheSameAnswerEverywhere) {
  testing::TempDir tmp;
  const ClientConfig config{tmp.path() / "cfg"};
  auto store = RemoteStore::load(config);
  ASSERT_TRUE(store.ok());
  for (const auto& [name, valid] : name_cases) {
    SCOPED_TRACE(name);
    EXPECT_EQ(!config::remote_name_problem(name).has_value(), valid);
    EXPECT_EQ(fleet_accepts(name, "unix:///x"), valid);
    // A unix remote is stored without a certificate: nothing but the name can fail.
    EXPECT_EQ(store->add({name, "unix:///x", ""}, "").ok(), valid);
    if (!valid) {
      AddRemoteRequest request;
      request.name = name;
      request.url = "unix:///x";
      auto added = add_remote(config, request);
      ASSERT_FALSE(added.ok());
      EXPECT_NE(added.error().message.find("invalid remote name"), std::string::npos) << added.error().message;
    }
  }
  // A name that is valid in the fleet file can name an image's remote too (REMOTE:ALIAS).
  const auto loaded = config::load_fleet_text(
      "version: 1\nremotes:\n  my.lab: {url: \"unix:///x\"}\ncontainers:\n  c1: {remote: my.lab, image: "
      "\"my.lab:alpine/3.19\"}\n",
      "fleet.yaml", no_env());
  EXPECT_TRUE(loaded.fleet.has_value()) << diag::format(loaded.diagnostics);
}

TEST(RemoteRules, FingerprintsGetTheSameAnswerEverywhere) {
  const std::string hex(64, 'a');
  std::string pairs;
  for (int i = 0; i < 32; ++i) pairs += (i > 0 ? ":" : "") + std::string{"AA"};
  const std::vector<std::pair<std::string, bool>> cases = {
      {hex, true},
      {std::string(64, 'F'), true},
      {"sha256:" + hex, true},
      {pairs, true},
      {"sha256:" + pairs, true},
      {std::string(63, 'a'), false},
      {std::string(65, 'a'), false},
      {std::string(64, 'g'), false},
      {"sha1:" + hex, false},
      {"SHA256:" + hex, false},
      {"sha256:", false},
      {hex.substr(0, 32) + " " + hex.substr(32), false},
      {pairs.substr(0, 94) + ";a", false},
  };
  for (const auto& [fingerprint, valid] : cases) {
    SCOPED_TRACE(fingerprint);
    EXPECT_EQ(config::normalize_fingerprint(fingerprint).has_value(), valid);
    EXPECT_EQ(fleet_accepts("r", "https://h", fingerprint), valid);
    const nlohmann::json token = {{"client_name", "ci"},
                                  {"fingerprint", fingerprint},
                                  {"addresses", {"127.0.0.1:8443"}},
                                  {"secret", "abc"},
                                  {"expires_at", "0001-01-01T00:00:00Z"}};
    auto decoded = decode_token(base64_encode(token.dump()));
    EXPECT_EQ(decoded.ok(), valid);
    if (valid && decoded.ok()) EXPECT_EQ(decoded->fingerprint, *config::normalize_fingerprint(fingerprint));
  }
}

}  // namespace
}  // namespace berth::lxd
