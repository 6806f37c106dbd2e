// Name rules, URLs, fingerprints and ${env:...}: the C++ explanations agree with the schema's
// patterns, and the pieces behave on their own.

#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "engine/config/interpolate.hpp"
#include "engine/config/names.hpp"
#include "engine/config/url.hpp"
#include "tests/unit/config/config_test_support.hpp"

namespace berth::config {
namespace {

nlohmann::json schema_file() {
  std::ifstream in{std::string{BERTH_SOURCE_DIR} + "/schemas/berth.schema.json"};
  return nlohmann::json::parse(in);
}

using ProblemFn = std::optional<std::string> (*)(std::string_view);

// For every sample, the schema's pattern accepts it exactly when the C++ rule finds no problem.
void expect_agreement(const std::string& definition, ProblemFn problem, const std::vector<std::string>& samples) {
  static const nlohmann::json schema = schema_file();
  const std::regex pattern{schema.at("definitions").at(definition).at("pattern").get<std::string>()};
  for (const auto& s : samples) {
    const bool by_schema = std::regex_search(s, pattern);
    const bool by_rule = !problem(s).has_value();
    EXPECT_EQ(by_schema, by_rule) << definition << ": '" << s << "' schema=" << by_schema
                                  << " rule=" << problem(s).value_or("ok");
  }
}

const std::vector<std::string> samples = {"",
                                          "a",
                                          "A",
                                          "web",
                                          "web-1",
                                          "Web-Server-01",
                                          "1web",
                                          "-web",
                                          "web-",
                                          "we_b",
                                          "we.b",
                                          "we b",
                                          "web/snap",
                                          ".",
                                          "..",
                                          "...",
                                          ".hidden",
                                          "a:b",
                                          "snap 1",
                                          "snap\t1",
                                          "x/y",
                                          "über",
                                          "user.berth.fleet",
                                          "volatile.uuid",
                                          "limits.cpu",
                                          "user.note",
                                          "eth0",
                                          "unix:/dev/x",
                                          "a-b_c.d:e/f",
                                          std::string(63, 'a'),
                                          std::string(64, 'a'),
                                          "a" + std::string(61, '-') + "b",
                                          std::string(255, 'k'),
                                          std::string(256, 'k')};

TEST(ConfigNames, InstanceNamesFollowLxd) {
  EXPECT_FALSE(instance_name_problem("web-01"));
  EXPECT_FALSE(instance_name_problem("a"));
  EXPECT_EQ(instance_name_problem(""), "must not be empty");
  EXPECT_EQ(instance_name_problem("1web"), "must not start with a digit");
  EXPECT_EQ(instance_name_problem("-web"), "must not start with a hyphen");
  EXPECT_EQ(instance_name_problem("web-"), "must not end with a hyphen");
  EXPECT_EQ(instance_name_problem("web/s1"), "must not contain '/' (LXD reserves it for snapshots)");
  EXPECT_EQ(instance_name_problem("we_b"), "may contain only ASCII letters, digits and hyphens");
  EXPECT_EQ(instance_name_problem(std::string(64, 'a')), "must be at most 63 characters long");
  expect_agreement("instanceName", instance_name_problem, samples);
}

TEST(ConfigNames, SnapshotNamesFollowLxd) {
  EXPECT_FALSE(snapshot_name_problem("snap0"));
  EXPECT_FALSE(snapshot_name_problem("before-upgrade_2024.06:01"));
  EXPECT_FALSE(snapshot_name_problem("..."));
  EXPECT_EQ(snapshot_name_problem(".."), "must not be '.' or '..'");
  EXPECT_EQ(snapshot_name_problem("a b"), "must not contain whitespace");
  EXPECT_EQ(snapshot_name_problem(" "), "must not contain whitespace");
  EXPECT_EQ(snapshot_name_problem("a/b"), "must not contain '/'");
  expect_agreement("snapshotName", snapshot_name_problem, samples);
  expect_agreement("profileName", profile_name_problem, samples);
}

TEST(ConfigNames, ProjectNames) {
  EXPECT_FALSE(project_name_problem("default"));
  EXPECT_FALSE(project_name_problem("tenant-a.prod"));
  EXPECT_FALSE(project_name_problem("9lives"));
  EXPECT_TRUE(project_name_problem(""));
  EXPECT_TRUE(project_name_problem("a/b"));
  EXPECT_TRUE(project_name_problem("a b"));
  EXPECT_TRUE(project_name_problem("a_b"));  // LXD refuses underscores in project names
  EXPECT_TRUE(project_name_problem(".."));
  EXPECT_TRUE(project_name_problem("-x"));
  EXPECT_TRUE(project_name_problem(std::string(64, 'p')));
}

TEST(ConfigNames, LabelNames) {
  EXPECT_FALSE(label_name_problem("zone"));
  EXPECT_FALSE(label_name_problem("9"));
  EXPECT_FALSE(label_name_problem("example.com/tier"));
  EXPECT_FALSE(label_name_problem("rack_2-a"));
  EXPECT_EQ(label_name_problem(""), "must not be empty");
  EXPECT_EQ(label_name_problem("-x"), "must start with an ASCII letter or digit");
  EXPECT_EQ(label_name_problem("/x"), "must start with an ASCII letter or digit");
  EXPECT_EQ(label_name_problem("a b"), "may contain only ASCII letters, digits, '.', '_', '/' and '-'");
  EXPECT_EQ(label_name_problem("zone:"), "may contain only ASCII letters, digits, '.', '_', '/' and '-'");
  EXPECT_EQ(label_name_problem(std::string(64, 'l')), "must be at most 63 characters long");
}

TEST(ConfigNames, OtherNamesAgreeWithTheSchema) {
  expect_agreement("remoteName", remote_name_problem, samples);
  expect_agreement("imageName", local_name_problem, samples);
  expect_agreement("placementName", local_name_problem, samples);
  expect_agreement("groupName", local_name_problem, samples);
  expect_agreement("labelName", label_name_problem, samples);
  expect_agreement("projectName", project_name_problem, samples);
  expect_agreement("alias", alias_problem, samples);
  expect_agreement("configKey", config_key_problem, samples);
  expect_agreement("deviceName", device_name_problem, samples);
  expect_agreement("deviceKey", device_key_problem, samples);
}

TEST(ConfigUrl, Accepted) {
  for (const char* url : {"https://10.0.0.1", "https://10.0.0.1:8443", "https://lxd.example.com:8443/", "https://host",
                          "https://[::1]", "https://[fd00::1]:8443", "https://a-b.c.example.", "https://h_x",
                          "unix:///var/lib/lxd/unix.socket", "unix:///s", "unix:///s?x#y"}) {
    EXPECT_FALSE(url_problem(url)) << url << ": " << url_problem(url).value_or("");
  }
}

TEST(ConfigUrl, Rejected) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "the URL is empty"},
      {"http://h:8443", "plain http is not supported"},
      {"ftp://h", "the scheme is not supported"},
      {"h:8443", "the scheme is missing"},
      {"https://", "the host is missing"},
      {"https://:8443", "the host is missing"},
      {"https://h:0", "the port must be a number from 1 to 65535"},
      {"https://h:65536", "the port must be a number from 1 to 65535"},
      {"https://h:", "the port must be a number from 1 to 65535"},
      {"https://h:84x3", "the port must be a number from 1 to 65535"},
      {"https://h/1.0", "no path, query or fragment"},
      {"https://h?x=1", "no path, query or fragment"},
      {"https://u:p@h", "no user name or password"},
      {"https://fd00::1", "must be written in brackets"},
      {"https://[fd00::1", "missing its closing ']'"},
      {"https://[zz::1]:8443", "not a valid IPv6 address"},
      {"https://[::1]x", "only :PORT may follow"},
      {"https://300.1.1.1", "the IPv4 address is not valid"},
      {"https://-h.example", "starts or ends with a hyphen"},
      {"https://h..example", "must be 1-63 characters long"},
      {"https://h x", "may contain only ASCII letters, digits, '-', '_' and dots"},
      {"https://[fe80::1%25eth0]", "zone"},
      {"unix:///" + std::string(107, 's'), "longer than 107 bytes"},
      {"unix://host/s", "has no host"},
      {"unix:/s", "written unix:///ABSOLUTE/PATH"},
      {"unix:///", "the socket path is missing"},
  };
  for (const auto& [url, reason] : cases) {
    const auto problem = url_problem(url);
    ASSERT_TRUE(problem) << url;
    EXPECT_NE(problem->find(reason), std::string::npos) << url << ": " << *problem;
    if (url.size() > 8) {
      EXPECT_EQ(problem->find(url), std::string::npos) << "the reason quotes the URL: " << *problem;
    }
  }
}

