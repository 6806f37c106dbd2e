// Bad fleet files: every problem is reported with file:line:col, the key path and a message that
// says what to do, all problems of a file at once, sorted by position.

#include <gtest/gtest.h>

#include "tests/unit/config/config_test_support.hpp"

namespace berth::config {
namespace {

using testing::all;
using testing::error_count;
using testing::expect_error;
using testing::load;

// A valid base most cases extend: two remotes, one image.
constexpr std::string_view head = R"(version: 1
remotes:
  a: {url: "https://127.0.0.1:8443"}
  b: {url: "unix:///var/lib/lxd/unix.socket"}
images:
  bb: {remote: a, alias: bb}
containers:
)";  // containers start on line 8

LoadResult load_containers(std::string_view containers) {
  return load(std::string{head} + std::string{containers});
}

TEST(ConfigErrors, MalformedYamlHasPosition) {
  const auto r = load("version: 1\ncontainers: {c1: [\n");
  ASSERT_FALSE(r.fleet);
  ASSERT_EQ(error_count(r), 1U) << all(r);
  const auto& d = r.diagnostics.items().front();
  ASSERT_TRUE(d.where);
  EXPECT_EQ(d.where->file, "fleet.yaml");
  EXPECT_EQ(d.where->line, 3);
  EXPECT_NE(d.summary.find("malformed YAML"), std::string::npos);
  EXPECT_FALSE(d.detail.empty());
}

TEST(ConfigErrors, MalformedYamlBadIndentation) {
  const auto r = load("version: 1\nremotes:\n  a:\n    url: x\n   bad: y\n");
  ASSERT_FALSE(r.fleet);
  ASSERT_EQ(error_count(r), 1U) << all(r);
  EXPECT_EQ(r.diagnostics.items().front().where->line, 5);
  EXPECT_EQ(diag::format(r.diagnostics).rfind("fleet.yaml:5:", 0), 0U) << all(r);
}

TEST(ConfigErrors, EmptyFileNeedsAMap) {
  const auto r = load("");
  ASSERT_FALSE(r.fleet);
  expect_error(r, 1, 1, "", "expected a map, got an empty value");
}

TEST(ConfigErrors, TopLevelListIsWrongType) {
  const auto r = load("- version: 1\n");
  expect_error(r, 1, 1, "", "expected a map, got a list");
}

TEST(ConfigErrors, MoreThanOneDocument) {
  const auto r = load("version: 1\n---\nversion: 1\n");
  expect_error(r, 3, 1, "", "more than one YAML document");
}

// yaml-cpp 0.7's LoadAll never returned on a token no value can start with after a document: it
// collected empty documents until memory ran out. Found by fuzz/fleet_file.
TEST(ConfigErrors, StrayCommaIsMalformedYamlNotAHang) {
  auto r = load("- a\n,");
  ASSERT_FALSE(r.fleet);
  expect_error(r, 2, 1, "", "malformed YAML: unexpected ','");
  EXPECT_EQ(error_count(r), 1U) << all(r);

  r = load(",");
  expect_error(r, 1, 1, "", "malformed YAML: unexpected ','");

  r = load("version: 1\nremotes: {}\n,\n");
  expect_error(r, 3, 1, "", "malformed YAML");
}

TEST(ConfigErrors, VersionMissing) {
  const auto r = load("remotes: {}\n");
  const auto* d = expect_error(r, 1, 1, "", "missing required key 'version'");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("must be 1"), std::string::npos) << d->detail;
}

TEST(ConfigErrors, VersionNotOne) {
  const auto r = load("version: 2\n");
  const auto* d = expect_error(r, 1, 10, "version", "unsupported version 2");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("version: 1"), std::string::npos);
  EXPECT_EQ(error_count(r), 1U) << all(r);
}

TEST(ConfigErrors, VersionQuotedIsOneTypeError) {
  const auto r = load("version: \"1\"\n");
  const auto* d = expect_error(r, 1, 10, "version", "expected an integer, got a string");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->detail, "write it without quotes");
  EXPECT_EQ(error_count(r), 1U) << all(r);  // not also "unsupported version"
}

