// Good fleet files: the resolved model, defaults, interpolation, digests, reading from disk.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/util/sha256.hpp"
#include "tests/unit/config/config_test_support.hpp"

namespace berth::config {
namespace {

using testing::all;
using testing::expect_error;
using testing::fixed_env;
using testing::load;

constexpr std::string_view full = R"(version: 1
name: prod
prune: true
remotes:
  a:
    url: https://10.0.0.1:8443
    fingerprint: sha256:ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789
    parallelism: 8
  b:
    url: unix:///var/lib/lxd/unix.socket
images:
  bb: {remote: a, alias: bb}
  local-debian: {alias: debian/12}
containers:
  web:
    remote: b
    image: bb
    state: stopped
    config:
      limits.cpu: 2
      limits.memory: 256MiB
      boot.autostart: true
      security.nesting: yes
      user.ratio: 0.50
      user.quoted: "3"
    devices:
      root: {type: disk, pool: default, path: /}
      eth0: {type: nic, network: lxdbr0, mtu: 1500}
    profiles: [default, web]
    snapshots: [s1, s2]
    restart: allowed
    move: allowed
  db:
    remote: a
    image: local-debian
    snapshots: {names: [nightly], prune: true}
  cache:
    remote: b
    image: a:alpine/3.19
    profiles: []
  copy1: {remote: a, copy_of: web}
  copy2: {remote: b, copy_of: web/s2, state: frozen}
  gone: {remote: a, state: absent}
)";

TEST(ConfigLoad, ResolvesTheWholeModel) {
  const auto r = load(full);
  ASSERT_TRUE(r.fleet) << all(r);
  EXPECT_TRUE(r.diagnostics.empty()) << all(r);
  const model::Fleet& f = *r.fleet;
  EXPECT_EQ(f.version, 1);
  EXPECT_EQ(f.name, "prod");
  EXPECT_TRUE(f.prune);
  EXPECT_EQ(f.path, "fleet.yaml");
  EXPECT_EQ(f.digest, "sha256:" + util::sha256_hex(full));

  ASSERT_EQ(f.remotes.size(), 2U);
  const auto& a = f.remotes.at("a");
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.url, "https://10.0.0.1:8443");
  EXPECT_EQ(a.fingerprint, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
  EXPECT_EQ(a.parallelism, 8);
  EXPECT_EQ(a.where.file, "fleet.yaml");
  EXPECT_EQ(a.where.line, 5);
  EXPECT_EQ(a.where.column, 3);
  const auto& b = f.remotes.at("b");
  EXPECT_EQ(b.url, "unix:///var/lib/lxd/unix.socket");
  EXPECT_FALSE(b.fingerprint);
  EXPECT_EQ(b.parallelism, 4);

  ASSERT_EQ(f.images.size(), 2U);
  EXPECT_EQ(f.images.at("bb").remote, "a");
  EXPECT_EQ(f.images.at("bb").alias, "bb");
  EXPECT_FALSE(f.images.at("local-debian").remote);
  EXPECT_EQ(f.images.at("local-debian").alias, "debian/12");

  ASSERT_EQ(f.containers.size(), 6U);
  const auto& web = f.containers.at("web");
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.remote, "b");
  EXPECT_EQ(web.image, (model::ImageRef{"a", "bb"}));  // the image's own remote
  EXPECT_FALSE(web.copy_of);
  EXPECT_EQ(web.state, model::DesiredState::stopped);
  const model::ConfigMap config{{"limits.cpu", "2"},         {"limits.memory", "256MiB"}, {"boot.autostart", "true"},
                                {"security.nesting", "yes"}, {"user.ratio", "0.50"},      {"user.quoted", "3"}};
  EXPECT_EQ(web.config, config);  // scalars as written
  const model::DeviceMap devices{{"root", {{"type", "disk"}, {"pool", "default"}, {"path", "/"}}},
                                 {"eth0", {{"type", "nic"}, {"network", "lxdbr0"}, {"mtu", "1500"}}}};
  EXPECT_EQ(web.devices, devices);
  EXPECT_EQ(web.profiles, (std::vector<std::string>{"default", "web"}));
  EXPECT_EQ(web.snapshots, (std::vector<std::string>{"s1", "s2"}));
  EXPECT_FALSE(web.prune_snapshots);
  EXPECT_EQ(web.restart, model::Consent::allowed);
  EXPECT_EQ(web.move, model::Consent::allowed);
  EXPECT_EQ(web.where.line, 15);
  EXPECT_EQ(web.where.column, 3);