TEST(ConfigFingerprint, Normalised) {
  const std::string hex(64, 'a');
  EXPECT_EQ(normalize_fingerprint(hex), hex);
  EXPECT_EQ(normalize_fingerprint("sha256:" + std::string(64, 'A')), hex);
  std::string pairs;
  for (int i = 0; i < 32; ++i) pairs += (i > 0 ? ":" : "") + std::string{"Aa"};
  EXPECT_EQ(normalize_fingerprint(pairs), hex);
  EXPECT_FALSE(normalize_fingerprint(std::string(63, 'a')));
  EXPECT_FALSE(normalize_fingerprint(std::string(64, 'g')));
  EXPECT_FALSE(normalize_fingerprint("sha1:" + hex));
  EXPECT_FALSE(normalize_fingerprint(pairs.substr(0, 94) + ";a"));
}

TEST(ConfigInterpolate, ReplacesAndEscapes) {
  const auto env = testing::fixed_env({{"A", "1"}, {"B_2", "two"}, {"EMPTY", ""}});
  auto r = interpolate("x${env:A}y${env:B_2}z${env:EMPTY}", env);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.text, "x1ytwoz");
  EXPECT_EQ(r.variables, (std::vector<std::string>{"A", "B_2", "EMPTY"}));
  r = interpolate("$${env:A} costs $5 or $$ or ${", env);
  ASSERT_EQ(r.errors.size(), 1U);  // the trailing "${" is unterminated
  EXPECT_EQ(r.text.rfind("${env:A} costs $5 or $$ or ", 0), 0U) << r.text;
  EXPECT_TRUE(r.variables.empty());
}

TEST(ConfigInterpolate, Errors) {
  const auto env = testing::fixed_env({});
  auto r = interpolate("${env:NOPE}", env);
  ASSERT_EQ(r.errors.size(), 1U);
  EXPECT_EQ(r.errors[0].summary, "environment variable NOPE is not set (referenced as ${env:NOPE})");
  r = interpolate("${NOPE} ${env:} ${env:a-b} ${file:/x}", env);
  EXPECT_EQ(r.errors.size(), 4U);
  for (const auto& e : r.errors) EXPECT_NE(e.summary.find("unsupported reference"), std::string::npos) << e.summary;
}

TEST(ConfigInterpolate, ProcessEnvironment) {
  ASSERT_EQ(::setenv("BERTH_CONFIG_TEST_VAR", "here", 1), 0);
  const auto env = process_env();
  EXPECT_EQ(env("BERTH_CONFIG_TEST_VAR"), "here");
  ::unsetenv("BERTH_CONFIG_TEST_VAR");
  EXPECT_FALSE(env("BERTH_CONFIG_TEST_VAR"));
}

}  // namespace
}  // namespace berth::config