TEST(ConfigErrors, UnknownTopLevelKey) {
  const auto r = load("version: 1\ncontainres: {}\n");
  const auto* d = expect_error(r, 2, 1, "containres", "unknown key 'containres'");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->summary.find("expected one of: version, name, prune, suspend, remotes, images, placements, sensitive, "
                            "containers"),
            std::string::npos)
      << d->summary;
  EXPECT_EQ(d->detail, "did you mean 'containers'?");
}

TEST(ConfigErrors, UnknownContainerKeyWithSuggestion) {
  const auto r = load_containers("  web:\n    remote: a\n    imgae: bb\n");
  const auto* d =
      expect_error(r, 10, 5, "containers.web.imgae",
                   "unknown key 'imgae' (expected one of: remote, target, placement, image, copy_of, state");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->detail, "did you mean 'image'?");
  // The container then lacks an image: reported too, at the container's key.
  expect_error(r, 8, 3, "containers.web", "needs image: or copy_of:");
}

TEST(ConfigErrors, EveryUnknownKeyOfOneMapIsReported) {
  const auto r = load("version: 1\nremotes:\n  a: {url: \"unix:///s\", colour: red, size: 3}\n");
  expect_error(
      r, 3, 25, "remotes.a.colour",
      "unknown key 'colour' (expected one of: url, urls, fingerprint, parallelism, project, labels, capacity, drain)");
  expect_error(r, 3, 38, "remotes.a.size", "unknown key 'size'");
  EXPECT_EQ(error_count(r), 2U) << all(r);
}

TEST(ConfigErrors, WrongTypes) {
  const auto r = load_containers(
      "  web:\n"
      "    remote: [a]\n"  // line 9
      "    image: bb\n"
      "    config: [limits.cpu]\n"  // line 11
      "    profiles: default\n"     // line 12
      "    restart: {x: 1}\n");     // line 13
  expect_error(r, 9, 13, "containers.web.remote", "expected a string, got a list");
  const auto* config = expect_error(r, 11, 13, "containers.web.config", "expected a map, got a list");
  ASSERT_NE(config, nullptr);
  EXPECT_NE(config->detail.find("key: value"), std::string::npos);
  expect_error(r, 12, 15, "containers.web.profiles", "expected a list, got a string");
  expect_error(r, 13, 14, "containers.web.restart", "expected a string, got a map");
  EXPECT_EQ(error_count(r), 4U) << all(r);
}

TEST(ConfigErrors, EmptyValue) {
  const auto r = load_containers("  web:\n    remote:\n    image: bb\n");
  const auto* d = expect_error(r, 9, 5, "containers.web.remote", "expected a string, got an empty value");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->detail, "give it a value, or remove the key");
}

TEST(ConfigErrors, ConfigValueMustBeScalar) {
  const auto r = load_containers("  web:\n    remote: a\n    image: bb\n    config: {limits.memory: [1]}\n");
  expect_error(r, 11, 29, "containers.web.config.limits.memory",
               "expected a string, a number or a boolean (true or false), got a list");
}

TEST(ConfigErrors, BooleanWrittenAsYesIsAString) {
  // YAML 1.2: yes is a string, so prune: yes is a mistake worth pointing out.
  const auto r = load("version: 1\nprune: yes\n");
  expect_error(r, 2, 8, "prune", "expected a boolean (true or false), got a string");
}

TEST(ConfigErrors, StateNotInEnum) {
  const auto r = load_containers("  web: {remote: a, image: bb, state: runing}\n");
  const auto* d = expect_error(r, 8, 38, "containers.web.state",
                               "invalid value 'runing' (expected one of: running, stopped, frozen, absent)");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->detail, "did you mean 'running'?");
  EXPECT_EQ(error_count(r), 1U) << all(r);  // no "needs image" noise: the state is unknown
}

TEST(ConfigErrors, ConsentNotInEnum) {
  const auto r = load_containers("  web: {remote: a, image: bb, restart: yes, move: never}\n");
  expect_error(r, 8, 40, "containers.web.restart", "invalid value 'yes' (expected one of: allowed, denied)");
  expect_error(r, 8, 51, "containers.web.move", "invalid value 'never'");
}