  const auto& db = f.containers.at("db");
  EXPECT_EQ(db.image, (model::ImageRef{"a", "debian/12"}));  // no image remote: the container's
  EXPECT_EQ(db.state, model::DesiredState::running);
  EXPECT_EQ(db.snapshots, (std::vector<std::string>{"nightly"}));
  EXPECT_TRUE(db.prune_snapshots);
  EXPECT_FALSE(db.profiles);  // unset: not managed
  EXPECT_EQ(db.restart, model::Consent::denied);
  EXPECT_EQ(db.move, model::Consent::denied);

  const auto& cache = f.containers.at("cache");
  EXPECT_EQ(cache.image, (model::ImageRef{"a", "alpine/3.19"}));  // REMOTE:ALIAS
  ASSERT_TRUE(cache.profiles);
  EXPECT_TRUE(cache.profiles->empty());  // managed, and empty

  const auto& copy1 = f.containers.at("copy1");
  EXPECT_FALSE(copy1.image);
  EXPECT_EQ(copy1.copy_of, (model::CopySource{"web", std::nullopt}));
  const auto& copy2 = f.containers.at("copy2");
  EXPECT_EQ(copy2.copy_of, (model::CopySource{"web", "s2"}));
  EXPECT_EQ(copy2.state, model::DesiredState::frozen);

  const auto& gone = f.containers.at("gone");
  EXPECT_EQ(gone.state, model::DesiredState::absent);
  EXPECT_FALSE(gone.image);
  EXPECT_FALSE(gone.copy_of);
}

TEST(ConfigLoad, Defaults) {
  const auto r = load("version: 1\n");
  ASSERT_TRUE(r.fleet) << all(r);
  EXPECT_EQ(r.fleet->name, "default");
  EXPECT_FALSE(r.fleet->prune);
  EXPECT_TRUE(r.fleet->remotes.empty());
  EXPECT_TRUE(r.fleet->containers.empty());
}

TEST(ConfigLoad, EmptySectionsAreAllowed) {
  const auto r = load("version: 1\nremotes:\nimages: {}\ncontainers:\n");
  ASSERT_TRUE(r.fleet) << all(r);
  EXPECT_TRUE(r.fleet->containers.empty());
}

TEST(ConfigLoad, FingerprintForms) {
  const std::string hex = "fdb06d90c2a1b3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8";
  std::string pairs;
  for (std::size_t i = 0; i < hex.size(); i += 2) pairs += (i > 0 ? ":" : "") + hex.substr(i, 2);
  std::string upper_pairs = pairs;
  for (auto& c : upper_pairs) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const auto r = load(
      "version: 1\nremotes:\n"
      "  a: {url: \"unix:///s\", fingerprint: \"sha256:" +
      hex +
      "\"}\n"
      "  b: {url: \"unix:///s\", fingerprint: \"" +
      hex +
      "\"}\n"
      "  c: {url: \"unix:///s\", fingerprint: \"" +
      upper_pairs +
      "\"}\n"
      "  d: {url: \"unix:///s\", fingerprint: \"sha256:" +
      pairs + "\"}\n");
  ASSERT_TRUE(r.fleet) << all(r);
  for (const auto& name : {"a", "b", "c", "d"}) EXPECT_EQ(r.fleet->remotes.at(name).fingerprint, hex) << name;
}

