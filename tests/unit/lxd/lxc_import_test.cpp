#include "providers/lxd/lxc_import.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <map>

#include "providers/lxd/certificate.hpp"
#include "providers/lxd/fs_util.hpp"
#include "providers/lxd/remote_store.hpp"
#include "temp_dir.hpp"

namespace berth::lxd {
namespace {

// What `lxc remote add` (LXD 5.0) writes, with the remotes it keeps by default.
constexpr std::string_view lxc_5_0_config = R"(default-remote: local
remotes:
  h1:
    addr: https://127.10.0.1:8443
    auth_type: tls
    project: default
    protocol: lxd
    public: false
  images:
    addr: https://images.linuxcontainers.org
    protocol: simplestreams
    public: true
  local:
    addr: unix://
    public: false
aliases: {}
)";

TEST(LxcConfigParse, ReadsWhatLxcWrites) {
  auto config = parse_lxc_config(lxc_5_0_config, "config.yml");
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->default_remote, "local");
  ASSERT_EQ(config->remotes.size(), 3U);
  const auto& h1 = config->remotes[0];
  EXPECT_EQ(h1.name, "h1");
  EXPECT_EQ(h1.addr, "https://127.10.0.1:8443");
  EXPECT_EQ(h1.protocol, "lxd");
  EXPECT_EQ(h1.auth_type, "tls");
  EXPECT_EQ(h1.project, "default");
  EXPECT_FALSE(h1.is_public);
  EXPECT_TRUE(h1.problem.empty());
  EXPECT_EQ(config->remotes[1].name, "images");
  EXPECT_TRUE(config->remotes[1].is_public);
  EXPECT_EQ(config->remotes[1].protocol, "simplestreams");
  EXPECT_EQ(config->remotes[2].name, "local");
  EXPECT_EQ(config->remotes[2].addr, "unix://");
}

TEST(LxcConfigParse, EmptyFilesAndSectionsHaveNoRemotes) {
  for (const char* text : {"", "\n", "# nothing\n", "remotes:\n", "remotes: {}\n", "default-remote: x\n"}) {
    auto config = parse_lxc_config(text, "config.yml");
    ASSERT_TRUE(config.ok()) << text << ": " << config.error().message;
    EXPECT_TRUE(config->remotes.empty()) << text;
  }
}

// Malformed YAML and a document of the wrong shape are errors naming the file and the place; never a
// crash, never an exception.
TEST(LxcConfigParse, BadYamlIsAClearError) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"remotes: {h1: [\n", "config.yml:2:1: malformed YAML"},
      {"remotes:\n  h1: {addr: \"x\n", "config.yml:3:1: malformed YAML"},
      {"remotes:\n  - a\n ,\n", "config.yml:"},
      {"\t- x", "config.yml:1:"},
      {"just text\n", "config.yml:1:1: not a map of settings"},
      {"- a\n- b\n", "config.yml:1:1: not a map of settings"},
      {"remotes: [a, b]\n", "config.yml:1:10: remotes is not a map"},
      {"remotes: text\n", "config.yml:1:10: remotes is not a map"},
      {std::string(5000, '[') + std::string(5000, ']'), "config.yml"},
      {"a: &x [*x]\n", "config.yml"},
  };
  for (const auto& [text, expected] : cases) {
    auto config = parse_lxc_config(text, "config.yml");
    if (config.ok()) {
      // A few odd but well-formed documents are valid YAML; they must just hold no remotes.
      EXPECT_TRUE(config->remotes.empty()) << text.substr(0, 40);
      continue;
    }
    EXPECT_EQ(config.error().kind, ErrorKind::invalid_argument) << text.substr(0, 40);
    EXPECT_EQ(config.error().message.rfind(expected, 0), 0U) << text.substr(0, 40) << " -> " << config.error().message;
  }
  EXPECT_FALSE(parse_lxc_config("remotes: {h1: [\n", "config.yml").ok());
  EXPECT_FALSE(parse_lxc_config("just text\n", "config.yml").ok());
  EXPECT_FALSE(parse_lxc_config("remotes: [a]\n", "config.yml").ok());
}