TEST(ConfigErrors, ParallelismOutOfRange) {
  const auto r = load(
      "version: 1\nremotes:\n  a: {url: \"unix:///s\", parallelism: 0}\n  b: {url: \"unix:///s\", parallelism: 65}\n  "
      "c: {url: \"unix:///s\", parallelism: 2.5}\n");
  expect_error(r, 3, 38, "remotes.a.parallelism", "must be from 1 to 64 (got 0)");
  expect_error(r, 4, 38, "remotes.b.parallelism", "must be from 1 to 64 (got 65)");
  expect_error(r, 5, 38, "remotes.c.parallelism", "expected an integer, got a fractional number");
}

TEST(ConfigErrors, RequiredKeys) {
  const auto r = load(
      "version: 1\nremotes:\n  a: {parallelism: 2}\nimages:\n  bb: {remote: a}\ncontainers:\n  web: {image: bb}\n");
  const auto* url = expect_error(r, 3, 3, "remotes.a", "missing required key 'url'");
  ASSERT_NE(url, nullptr);
  EXPECT_NE(url->detail.find("url: "), std::string::npos);
  expect_error(r, 5, 3, "images.bb", "missing required key 'alias'");
  expect_error(r, 7, 3, "containers.web", "needs remote: or placement:");
}

TEST(ConfigErrors, DeviceNeedsType) {
  const auto r = load_containers("  web:\n    remote: a\n    image: bb\n    devices:\n      data: {path: /srv}\n");
  const auto* d = expect_error(r, 12, 7, "containers.web.devices.data", "missing required key 'type'");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("disk"), std::string::npos);
}

TEST(ConfigErrors, UnknownRemoteOfContainer) {
  const auto r = load_containers("  web:\n    remote: nowhere\n    image: bb\n");
  const auto* d = expect_error(r, 9, 13, "containers.web.remote", "unknown remote 'nowhere'");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->detail, "declare it under remotes: (known remotes: a, b)");
  EXPECT_EQ(diag::format(*d),
            "fleet.yaml:9:13: error: containers.web.remote: unknown remote 'nowhere'\n"
            "  declare it under remotes: (known remotes: a, b)");
}

TEST(ConfigErrors, UnknownRemoteOfImage) {
  const auto r = load("version: 1\nimages:\n  bb: {remote: zz, alias: bb}\n");
  const auto* d = expect_error(r, 3, 16, "images.bb.remote", "unknown remote 'zz'");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("no remotes are declared"), std::string::npos) << d->detail;
}

TEST(ConfigErrors, UnknownImage) {
  const auto r = load_containers("  web:\n    remote: a\n    image: bbx\n");
  const auto* d = expect_error(r, 10, 12, "containers.web.image", "unknown image 'bbx'");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(diag::format(*d),
            "fleet.yaml:10:12: error: containers.web.image: unknown image 'bbx'\n"
            "  declare it under images:, or write REMOTE:ALIAS (known images: bb)");
}

TEST(ConfigErrors, UnknownRemoteInRemoteAlias) {
  const auto r = load_containers("  web: {remote: a, image: \"zz:alpine/3.19\"}\n");
  const auto* d = expect_error(r, 8, 27, "containers.web.image", "unknown remote 'zz' in image 'zz:alpine/3.19'");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("known remotes: a, b"), std::string::npos);
}

TEST(ConfigErrors, MalformedImageReference) {
  const auto r = load_containers("  web: {remote: a, image: \"a:b:c\"}\n  db: {remote: a, image: \"a b\"}\n");
  expect_error(r, 8, 27, "containers.web.image", "invalid image 'a:b:c': the alias must not contain ':'");
  expect_error(r, 9, 26, "containers.db.image", "invalid image 'a b'");
  EXPECT_EQ(error_count(r), 2U) << all(r);  // not also "unknown image"
}

TEST(ConfigErrors, ImageAndCopyOfTogether) {
  const auto r = load_containers("  c1: {remote: a, image: bb}\n  c2: {remote: a, image: bb, copy_of: c1}\n");
  expect_error(r, 9, 30, "containers.c2", "image and copy_of are mutually exclusive");
  EXPECT_EQ(error_count(r), 1U) << all(r);
}

TEST(ConfigErrors, NeitherImageNorCopyOf) {
  const auto r = load_containers("  c1: {remote: a}\n  c2: {remote: a, state: absent}\n");
  const auto* d = expect_error(r, 8, 3, "containers.c1", "needs image: or copy_of:");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("state: absent"), std::string::npos);
  EXPECT_EQ(error_count(r), 1U) << all(r);  // an absent container needs neither
}