TEST(ConfigLoad, UrlForms) {
  const auto r = load(
      "version: 1\nremotes:\n"
      "  a: {url: \"https://10.0.0.1\"}\n"
      "  b: {url: \"https://[fd00::1]:8443\"}\n"
      "  c: {url: \"https://lxd.example.com:8443/\"}\n"
      "  d: {url: \"https://[::1]\"}\n"
      "  e: {url: \"unix:///run/berthd/unix.socket\"}\n");
  ASSERT_TRUE(r.fleet) << all(r);
  EXPECT_EQ(r.fleet->remotes.at("b").url, "https://[fd00::1]:8443");
}

TEST(ConfigLoad, EnvironmentInterpolation) {
  const auto r =
      load(R"(version: 1
remotes:
  a:
    url: ${env:A_URL}
    parallelism: ${env:PAR}
containers:
  c1:
    remote: a
    image: a:${env:ALIAS}
    config:
      user.token: "${env:TOKEN}"
      user.mixed: pre-${env:TOKEN}-$${env:LITERAL}-$5
      user.empty: ${env:EMPTY}
)",
           {{"A_URL", "https://10.1.2.3:8443"}, {"PAR", "12"}, {"ALIAS", "bb"}, {"TOKEN", "s3cr3t"}, {"EMPTY", ""}});
  ASSERT_TRUE(r.fleet) << all(r);
  EXPECT_EQ(r.fleet->remotes.at("a").url, "https://10.1.2.3:8443");
  EXPECT_EQ(r.fleet->remotes.at("a").parallelism, 12);  // a plain scalar is typed after interpolation
  const auto& c1 = r.fleet->containers.at("c1");
  EXPECT_EQ(c1.image, (model::ImageRef{"a", "bb"}));
  EXPECT_EQ(c1.config.at("user.token"), "s3cr3t");
  EXPECT_EQ(c1.config.at("user.mixed"), "pre-s3cr3t-${env:LITERAL}-$5");
  EXPECT_EQ(c1.config.at("user.empty"), "");
}

TEST(ConfigLoad, NumbersWhereStringsAreExpectedAreTakenAsWritten) {
  const auto r = load(
      "version: 1\nremotes:\n  1: {url: \"unix:///s\"}\nimages:\n  img: {alias: 22.04, remote: 1}\n"
      "containers:\n  c1: {remote: 1, image: img, snapshots: [2024, true]}\n");
  ASSERT_TRUE(r.fleet) << all(r);
  EXPECT_EQ(r.fleet->images.at("img").alias, "22.04");
  EXPECT_EQ(r.fleet->containers.at("c1").image, (model::ImageRef{"1", "22.04"}));
  EXPECT_EQ(r.fleet->containers.at("c1").snapshots, (std::vector<std::string>{"2024", "true"}));
}

TEST(ConfigLoad, AnchorsAndAliasesWork) {
  const auto r = load(R"(version: 1
remotes:
  a: {url: "unix:///s"}
containers:
  c1:
    remote: a
    image: a:bb
    config: &limits {limits.cpu: 1, limits.memory: 64MiB}
  c2:
    remote: a
    image: a:bb
    config: *limits
)");
  ASSERT_TRUE(r.fleet) << all(r);
  EXPECT_EQ(r.fleet->containers.at("c2").config, r.fleet->containers.at("c1").config);
  EXPECT_EQ(r.fleet->containers.at("c2").config.at("limits.cpu"), "1");
}

TEST(ConfigLoad, ErrorsMeanNoFleet) {
  const auto r = load("version: 1\ncontainers:\n  c1: {remote: x, image: y}\n");
  EXPECT_FALSE(r.fleet);
  EXPECT_TRUE(r.diagnostics.has_errors());
}

class ConfigFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("berth-config-test-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(ConfigFile, LoadsFromDisk) {
  const auto path = dir_ / "berth.yaml";
  const std::string text = "version: 1\nremotes:\n  a: {url: \"unix:///s\"}\n";
  std::ofstream{path, std::ios::binary} << text;
  const auto r = load_fleet_file(path, fixed_env({}));
  ASSERT_TRUE(r.fleet) << all(r);
  EXPECT_EQ(r.fleet->path, path.string());
  EXPECT_EQ(r.fleet->digest, "sha256:" + util::sha256_hex(text));
}

TEST_F(ConfigFile, ErrorsNameTheFile) {
  const auto path = dir_ / "bad.yaml";
  std::ofstream{path, std::ios::binary} << "version: 1\nremotes:\n  a: {url: \"ftp://x\"}\n";
  const auto r = load_fleet_file(path, fixed_env({}));
  ASSERT_FALSE(r.fleet);
  EXPECT_EQ(all(r).rfind(path.string() + ":3:12: error: remotes.a.url: invalid URL 'ftp://x'", 0), 0U) << all(r);
}

TEST_F(ConfigFile, MissingFile) {
  const auto path = dir_ / "nope.yaml";
  const auto r = load_fleet_file(path, fixed_env({}));
  ASSERT_FALSE(r.fleet);
  ASSERT_EQ(r.diagnostics.items().size(), 1U);
  EXPECT_EQ(diag::format(r.diagnostics.items().front()),
            path.string() + ": error: no such file\n  check the path, or name the fleet file with -f FILE");
}

// The limit is the caller's (the CLI's --max-file-size); the message says how to raise it.
TEST_F(ConfigFile, LargerThanTheLimitGivenIsRefused) {
  const auto path = dir_ / "berth.yaml";
  std::ofstream(path, std::ios::binary) << "version: 1\n";
  EXPECT_TRUE(load_fleet_file(path, fixed_env({}), 11).fleet.has_value());
  const auto r = load_fleet_file(path, fixed_env({}), 10);
  ASSERT_FALSE(r.fleet);
  EXPECT_EQ(all(r), path.string() +
                        ": error: is larger than 10 bytes\n  a fleet file is text of a few kilobytes: check that -f "
                        "names the right file; if it is, raise the limit with --max-file-size\n");
}

TEST_F(ConfigFile, DirectoryIsNotAFile) {
  const auto r = load_fleet_file(dir_, fixed_env({}));
  ASSERT_FALSE(r.fleet);
  EXPECT_NE(all(r).find("is a directory"), std::string::npos) << all(r);
}

}  // namespace
}  // namespace berth::config

namespace berth::config {
namespace {

// A file that never ends (or is far too big) is refused after reading just over the limit.
TEST(ConfigLoadLimits, DevZeroIsRefusedWithoutReadingForever) {
  const auto loaded = load_fleet_file("/dev/zero");
  EXPECT_FALSE(loaded.fleet.has_value());
  const auto text = diag::format(loaded.diagnostics);
  EXPECT_NE(text.find("larger than 16 MiB"), std::string::npos) << text;
}

// LXD's API is JSON, UTF-8 only: a value or key that is not UTF-8 is an error at its position, and
// neither it nor a control character in it reaches the terminal raw.
TEST(ConfigLoadText, InvalidUtf8AndControlCharactersAreErrorsShownEscaped) {
  const auto r = load(
      "version: 1\nremotes:\n  a: {url: \"unix:///s\"}\ncontainers:\n"
      "  c1:\n    remote: a\n    image: \"a:x\"\n    config: {user.note: \"caf\xe9\"}\n"
      "  \"c\\e[2J\": {remote: a, image: \"a:x\"}\n");
  ASSERT_FALSE(r.fleet);
  expect_error(r, 8, 25, "containers.c1.config.user.note", "the value is not valid UTF-8 text");
  const std::string text = all(r);
  EXPECT_NE(text.find("invalid container name 'c\\x1b[2J'"), std::string::npos) << text;
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << text;
  EXPECT_EQ(text.find('\xe9'), std::string::npos) << text;
}

TEST(ConfigLoadText, InvalidUtf8FromTheEnvironmentNamesTheVariable) {
  const auto r = load(
      "version: 1\nremotes:\n  a: {url: \"unix:///s\"}\ncontainers:\n"
      "  c1: {remote: a, image: \"a:x\", config: {user.note: \"${env:NOTE}\"}}\n",
      {{"NOTE", "bad\xff"}});
  ASSERT_FALSE(r.fleet);
  const auto* d =
      expect_error(r, 5, 53, "containers.c1.config.user.note", "the value of ${env:NOTE} is not valid UTF-8");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->detail, "set the variable to UTF-8 text");
}

}  // namespace
}  // namespace berth::config