TEST(LxcConfigParse, ARemoteThatCannotBeReadKeepsItsProblem) {
  auto config = parse_lxc_config(R"(remotes:
  a: text
  b: {protocol: lxd}
  c: {addr: [x]}
  d: {addr: "https://h", public: maybe}
  e: {addr: "https://h", public: yes}
  f: {addr: "https://h", project: }
  [x]: {addr: "https://h"}
)",
                                 "config.yml");
  ASSERT_TRUE(config.ok()) << config.error().message;
  std::map<std::string, LxcRemote> by_name;
  for (const auto& r : config->remotes) by_name[r.name] = r;
  EXPECT_EQ(by_name["a"].problem, "its entry is not a map of settings");
  EXPECT_EQ(by_name["b"].problem, "it has no addr");
  EXPECT_EQ(by_name["c"].problem, "its addr is not text");
  EXPECT_EQ(by_name["d"].problem, "its public is not true or false");
  EXPECT_TRUE(by_name["e"].problem.empty());
  EXPECT_TRUE(by_name["e"].is_public);
  EXPECT_TRUE(by_name["f"].problem.empty());
  EXPECT_EQ(by_name[""].problem, "its name is not text");
}

mode_t mode_of(const std::filesystem::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

void write(const std::filesystem::path& path, std::string_view text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream{path, std::ios::binary} << text;
}

class LxcImport : public ::testing::Test {
 protected:
  void SetUp() override {
    auto client = generate_client_certificate({"lxc@test", 30});
    auto server = generate_client_certificate({"server@test", 30});
    ASSERT_TRUE(client.ok() && server.ok());
    client_ = *client;
    server_pem_ = server->certificate;
    server_fp_ = *fingerprint_of_pem(server_pem_);
    client_fp_ = *fingerprint_of_pem(client_.certificate);
    std::filesystem::create_directories(lxc_);
    write(lxc_ / "client.crt", client_.certificate);
    write(lxc_ / "client.key", client_.private_key);
    write(lxc_ / "servercerts" / "h1.crt", server_pem_);
    write(lxc_ / "servercerts" / "my.lab.crt", server_pem_);
    write(socket_, "");  // stands in for the local daemon's socket: only its existence matters
    write(lxc_ / "config.yml", R"(default-remote: local
remotes:
  h1: {addr: "https://127.10.0.1:8443", auth_type: tls, project: default, protocol: lxd, public: false}
  my.lab: {addr: "https://[::1]:9443", protocol: lxd}
  sock: {addr: "unix:///run/other.socket"}
  local: {addr: "unix://", public: false}
  images: {addr: "https://images.linuxcontainers.org", protocol: simplestreams, public: true}
  pub: {addr: "https://pub.example", protocol: lxd, public: true}
  oidc: {addr: "https://o.example:8443", auth_type: oidc, protocol: lxd}
  proj: {addr: "https://p.example:8443", project: dev, protocol: lxd}
  nocert: {addr: "https://n.example:8443", protocol: lxd}
  "bad name": {addr: "https://b.example:8443", protocol: lxd}
  badaddr: {addr: "https://b.example/path", protocol: lxd}
)");
  }

  LxcImportOptions options() const {
    LxcImportOptions o;
    o.from = lxc_;
    o.default_sockets = {tmp_.path() / "missing.socket", socket_};
    return o;
  }

  std::map<std::string, LxcImportedRemote> by_name(const LxcImportReport& report) const {
    std::map<std::string, LxcImportedRemote> out;
    for (const auto& r : report.remotes) out[r.name] = r;
    return out;
  }

  testing::TempDir tmp_;
  std::filesystem::path lxc_ = tmp_.path() / "lxc";
  std::filesystem::path socket_ = tmp_.path() / "lxd" / "unix.socket";
  ClientConfig config_{tmp_.path() / "berth"};
  PemPair client_;
  std::string client_fp_;
  std::string server_pem_;
  std::string server_fp_;
};

TEST_F(LxcImport, ImportsHostsAndTheClientCertificateAndSaysWhyOthersAreSkipped) {
  auto report = import_lxc(config_, options());
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_FALSE(report->failed());
  EXPECT_EQ(report->certificate, LxcCertificateOutcome::copied);
  EXPECT_EQ(report->certificate_fingerprint, client_fp_);
  auto r = by_name(*report);
  EXPECT_EQ(r["h1"].outcome, LxcImportOutcome::imported);
  EXPECT_EQ(r["h1"].url, "https://127.10.0.1:8443");
  EXPECT_EQ(r["h1"].fingerprint, server_fp_);
  EXPECT_EQ(r["my.lab"].outcome, LxcImportOutcome::imported);
  EXPECT_EQ(r["my.lab"].url, "https://[::1]:9443");
  EXPECT_EQ(r["sock"].outcome, LxcImportOutcome::imported);
  EXPECT_EQ(r["sock"].url, "unix:///run/other.socket");
  EXPECT_EQ(r["local"].outcome, LxcImportOutcome::imported);
  EXPECT_EQ(r["local"].url, "unix://" + socket_.string());
  const std::map<std::string, std::string> skipped = {
      {"images", "image server (protocol simplestreams)"},
      {"pub", "public image server"},
      {"oidc", "authenticates with oidc"},
      {"proj", "project 'dev'"},
      {"nocert", "no servercerts/nocert.crt"},
      {"bad name", "berth cannot use this name"},
      {"badaddr", "no path, query or fragment"},
  };
  for (const auto& [name, why] : skipped) {
    EXPECT_EQ(r[name].outcome, LxcImportOutcome::skipped) << name;
    EXPECT_NE(r[name].reason.find(why), std::string::npos) << name << ": " << r[name].reason;
  }

  // berth's config dir now holds lxc's identity, the key private, and the remotes pinned.
  auto text = detail::read_file(config_.client_key());
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, client_.private_key);
  EXPECT_EQ(mode_of(config_.client_key()), 0600U);
  EXPECT_EQ(load_client_identity(config_)->fingerprint, client_fp_);
  auto store = RemoteStore::load(config_);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(store->list().size(), 4U);
  EXPECT_EQ(store->find("h1")->fingerprint, server_fp_);
  EXPECT_EQ(*fingerprint_of_pem_file(config_.server_certificate("my.lab")), server_fp_);
  EXPECT_TRUE(store->find("sock")->fingerprint.empty());

  // Again: nothing changes.
  auto again = import_lxc(config_, options());
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->certificate, LxcCertificateOutcome::same);
  for (const auto& name : {"h1", "my.lab", "sock", "local"}) {
    EXPECT_EQ(by_name(*again)[name].outcome, LxcImportOutcome::unchanged) << name;
  }
}