TEST(ConfigErrors, CopyOfUnknownContainer) {
  const auto r = load_containers("  c1: {remote: a, image: bb}\n  c2: {remote: a, copy_of: c9}\n");
  const auto* d = expect_error(r, 9, 28, "containers.c2.copy_of", "unknown container 'c9'");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("known containers: c1"), std::string::npos) << d->detail;
}

TEST(ConfigErrors, CopyOfItself) {
  const auto r = load_containers("  c1: {remote: a, copy_of: c1}\n");
  expect_error(r, 8, 28, "containers.c1.copy_of", "a container cannot be a copy of itself");
}

TEST(ConfigErrors, CopyOfCycleReportsThePath) {
  const auto r = load_containers(
      "  c3: {remote: a, copy_of: c1}\n"    // line 8
      "  c1: {remote: a, copy_of: c2}\n"    // line 9
      "  c2: {remote: b, copy_of: c3}\n"    // line 10
      "  c4: {remote: a, copy_of: c1}\n");  // leads into the cycle, is not part of it
  expect_error(r, 8, 28, "containers.c3.copy_of", "copy_of forms a cycle: c3 -> c1 -> c2 -> c3");
  EXPECT_EQ(error_count(r), 1U) << all(r);
}

TEST(ConfigErrors, TwoCyclesAreTwoErrors) {
  const auto r = load_containers(
      "  a1: {remote: a, copy_of: a2}\n"
      "  a2: {remote: a, copy_of: a1}\n"
      "  b1: {remote: a, copy_of: b2}\n"
      "  b2: {remote: a, copy_of: b1}\n");
  expect_error(r, 8, 28, "containers.a1.copy_of", "copy_of forms a cycle: a1 -> a2 -> a1");
  expect_error(r, 10, 28, "containers.b1.copy_of", "copy_of forms a cycle: b1 -> b2 -> b1");
  EXPECT_EQ(error_count(r), 2U) << all(r);
}

TEST(ConfigErrors, CopyOfUndeclaredSnapshot) {
  const auto r = load_containers(
      "  c1: {remote: a, image: bb, snapshots: [current]}\n"
      "  c2: {remote: b, copy_of: c1/nightly}\n"
      "  c3: {remote: b, image: bb}\n"
      "  c4: {remote: b, copy_of: c3/x}\n");
  const auto* d = expect_error(r, 9, 28, "containers.c2.copy_of", "container 'c1' declares no snapshot 'nightly'");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("containers.c1.snapshots (declared: current)"), std::string::npos) << d->detail;
  const auto* none = expect_error(r, 11, 28, "containers.c4.copy_of", "container 'c3' declares no snapshot 'x'");
  ASSERT_NE(none, nullptr);
  EXPECT_NE(none->detail.find("it declares none"), std::string::npos) << none->detail;
}

TEST(ConfigErrors, CopyOfAbsentSource) {
  const auto r = load_containers("  c1: {remote: a, state: absent}\n  c2: {remote: a, copy_of: c1}\n");
  expect_error(r, 9, 28, "containers.c2.copy_of", "the source container 'c1' is declared absent");
}

TEST(ConfigErrors, CopyOfMalformed) {
  const auto r = load_containers(
      "  c1: {remote: a, image: bb}\n  c2: {remote: a, copy_of: \"c1/a/b\"}\n  c3: {remote: a, copy_of: 1c}\n");
  expect_error(r, 9, 28, "containers.c2.copy_of", "invalid copy_of 'c1/a/b': the snapshot name must not contain '/'");
  expect_error(r, 10, 28, "containers.c3.copy_of",
               "invalid copy_of '1c': the container name must not start with a digit");
  EXPECT_EQ(error_count(r), 2U) << all(r);
}

TEST(ConfigErrors, DuplicateKeysAtEveryLevel) {
  const auto r = load(
      "version: 1\n"
      "remotes:\n"
      "  a: {url: \"unix:///s\", url: \"unix:///t\"}\n"  // line 3
      "containers:\n"
      "  c1:\n"
      "    remote: a\n"
      "    image: a:bb\n"
      "    config:\n"
      "      limits.cpu: 1\n"
      "      limits.cpu: 2\n"  // line 10
      "  c1:\n"                // line 11
      "    remote: a\n"
      "version: 1\n");  // line 13
  const auto* d = expect_error(r, 3, 25, "remotes.a", "duplicate key 'url'");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("first defined at line 3, column 7"), std::string::npos) << d->detail;
  expect_error(r, 10, 7, "containers.c1.config", "duplicate key 'limits.cpu'");
  expect_error(r, 11, 3, "containers", "duplicate key 'c1'");
  expect_error(r, 13, 1, "", "duplicate key 'version'");
  EXPECT_EQ(error_count(r), 4U) << all(r);
}

