// Request bodies parsed once, into values (daemon/api/requests.hpp): what lxc sends is read as
// LXD reads it, and a field of the wrong type is a 400 naming it, never an exception (which the
// router turned into a 500). Cases found by fuzz/berthd_body_fuzz.cpp are here too.

#include "daemon/api/requests.hpp"

#include <gtest/gtest.h>

#include "daemon/images/metadata.hpp"

namespace berth::daemon::api {
namespace {

using nlohmann::json;

template <class T>
void expect_400(const Result<T>& result, const std::string& says) {
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().kind, lxd::ErrorKind::invalid_argument);
  EXPECT_NE(result.error().message.find(says), std::string::npos) << result.error().message;
}

TEST(InstanceCreateBody, ReadsWhatLxcSends) {
  const auto body = json::parse(R"({"architecture":"","config":{"limits.cpu":"2","volatile.base_image":"abc"},
    "devices":{},"ephemeral":false,"profiles":null,"stateful":false,"description":"","name":"c1",
    "source":{"type":"image","certificate":"","fingerprint":"06b8","allow_inconsistent":false},
    "instance_type":"","type":"container"})");
  const auto r = parse_instance_create(body);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->name, "c1");
  EXPECT_EQ(r->image, "06b8");
  EXPECT_EQ(r->profiles, std::vector<std::string>{"default"});
  EXPECT_EQ(r->config.at("volatile.base_image"), "abc");

  const auto copy = parse_instance_create(json{{"name", "c2"}, {"source", {{"type", "copy"}, {"source", "c1/s0"}}}});
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->copy_of, "c1");
  EXPECT_EQ(copy->copy_snapshot, "s0");
}

TEST(InstanceCreateBody, WrongTypesAre400NotExceptions) {
  expect_400(parse_instance_create(json{{"name", 1}}), "name must be a string");
  expect_400(parse_instance_create(json{{"name", "c1"}, {"ephemeral", "yes"}}), "ephemeral");
  expect_400(parse_instance_create(json{{"name", "c1"}, {"source", "image"}}), "source must be an object");
  expect_400(parse_instance_create(json{{"name", "c1"}, {"source", {{"type", 3}}}}), "type must be a string");
  expect_400(parse_instance_create(json{{"name", "c1"}, {"source", {{"type", "image"}}}}), "No image given");
  expect_400(parse_instance_create(json{{"name", "c1"}, {"profiles", {1}}}), "profiles");
  expect_400(parse_instance_create(json{{"name", "c3"}, {"source", {{"type", "copy"}, {"souyce", "c1/snap0"}}}}),
             "Must specify a source instance");
  expect_400(parse_instance_create(json{{"name", "c3"}, {"source", {{"type", "copy"}, {"source", "/snap0"}}}}),
             "names no instance");
  expect_400(parse_instance_create(json{{"name", "c3"}, {"source", {{"type", "copy"}, {"source", "c1/"}}}}),
             "names no instance");
}