namespace berth::config {
namespace {

// `-f -`: the fleet from standard input, read once; its digest is of the bytes read.
TEST(ConfigLoadStream, ReadsTheWholeStreamAsTheFleetFile) {
  const std::string text = "version: 1\nremotes:\n  a: {url: \"unix:///s\"}\n";
  std::istringstream in{text};
  const auto r = load_fleet_stream(in, testing::fixed_env({}));
  ASSERT_TRUE(r.fleet) << testing::all(r);
  EXPECT_EQ(r.fleet->path, "-");
  EXPECT_EQ(r.fleet->digest, "sha256:" + util::sha256_hex(text));
  EXPECT_EQ(r.fleet->digest, load_fleet_text(text, "berth.yaml", testing::fixed_env({})).fleet->digest);
}

TEST(ConfigLoadStream, DiagnosticsNameStandardInput) {
  std::istringstream in{"version: 1\nremotes:\n  a: {url: \"ftp://x\"}\n"};
  const auto r = load_fleet_stream(in, testing::fixed_env({}));
  ASSERT_FALSE(r.fleet);
  EXPECT_EQ(testing::all(r).rfind("<stdin>:3:12: error: remotes.a.url: invalid URL 'ftp://x'", 0), 0U)
      << testing::all(r);
}

TEST(ConfigLoadStream, LargerThanTheLimitIsRefused) {
  std::istringstream in{"version: 1\n"};
  const auto r = load_fleet_stream(in, testing::fixed_env({}), 10);
  ASSERT_FALSE(r.fleet);
  EXPECT_NE(testing::all(r).find("<stdin>: error: is larger than 10 bytes"), std::string::npos) << testing::all(r);
}

}  // namespace
}  // namespace berth::config

TEST(ConfigLoad, WatchKeysDriftAndSuspend) {
  const auto r = berth::config::testing::load(
      "version: 1\nsuspend: true\nremotes: {a: {url: \"unix:///a\"}}\ncontainers:\n"
      "  web: {remote: a, image: \"a:bb\", drift: report, suspend: true}\n"
      "  db: {remote: a, image: \"a:bb\", drift: ignore}\n"
      "  app: {remote: a, image: \"a:bb\"}\n");
  ASSERT_TRUE(r.fleet) << berth::config::testing::all(r);
  EXPECT_TRUE(r.fleet->suspend);
  EXPECT_EQ(r.fleet->containers.at("web").drift, berth::model::DriftPolicy::report);
  EXPECT_TRUE(r.fleet->containers.at("web").suspend);
  EXPECT_EQ(r.fleet->containers.at("db").drift, berth::model::DriftPolicy::ignore);
  EXPECT_FALSE(r.fleet->containers.at("app").drift.has_value());
  EXPECT_FALSE(r.fleet->containers.at("app").suspend);
  const auto bad = berth::config::testing::load(
      "version: 1\nremotes: {a: {url: \"unix:///a\"}}\ncontainers:\n  web: {remote: a, image: \"a:bb\", drift: fix}\n");
  EXPECT_FALSE(bad.fleet);
  EXPECT_NE(berth::config::testing::all(bad).find("drift"), std::string::npos) << berth::config::testing::all(bad);
}