TEST(ConfigErrors, MergeKeysAreNotSupported) {
  const auto r = load("version: 1\nremotes:\n  a: &r {url: \"unix:///s\"}\n  b: {<<: *r}\n");
  expect_error(r, 4, 7, "remotes.b", "YAML merge keys (<<) are not supported");
}

TEST(ConfigErrors, InvalidContainerNames) {
  const auto r = load_containers(
      "  1web: {remote: a, image: bb}\n"
      "  -web: {remote: a, image: bb}\n"
      "  web-: {remote: a, image: bb}\n"
      "  we_b: {remote: a, image: bb}\n"
      "  abcdefghij-abcdefghij-abcdefghij-abcdefghij-abcdefghij-abcdefghij: {remote: a, image: bb}\n");
  expect_error(r, 8, 3, "containers.1web", "invalid container name '1web': must not start with a digit");
  expect_error(r, 9, 3, "containers.-web", "invalid container name '-web': must not start with a hyphen");
  expect_error(r, 10, 3, "containers.web-", "invalid container name 'web-': must not end with a hyphen");
  expect_error(r, 11, 3, "containers.we_b", "may contain only ASCII letters, digits and hyphens");
  expect_error(r, 12, 3, "containers.abcdefghij-abcdefghij-abcdefghij-abcdefghij-abcdefghij-abcdefghij",
               "must be at most 63 characters long");
  EXPECT_EQ(error_count(r), 5U) << all(r);
}

TEST(ConfigErrors, InvalidSnapshotNames) {
  const auto r = load_containers(
      "  c1:\n"
      "    remote: a\n"
      "    image: bb\n"
      "    snapshots: [ok, \"a b\", \"x/y\", \"..\", \"\", "
      "\"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234\"]\n");
  expect_error(r, 11, 21, "containers.c1.snapshots[1]", "invalid snapshot name 'a b': must not contain whitespace");
  expect_error(r, 11, 28, "containers.c1.snapshots[2]", "invalid snapshot name 'x/y': must not contain '/'");
  expect_error(r, 11, 35, "containers.c1.snapshots[3]", "invalid snapshot name '..': must not be '.' or '..'");
  expect_error(r, 11, 41, "containers.c1.snapshots[4]", "invalid snapshot name '': must not be empty");
  expect_error(r, 11, 45, "containers.c1.snapshots[5]", "must be at most 63 characters long");
  EXPECT_EQ(error_count(r), 5U) << all(r);
}

TEST(ConfigErrors, DuplicateSnapshotAndProfile) {
  const auto r = load_containers("  c1: {remote: a, image: bb, snapshots: [s1, s2, s1], profiles: [p, p]}\n");
  const auto* d = expect_error(r, 8, 50, "containers.c1.snapshots[2]", "'s1' is listed twice");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("line 8, column 42"), std::string::npos) << d->detail;
  expect_error(r, 8, 69, "containers.c1.profiles[1]", "'p' is listed twice");
}

// Every list whose items must be unique: each repeat is reported at its own position, naming the
// first; a name listed three times is reported twice, always against the first.
TEST(ConfigErrors, DuplicatesInEveryUniqueList) {
  const auto r = load(std::string{head.substr(0, head.find("containers:"))} +
                      "sensitive: [user.a, user.b, user.a]\n"
                      "containers:\n"
                      "  c1: {remote: a, image: bb, sensitive: [user.x, user.x]}\n"
                      "  c2: {remote: a, image: bb, snapshots: {names: [n1, n2, n1, n1]}}\n");
  const auto* top = expect_error(r, 7, 29, "sensitive[2]", "'user.a' is listed twice");
  ASSERT_NE(top, nullptr);
  EXPECT_EQ(top->detail, "it is already listed at line 7, column 13; list it once");
  const auto* own = expect_error(r, 9, 50, "containers.c1.sensitive[1]", "'user.x' is listed twice");
  ASSERT_NE(own, nullptr);
  EXPECT_EQ(own->detail, "it is already listed at line 9, column 42; list it once");
  expect_error(r, 10, 58, "containers.c2.snapshots.names[2]", "'n1' is listed twice");
  const auto* third = expect_error(r, 10, 62, "containers.c2.snapshots.names[3]", "'n1' is listed twice");
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(third->detail, "it is already listed at line 10, column 50; list it once");
  EXPECT_EQ(error_count(r), 4U) << all(r);
}