TEST(MigrationBodies, PullPushAndRelayAsLxcSendsThem) {
  const std::string cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  // The target of a pull: the source's operation, secrets and certificate.
  auto pull = parse_instance_create(json{{"name", "c1"},
                                         {"source",
                                          {{"type", "migration"},
                                           {"mode", "pull"},
                                           {"operation", "https://10.0.0.1:8443/1.0/operations/x"},
                                           {"secrets", {{"control", "a1"}, {"fs", "b2"}}},
                                           {"certificate", cert},
                                           {"refresh", true}}}});
  ASSERT_TRUE(pull) << pull.error().message;
  ASSERT_TRUE(pull->migration);
  EXPECT_FALSE(pull->migration->push);
  EXPECT_TRUE(pull->migration->refresh);
  EXPECT_EQ(pull->migration->secrets.at("fs"), "b2");
  expect_400(parse_instance_create(json{{"name", "c1"}, {"source", {{"type", "migration"}, {"mode", "pull"}}}}),
             "source.operation");
  // The target of a push (or relay): none of them; the source or the client connects.
  auto push = parse_instance_create(
      json{{"name", "c1"}, {"source", {{"type", "migration"}, {"mode", "push"}, {"certificate", ""}}}});
  ASSERT_TRUE(push) << push.error().message;
  EXPECT_TRUE(push->migration->push);
  EXPECT_FALSE(push->migration->refresh);
  expect_400(parse_instance_create(json{{"name", "c1"}, {"source", {{"type", "migration"}, {"mode", "fly"}}}}),
             "Unknown migration mode");

  // The source of a push names the target's operation.
  auto source = parse_migration_source(json{{"name", ""},
                                            {"migration", true},
                                            {"live", false},
                                            {"target",
                                             {{"operation", "https://10.0.0.2:8443/1.0/operations/y"},
                                              {"secrets", {{"control", "c3"}, {"fs", "d4"}}},
                                              {"certificate", cert}}}});
  ASSERT_TRUE(source) << source.error().message;
  ASSERT_TRUE(source->target);
  EXPECT_EQ(source->target->operation, "https://10.0.0.2:8443/1.0/operations/y");
  EXPECT_EQ(source->target->secrets.at("control"), "c3");
  EXPECT_FALSE(source->live);
  EXPECT_FALSE(parse_migration_source(json{{"migration", true}, {"target", nullptr}})->target);
  expect_400(parse_migration_source(json{{"migration", true}, {"target", "x"}}), "target must be an object");
  expect_400(
      parse_migration_source(json{
          {"migration", true},
          {"target",
           {{"operation", "https://h/1.0/operations/y"}, {"secrets", {{"control", "c3"}}}, {"certificate", cert}}}}),
      "target.secrets");
  expect_400(parse_migration_source(json{{"migration", true},
                                         {"target",
                                          {{"operation", "https://h/1.0/operations/y?x=1"},
                                           {"secrets", {{"control", "c3"}, {"fs", "d4"}}},
                                           {"certificate", cert}}}}),
             "target.operation");
}

TEST(StateChangeBody, ReadsLxcActionsAndRefusesOddOnes) {
  const auto start =
      parse_state_change(json::parse(R"({"action":"start","timeout":-1,"force":false,"stateful":false})"));
  ASSERT_TRUE(start);
  EXPECT_EQ(start->action, "start");
  EXPECT_EQ(start->timeout, -1);
  expect_400(parse_state_change(json{{"action", "stop"}, {"force", "yes"}}), "force");
  expect_400(parse_state_change(json{{"action", "stop"}, {"timeout", 1LL << 40}}), "timeout");
  expect_400(parse_state_change(json{{"action", 1}}), "action");
  expect_400(parse_state_change(json{{"action", "start"}, {"stateful", true}}), "CRIU");
}

TEST(RenameBody, NullMigrationIsNoMigration) {
  const auto to = parse_rename(json{{"name", "c2"}, {"migration", nullptr}, {"target", nullptr}});
  ASSERT_TRUE(to);
  EXPECT_EQ(*to, "c2");
  expect_400(parse_rename(json{{"name", "c2"}, {"migration", true}}), "Migration");
  expect_400(parse_rename(json{{"name", 2}}), "name");
  expect_400(parse_rename(json::object()), "A new name is required");
}

TEST(SnapshotBody, ExpiryAsLxcSendsIt) {
  const auto never = parse_snapshot_create(json{{"name", "s"}, {"expires_at", "0001-01-01T00:00:00Z"}});
  ASSERT_TRUE(never);
  EXPECT_FALSE(never->expires);
  const auto when = parse_snapshot_create(json{{"name", ""}, {"expires_at", "2030-01-02T03:04:05Z"}});
  ASSERT_TRUE(when);
  EXPECT_TRUE(when->expires);
  expect_400(parse_snapshot_create(json{{"expires_at", 5}}), "expires_at");
  expect_400(parse_snapshot_create(json{{"name", json::array()}}), "name");
}