TEST_F(LxcImport, WithoutTheDefaultSocketLocalIsSkipped) {
  auto o = options();
  o.default_sockets = {tmp_.path() / "none.socket"};
  auto report = import_lxc(config_, o);
  ASSERT_TRUE(report.ok()) << report.error().message;
  auto local = by_name(*report)["local"];
  EXPECT_EQ(local.outcome, LxcImportOutcome::skipped);
  EXPECT_NE(local.reason.find("none.socket"), std::string::npos) << local.reason;
}

TEST_F(LxcImport, DryRunWritesNothing) {
  auto o = options();
  o.dry_run = true;
  auto report = import_lxc(config_, o);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(by_name(*report)["h1"].outcome, LxcImportOutcome::imported);
  EXPECT_EQ(report->certificate, LxcCertificateOutcome::copied);
  EXPECT_FALSE(std::filesystem::exists(config_.config_dir));
}

TEST_F(LxcImport, ANameBerthUsesForSomethingElseFailsUnlessForced) {
  {
    auto store = RemoteStore::load(config_);
    ASSERT_TRUE(store->add({"h1", "unix:///elsewhere", ""}, "").ok());
  }
  auto report = import_lxc(config_, options());
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_TRUE(report->failed());
  auto h1 = by_name(*report)["h1"];
  EXPECT_EQ(h1.outcome, LxcImportOutcome::failed);
  EXPECT_NE(h1.reason.find("--force"), std::string::npos) << h1.reason;
  EXPECT_EQ(by_name(*report)["my.lab"].outcome, LxcImportOutcome::imported);  // the others are imported
  EXPECT_EQ(RemoteStore::load(config_)->find("h1")->url, "unix:///elsewhere");

  auto o = options();
  o.force = true;
  auto forced = import_lxc(config_, o);
  ASSERT_TRUE(forced.ok()) << forced.error().message;
  EXPECT_FALSE(forced->failed());
  EXPECT_EQ(by_name(*forced)["h1"].outcome, LxcImportOutcome::replaced);
  EXPECT_EQ(RemoteStore::load(config_)->find("h1")->url, "https://127.10.0.1:8443");
  EXPECT_EQ(*fingerprint_of_pem_file(config_.server_certificate("h1")), server_fp_);
}