// A name that is already wrong is reported for that, not again as a repeat.
TEST(ConfigErrors, DuplicatesOfInvalidNamesAreReportedOnce) {
  const auto r = load_containers("  c1: {remote: a, image: bb, snapshots: [\"a b\", \"a b\"]}\n");
  EXPECT_EQ(error_count(r), 2U) << all(r);
  EXPECT_EQ(all(r).find("listed twice"), std::string::npos) << all(r);
}

// 20000 snapshots and one repeat at the end: found, at its position (valijson's uniqueItems took
// 10.7 s here; the check is linear now, bench/validate times it).
TEST(ConfigErrors, DuplicateAmongThousandsOfSnapshots) {
  std::string list;
  for (int i = 0; i < 20'000; ++i) list += "s" + std::to_string(i) + ", ";
  const auto r = load_containers("  c1: {remote: a, image: bb, snapshots: [" + list + "s7]}\n");
  ASSERT_EQ(error_count(r), 1U) << all(r);
  const auto& d = r.diagnostics.items().front();
  EXPECT_EQ(d.path, "containers.c1.snapshots[20000]");
  EXPECT_EQ(d.detail, "it is already listed at line 8, column " + std::to_string(42 + 4 * 7) + "; list it once");
}

TEST(ConfigErrors, SnapshotsMapForm) {
  const auto r = load_containers(
      "  c1: {remote: a, image: bb, snapshots: {names: [s1], prun: true}}\n"
      "  c2: {remote: a, image: bb, snapshots: {prune: true}}\n"
      "  c3: {remote: a, image: bb, snapshots: current}\n"
      "  c4: {remote: a, image: bb, snapshots: {names: [\"a b\"]}}\n");
  const auto* d =
      expect_error(r, 8, 55, "containers.c1.snapshots.prun", "unknown key 'prun' (expected one of: names, prune)");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->detail, "did you mean 'prune'?");
  expect_error(r, 9, 30, "containers.c2.snapshots", "missing required key 'names'");
  expect_error(r, 10, 41, "containers.c3.snapshots", "expected a list or a map, got a string");
  expect_error(r, 11, 50, "containers.c4.snapshots.names[0]", "invalid snapshot name 'a b'");
  EXPECT_EQ(error_count(r), 4U) << all(r);  // no "expected a list" for the map forms
}

TEST(ConfigErrors, InvalidOtherNames) {
  const auto r = load(
      "version: 1\n"
      "name: 9lives\n"
      "remotes:\n"
      "  -ad.name: {url: \"unix:///s\"}\n"
      "images:\n"
      "  \"my image\": {alias: \"x y\"}\n"
      "containers:\n"
      "  c1:\n"
      "    remote: -ad.name\n"
      "    image: a:bb\n"
      "    profiles: [default, \"a/b\"]\n"
      "    config: {volatile.uuid: x, user.berth.fleet: y, \"\": z}\n"
      "    devices: {.hidden: {type: disk}, eth0: {type: nic, \"bad key\": 1}}\n");
  expect_error(r, 2, 7, "name", "invalid fleet name '9lives': must not start with a digit");
  expect_error(r, 4, 3, "remotes.-ad.name", "invalid remote name '-ad.name': must not start with '.' or '-'");
  expect_error(r, 6, 3, "images.my image", "invalid image name 'my image'");
  expect_error(r, 6, 23, "images.my image.alias", "invalid image alias 'x y': must not contain whitespace");
  expect_error(r, 9, 13, "containers.c1.remote", "invalid remote name '-ad.name'");
  expect_error(r, 11, 25, "containers.c1.profiles[1]", "invalid profile name 'a/b'");
  expect_error(r, 12, 14, "containers.c1.config.volatile.uuid", "volatile.* keys belong to LXD");
  expect_error(r, 12, 32, "containers.c1.config.user.berth.fleet", "user.berth.* keys are berth's");
  expect_error(r, 12, 53, "containers.c1.config.", "invalid config key '': must not be empty");
  expect_error(r, 13, 15, "containers.c1.devices..hidden", "invalid device name '.hidden': must not start with '.'");
  expect_error(r, 13, 56, "containers.c1.devices.eth0.bad key", "invalid device option 'bad key'");
}