TEST(ServerPutBody, KeysCheckedAfterTheShape) {
  expect_400(parse_server_put(json{{"config", "x"}}), "config is not an object");
  const auto bad = parse_server_put(json{{"config", {{"core.https_address", ":8443"}, {"nope", "1"}}}});
  ASSERT_TRUE(bad);
  ASSERT_TRUE(bad->invalid);
  EXPECT_TRUE(bad->config.empty());
  const auto keep = parse_server_put(json{{"config", {{"core.trust_password", true}, {"user.a", nullptr}}}});
  ASSERT_TRUE(keep);
  EXPECT_FALSE(keep->invalid);
  ASSERT_EQ(keep->config.size(), 2U);
  EXPECT_FALSE(keep->config[0].value);
  EXPECT_EQ(keep->config[1].value, "");
}

TEST(ProfileBody, DescriptionOfAnotherTypeIs400) {
  expect_400(parse_profile(json{{"description", 1}}), "description");
  expect_400(parse_profile_name(json{{"name", nullptr}}, true), "Invalid profile name");
  expect_400(parse_profile_name(json{{"name", ".."}}, true), "Invalid profile name");
  EXPECT_TRUE(parse_profile_name(json{{"name", ".."}}, false));
}

TEST(ImageBodies, WrongTypesAre400) {
  expect_400(parse_image_create(json{{"source", {{"type", "image"}, {"mode", 1}}}}), "mode");
  expect_400(parse_image_create(json{{"source", {{"type", "instance"}, {"name", "c1"}}}, {"filename", 1}}), "filename");
  expect_400(parse_image_create(json{{"source", {{"type", "instance"}, {"name", "c1"}}}, {"aliases", {"a"}}}),
             "Invalid alias name");
  const auto publish = parse_image_create(json{{"source", {{"type", "snapshot"}, {"name", "c1/s0"}}}});
  ASSERT_TRUE(publish);
  EXPECT_EQ(publish->snapshot, "s0");
  // A stored document whose properties are not an object is not a reason to throw.
  const auto next = apply_image_put(json{{"properties", "x"}}, json{{"properties", {{"os", "u"}}}}, true);
  ASSERT_TRUE(next);
  EXPECT_EQ((*next)["properties"]["os"], "u");
  expect_400(parse_alias(json{{"name", "a"}, {"target", 3}}, true), "target");
}

TEST(ExecControl, ResizeAndSignal) {
  const auto resize =
      parse_exec_control(R"({"command":"window-resize","args":{"width":"80","height":"x"},"signal":0})");
  ASSERT_TRUE(resize);
  EXPECT_EQ(resize->kind, ExecControl::Kind::resize);
  EXPECT_EQ(resize->width, 80);
  EXPECT_EQ(resize->height, -1);
  const auto signal = parse_exec_control(R"({"command":"signal","args":null,"signal":15})");
  ASSERT_TRUE(signal);
  EXPECT_EQ(signal->signal, 15);
  EXPECT_FALSE(parse_exec_control(R"({"command":"signal","signal":99999999999})"));
  EXPECT_FALSE(parse_exec_control("[[[[["));
}

TEST(FileHeaders, AsLxdReadsThem) {
  const auto what = parse_file_headers({"1000", "", "0644", "directory", ""});
  EXPECT_EQ(what.uid, 1000);
  EXPECT_EQ(what.gid, -1);
  EXPECT_EQ(what.mode, 0644);
  EXPECT_EQ(what.type, "directory");
  EXPECT_EQ(what.write, "overwrite");
  EXPECT_EQ(parse_file_headers({"-1", "1x", "99999", "", ""}).uid, -1);
}

TEST(ImageMetadata, AliasBombInTemplatesIsRefused) {
  std::string yaml = "architecture: x86_64\ncreation_date: 1\ntemplates:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  std::string previous = "a";
  for (int i = 0; i < 8; ++i) {
    const std::string name = "l" + std::to_string(i);
    yaml += "  " + name + ": &" + name + " [";
    for (int j = 0; j < 10; ++j) yaml += (j ? ", *" : "*") + previous;
    yaml += "]\n";
    previous = name;
  }
  const auto parsed = parse_image_metadata(yaml);
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("too large"), std::string::npos) << parsed.error().message;
}

}  // namespace
}  // namespace berth::daemon::api