TEST_F(LxcImport, BerthsOwnCertificateIsNotReplacedUnlessAsked) {
  auto mine = ensure_client_identity(config_);
  ASSERT_TRUE(mine.ok());
  auto mine_key = detail::read_file(config_.client_key());
  auto refused = import_lxc(config_, options());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, ErrorKind::conflict);
  EXPECT_NE(refused.error().message.find("--replace-certificate"), std::string::npos) << refused.error().message;
  EXPECT_NE(refused.error().message.find(mine->fingerprint), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(config_.remotes_file()));  // nothing imported
  EXPECT_EQ(load_client_identity(config_)->fingerprint, mine->fingerprint);

  auto o = options();
  o.replace_certificate = true;
  auto replaced = import_lxc(config_, o);
  ASSERT_TRUE(replaced.ok()) << replaced.error().message;
  EXPECT_EQ(replaced->certificate, LxcCertificateOutcome::replaced);
  EXPECT_EQ(replaced->previous_fingerprint, mine->fingerprint);
  EXPECT_EQ(load_client_identity(config_)->fingerprint, client_fp_);
  EXPECT_EQ(*detail::read_file(config_.client_key().string() + ".old"), *mine_key);
  EXPECT_EQ(mode_of(config_.client_key().string() + ".old"), 0600U);
  EXPECT_EQ(*fingerprint_of_pem_file(config_.client_certificate().string() + ".old"), mine->fingerprint);
}

TEST_F(LxcImport, AKeyBerthCannotUseStopsTheImport) {
  auto other = generate_client_certificate({"other@test", 30});
  ASSERT_TRUE(other.ok());
  write(lxc_ / "client.key", other->private_key);
  auto mismatch = import_lxc(config_, options());
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.error().message.find("not the certificate's"), std::string::npos) << mismatch.error().message;

  write(lxc_ / "client.key", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n");
  auto encrypted = import_lxc(config_, options());
  ASSERT_FALSE(encrypted.ok());
  EXPECT_NE(encrypted.error().message.find("passphrase"), std::string::npos) << encrypted.error().message;
  EXPECT_FALSE(std::filesystem::exists(config_.config_dir));
  // The key's text is never in a message.
  EXPECT_EQ(mismatch.error().message.find("PRIVATE KEY"), std::string::npos);
}

TEST_F(LxcImport, WithoutLxcsCertificateHttpsRemotesAreSkippedAndSocketsImported) {
  std::filesystem::remove(lxc_ / "client.key");
  auto report = import_lxc(config_, options());
  ASSERT_TRUE(report.ok()) << report.error().message;
  auto r = by_name(*report);
  EXPECT_EQ(r["h1"].outcome, LxcImportOutcome::skipped);
  EXPECT_NE(r["h1"].reason.find("no client certificate"), std::string::npos) << r["h1"].reason;
  EXPECT_EQ(r["sock"].outcome, LxcImportOutcome::imported);
  EXPECT_EQ(report->certificate, LxcCertificateOutcome::not_needed);
  EXPECT_FALSE(std::filesystem::exists(config_.client_key()));
}

TEST_F(LxcImport, NoOrBrokenConfigIsAClearError) {
  auto o = options();
  o.from = tmp_.path() / "nowhere";
  auto none = import_lxc(config_, o);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("no lxc configuration in"), std::string::npos) << none.error().message;

  write(lxc_ / "config.yml", "remotes: {h1: [\n");
  auto bad = import_lxc(config_, options());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find((lxc_ / "config.yml").string() + ":2:1: malformed YAML"), std::string::npos)
      << bad.error().message;
  EXPECT_FALSE(std::filesystem::exists(config_.config_dir));
}

}  // namespace
}  // namespace berth::lxd