TEST(ConfigErrors, InvalidUrls) {
  const auto r = load(
      "version: 1\n"
      "remotes:\n"
      "  a: {url: \"http://10.0.0.1:8443\"}\n"
      "  b: {url: \"https://10.0.0.1:99999\"}\n"
      "  c: {url: \"https://fd00::1:8443\"}\n"
      "  d: {url: \"unix://host/run/lxd.socket\"}\n"
      "  e: {url: \"https://host/path\"}\n"
      "  f: {url: \"https://[fd00::zz]:8443\"}\n"
      "  g: {url: \"https://\"}\n"
      "  h: {url: \"10.0.0.1:8443\"}\n");
  const auto* a = expect_error(r, 3, 12, "remotes.a.url", "invalid URL 'http://10.0.0.1:8443'");
  ASSERT_NE(a, nullptr);
  EXPECT_NE(a->detail.find("plain http is not supported"), std::string::npos);
  EXPECT_NE(a->detail.find("expected https://HOST[:PORT] or unix:///ABSOLUTE/PATH"), std::string::npos);
  const auto* b = expect_error(r, 4, 12, "remotes.b.url", "invalid URL");
  ASSERT_NE(b, nullptr);
  EXPECT_NE(b->detail.find("port must be a number from 1 to 65535"), std::string::npos);
  const auto* c = expect_error(r, 5, 12, "remotes.c.url", "invalid URL");
  ASSERT_NE(c, nullptr);
  EXPECT_NE(c->detail.find("brackets"), std::string::npos);
  const auto* d = expect_error(r, 6, 12, "remotes.d.url", "invalid URL");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("no host"), std::string::npos);
  expect_error(r, 7, 12, "remotes.e.url", "invalid URL");
  expect_error(r, 8, 12, "remotes.f.url", "invalid URL");
  expect_error(r, 9, 12, "remotes.g.url", "invalid URL");
  expect_error(r, 10, 12, "remotes.h.url", "invalid URL '10.0.0.1:8443'");
  EXPECT_EQ(error_count(r), 8U) << all(r);
}

TEST(ConfigErrors, InvalidFingerprint) {
  const auto r = load("version: 1\nremotes:\n  a: {url: \"unix:///s\", fingerprint: \"sha256:abc\"}\n");
  const auto* d = expect_error(r, 3, 38, "remotes.a.fingerprint", "invalid fingerprint 'sha256:abc'");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("64 hex digits"), std::string::npos);
}

TEST(ConfigErrors, UnsetEnvironmentVariable) {
  const auto r = load("version: 1\nremotes:\n  a:\n    url: ${env:BERTH_NOT_SET}\n");
  const auto* d = expect_error(r, 4, 10, "remotes.a.url", "environment variable BERTH_NOT_SET is not set");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("export BERTH_NOT_SET"), std::string::npos);
  EXPECT_EQ(error_count(r), 1U) << all(r);  // and not "invalid URL" on top
}

TEST(ConfigErrors, MalformedReferences) {
  const auto r =
      load("version: 1\nremotes:\n  a: {url: \"${HOME}\"}\n  b: {url: \"${env:X\"}\n  c: {url: \"${env:1X}\"}\n");
  const auto* a = expect_error(r, 3, 12, "remotes.a.url", "unsupported reference '${HOME}'");
  ASSERT_NE(a, nullptr);
  EXPECT_NE(a->detail.find("${env:NAME}"), std::string::npos);
  expect_error(r, 4, 12, "remotes.b.url", "unterminated '${'");
  expect_error(r, 5, 12, "remotes.c.url", "unsupported reference '${env:1X}'");
  EXPECT_EQ(error_count(r), 3U) << all(r);
}

