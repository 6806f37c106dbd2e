// The shipped files: every example fleet loads, and the schema is valid, embedded as it is in the
// source tree, and describes every key.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/config/schema.hpp"
#include "tests/unit/config/config_test_support.hpp"

namespace berth::config {
namespace {

const std::filesystem::path source_dir{BERTH_SOURCE_DIR};

std::string read(const std::filesystem::path& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::filesystem::path> example_fleets() {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(source_dir / "examples")) {
    const auto ext = entry.path().extension();
    if (!entry.is_regular_file() || (ext != ".yaml" && ext != ".yml")) continue;
    // Only fleet files: other YAML (a CI pipeline, say) may live in examples/ too.
    const std::string text = read(entry.path());
    if (text.find("\nremotes:") == std::string::npos && text.find("\ncontainers:") == std::string::npos) continue;
    files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(ConfigExamples, EveryExampleLoads) {
  const auto env = testing::fixed_env(
      {{"BERTH_QUICKSTART_A", "https://127.0.0.1:8443"}, {"BERTH_QUICKSTART_B", "https://127.0.0.2:8443"}});
  const auto files = example_fleets();
  EXPECT_GE(files.size(), 2U);
  for (const auto& file : files) {
    const auto r = load_fleet_file(file, env);
    EXPECT_TRUE(r.fleet) << file << ":\n" << diag::format(r.diagnostics);
    EXPECT_TRUE(r.diagnostics.empty()) << file << ":\n" << diag::format(r.diagnostics);
  }
}

TEST(ConfigExamples, QuickstartIsTheReadmeDemo) {
  const auto env = testing::fixed_env(
      {{"BERTH_QUICKSTART_A", "https://127.0.0.1:8443"}, {"BERTH_QUICKSTART_B", "https://127.0.0.2:8443"}});
  const auto r = load_fleet_file(source_dir / "examples" / "quickstart.yaml", env);
  ASSERT_TRUE(r.fleet) << diag::format(r.diagnostics);
  const auto& f = *r.fleet;
  EXPECT_EQ(f.remotes.at("a").url, "https://127.0.0.1:8443");
  EXPECT_EQ(f.remotes.at("b").url, "https://127.0.0.2:8443");
  EXPECT_EQ(f.images.at("bb").remote, "a");
  bool on_a = false;
  bool on_b = false;
  bool stopped = false;
  bool same_host_copy = false;
  bool cross_host_snapshot_copy = false;
  for (const auto& [name, c] : f.containers) {
    on_a |= c.remote == "a";
    on_b |= c.remote == "b";
    stopped |= c.state == model::DesiredState::stopped;
    if (c.copy_of) {
      const auto& source = f.containers.at(c.copy_of->container);
      same_host_copy |= source.remote == c.remote && !c.copy_of->snapshot;
      cross_host_snapshot_copy |= source.remote != c.remote && c.copy_of->snapshot.has_value();
    }
  }
  EXPECT_TRUE(on_a && on_b && stopped && same_host_copy && cross_host_snapshot_copy);
  // Without the environment, the quickstart says which variables to set.
  const auto bare = load_fleet_file(source_dir / "examples" / "quickstart.yaml", testing::fixed_env({}));
  ASSERT_FALSE(bare.fleet);
  EXPECT_NE(diag::format(bare.diagnostics).find("environment variable BERTH_QUICKSTART_A is not set"),
            std::string::npos);
}

TEST(ConfigSchema, IsValidJsonAndEmbeddedAsInTheSourceTree) {
  const std::string on_disk = read(source_dir / "schemas" / "berth.schema.json");
  const auto schema = nlohmann::json::parse(on_disk);  // throws when it is not JSON
  EXPECT_EQ(schema.at("$schema"), "http://json-schema.org/draft-07/schema#");
  EXPECT_EQ(std::string{fleet_schema_text()}, on_disk) << "rebuild: the embedded schema is stale";
}

// Every schema node that is an object with properties closes them with additionalProperties: false
// (or types them with a schema), and every property has a description.
void check_described(const nlohmann::json& node, const std::string& where) {
  if (!node.is_object()) return;
  if (node.contains("properties")) {
    EXPECT_TRUE(node.contains("additionalProperties")) << where << " does not close its keys";
    for (const auto& [key, sub] : node.at("properties").items()) {
      EXPECT_TRUE(sub.contains("description") && !sub.at("description").get<std::string>().empty())
          << where << "." << key << " has no description";
      check_described(sub, where + "." + key);
    }
  }
  for (const char* child : {"additionalProperties", "items", "propertyNames"}) {
    if (node.contains(child)) check_described(node.at(child), where + "/" + child);
  }
  for (const char* list : {"oneOf", "anyOf", "allOf"}) {
    if (!node.contains(list)) continue;
    for (std::size_t i = 0; i < node.at(list).size(); ++i) {
      check_described(node.at(list)[i], where + "/" + list + "[" + std::to_string(i) + "]");
    }
  }
}

TEST(ConfigSchema, DescribesEveryKeyOfTheModel) {
  const auto schema = nlohmann::json::parse(read(source_dir / "schemas" / "berth.schema.json"));
  EXPECT_FALSE(schema.at("description").get<std::string>().empty());
  EXPECT_EQ(schema.at("additionalProperties"), false);
  check_described(schema, "(root)");
  for (const auto& [name, definition] : schema.at("definitions").items()) {
    EXPECT_TRUE(definition.contains("description")) << "definitions." << name;
    check_described(definition, "definitions." + name);
  }
  // The model's keys, as the fleet file spells them.
  const auto& top = schema.at("properties");
  for (const char* key : {"version", "name", "prune", "remotes", "images", "placements", "containers"}) {
    EXPECT_TRUE(top.contains(key)) << key;
  }
  const auto& defs = schema.at("definitions");
  for (const char* key : {"url", "fingerprint", "parallelism", "project", "labels", "capacity", "drain"}) {
    EXPECT_TRUE(defs.at("remote").at("properties").contains(key)) << "remote." << key;
  }
  for (const char* key : {"alias", "remote"}) {
    EXPECT_TRUE(defs.at("image").at("properties").contains(key)) << "image." << key;
  }
  for (const char* key : {"remote", "placement", "image", "copy_of", "state", "config", "devices", "profiles",
                          "snapshots", "restart", "move"}) {
    EXPECT_TRUE(defs.at("container").at("properties").contains(key)) << "container." << key;
  }
  for (const char* key : {"candidates", "strategy", "max_per_remote", "anti_affinity"}) {
    EXPECT_TRUE(defs.at("placementPolicy").at("properties").contains(key)) << "placementPolicy." << key;
  }
  for (const char* closed : {"remote", "image", "container", "placementPolicy"}) {
    EXPECT_EQ(defs.at(closed).at("additionalProperties"), false) << closed;
  }
}

}  // namespace
}  // namespace berth::config