TEST(ConfigErrors, InterpolatedValuesAreNeverEchoed) {
  const std::string secret = "hunter2-secret";
  const auto r = load(
      "version: 1\n"
      "remotes:\n"
      "  a: {url: \"${env:A_URL}\", fingerprint: \"${env:A_FP}\"}\n"
      "containers:\n"
      "  c1: {remote: a, image: \"${env:IMG}\", state: \"${env:STATE}\"}\n",
      {{"A_URL", "ftp://" + secret}, {"A_FP", secret}, {"IMG", secret}, {"STATE", secret}});
  ASSERT_FALSE(r.fleet);
  const std::string text = all(r);
  EXPECT_EQ(text.find("hunter2"), std::string::npos) << text;
  const auto* url = expect_error(r, 3, 12, "remotes.a.url", "the value of ${env:A_URL} is not a valid URL");
  ASSERT_NE(url, nullptr);
  EXPECT_NE(url->detail.find("scheme is not supported"), std::string::npos);
  expect_error(r, 3, 41, "remotes.a.fingerprint", "invalid fingerprint the value of ${env:A_FP}");
  expect_error(r, 5, 26, "containers.c1.image", "unknown image the value of ${env:IMG}");
  expect_error(r, 5, 47, "containers.c1.state", "invalid value the value of ${env:STATE}");
  EXPECT_EQ(error_count(r), 4U) << text;
}

TEST(ConfigErrors, AllProblemsAreReportedSortedByPosition) {
  const auto r = load(
      "version: 1\n"
      "remotes:\n"
      "  h1: {url: \"https://127.0.0.1:18443\"}\n"
      "images:\n"
      "  bb: {remote: h1, alias: bb}\n"
      "containers:\n"
      "  c1:\n"
      "    remote: nowhere\n"  // 8
      "    image: bb\n"
      "  c2:\n"
      "    remote: h1\n"
      "    image: bb\n"
      "    state: sideways\n"  // 13
      "  c3:\n"
      "    remote: h1\n"
      "    image: bb\n"
      "    colour: blue\n"  // 17
      "  c4:\n"
      "    remote: h1\n"
      "    copy_of: c9\n");  // 20
  ASSERT_FALSE(r.fleet);
  ASSERT_EQ(error_count(r), 4U) << all(r);
  const auto& items = r.diagnostics.items();
  EXPECT_EQ(items[0].path, "containers.c1.remote");
  EXPECT_EQ(items[0].where->line, 8);
  EXPECT_EQ(items[1].path, "containers.c2.state");
  EXPECT_EQ(items[1].where->line, 13);
  EXPECT_EQ(items[2].path, "containers.c3.colour");
  EXPECT_EQ(items[2].where->line, 17);
  EXPECT_EQ(items[3].path, "containers.c4.copy_of");
  EXPECT_EQ(items[3].where->line, 20);
  const std::string text = all(r);
  EXPECT_NE(text.find("fleet.yaml:8:13: error: containers.c1.remote: unknown remote 'nowhere'\n"), std::string::npos)
      << text;
}

TEST(ConfigErrors, AliasBombIsRefused) {
  std::string text = "version: 1\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 8; ++i) {
    text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) text += (j > 0 ? ", *a" : "*a") + std::to_string(i - 1);
    text += "]\n";
  }
  const auto r = load(text);
  ASSERT_FALSE(r.fleet);
  EXPECT_NE(all(r).find("too large"), std::string::npos) << all(r);
}

TEST(ConfigErrors, DeepNestingIsRefused) {
  const auto r = load("version: 1\nx: " + std::string(70, '[') + std::string(70, ']') + "\n");
  ASSERT_FALSE(r.fleet);
  EXPECT_NE(all(r).find("nested too deeply"), std::string::npos) << all(r);
}

TEST(ConfigErrors, KeysMustBeStrings) {
  const auto r = load("version: 1\nremotes:\n  ? [a, b]\n  : {url: \"unix:///s\"}\n");
  expect_error(r, 3, 5, "remotes", "a key must be a string, not a list or a map");
}

TEST(ConfigErrors, EnumWithoutCloseMatchExplainsTheKey) {
  const auto r = load_containers("  web: {remote: a, image: bb, state: sideways}\n");
  const auto* d = expect_error(r, 8, 38, "containers.web.state", "invalid value 'sideways'");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->detail.rfind("Power state: running (default)", 0), 0U) << d->detail;
}

}  // namespace
}  // namespace berth::config
