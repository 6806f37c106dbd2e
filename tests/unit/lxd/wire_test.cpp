// The typed wire structs: what a daemon sends becomes a value or an error naming the field.

#include <gtest/gtest.h>

#include "providers/lxd/wire.hpp"

namespace berth::lxd::wire {
namespace {

using Json = nlohmann::json;

Json instance_json() {
  return {{"name", "c1"},
          {"type", "container"},
          {"architecture", "x86_64"},
          {"status", "Running"},
          {"status_code", 103},
          {"config", {{"user.a", "1"}}},
          {"devices", {{"eth0", {{"type", "nic"}, {"nictype", "bridged"}}}}},
          {"profiles", {"default"}},
          {"ephemeral", false},
          {"stateful", false},
          {"description", "web"},
          {"created_at", "0001-01-01T00:00:00Z"},
          {"location", "none"},
          {"expanded_config", {{"ignored", 1}}}};
}

std::string error_of(const Result<Instance>& r) {
  return r ? std::string{"(parsed)"} : r.error().message;
}

TEST(WireInstance, ReadsEveryFieldAndIgnoresUnknownOnes) {
  const auto i = parse_instance(instance_json());
  ASSERT_TRUE(i) << i.error().message;
  EXPECT_EQ(i->name, "c1");
  EXPECT_EQ(i->status_code, 103);
  EXPECT_EQ(i->config, (model::ConfigMap{{"user.a", "1"}}));
  EXPECT_EQ(i->devices.at("eth0").at("nictype"), "bridged");
  EXPECT_EQ(i->profiles, std::vector<std::string>{"default"});
  EXPECT_EQ(i->description, "web");
  EXPECT_TRUE(i->created_at.empty()) << "Go's zero time means unknown";
  EXPECT_EQ(to_json(*i)["config"]["user.a"], "1");
}

TEST(WireInstance, NullIsAbsentAsGoRendersNilMaps) {
  Json j = instance_json();
  j["config"] = nullptr;
  j["devices"] = nullptr;
  j["profiles"] = nullptr;
  const auto i = parse_instance(j);
  ASSERT_TRUE(i) << i.error().message;
  EXPECT_TRUE(i->config.empty());
  EXPECT_TRUE(i->devices.empty());
  EXPECT_FALSE(i->profiles.has_value());
  EXPECT_TRUE(i->missing.empty()) << "null is carried (Go's nil), so the instance may be put back";
  EXPECT_TRUE(to_json(*i)["profiles"].is_null()) << "absent profiles go back as null";
  j["devices"] = {{"eth0", nullptr}};
  const auto nil_device = parse_instance(j);
  ASSERT_TRUE(nil_device);
  EXPECT_TRUE(nil_device->devices.at("eth0").empty());
  j.erase("config");
  j.erase("ephemeral");
  const auto partial = parse_instance(j);
  ASSERT_TRUE(partial);
  EXPECT_EQ(partial->missing, (std::vector<std::string>{"config", "ephemeral"}));
  const auto none = parse_snapshots(Json(nullptr));
  ASSERT_TRUE(none) << "a null list is an empty one";
  EXPECT_TRUE(none->empty());
}

TEST(WireInstance, AWrongTypeIsAnErrorThatNamesTheField) {
  Json j = instance_json();
  j["config"]["limits.cpu"] = 2;
  const auto scalar = parse_instance(j);
  ASSERT_TRUE(scalar);
  EXPECT_EQ(scalar->config.at("limits.cpu"), "2") << "a scalar reads as its JSON text";
  j["config"]["limits.cpu"] = Json::object();
  EXPECT_EQ(error_of(parse_instance(j)), "instance c1: config.limits.cpu is an object, not a string");
  j = instance_json();
  j["status_code"] = "103";
  EXPECT_EQ(error_of(parse_instance(j)), "instance c1: status_code is a string, not an integer");
  j = instance_json();
  j["status_code"] = 1e12;
  EXPECT_EQ(error_of(parse_instance(j)), "instance c1: status_code is a number, not an integer");
  j = instance_json();
  for (const char* text : {"99999999999", "2147483648", "-2147483649", "18446744073709551615"}) {
    j["status_code"] = Json::parse(text);  // parsed as a daemon's answer is: unsigned when not negative
    EXPECT_EQ(error_of(parse_instance(j)), "instance c1: status_code is out of range") << text;
  }
  for (const char* text : {"2147483647", "-2147483648", "0"}) {
    j["status_code"] = Json::parse(text);
    const auto edge = parse_instance(j);
    ASSERT_TRUE(edge) << text;
    EXPECT_EQ(std::to_string(edge->status_code), text);
  }
  j = instance_json();
  j["devices"]["eth0"]["mtu"] = Json::array();
  EXPECT_EQ(error_of(parse_instance(j)), "instance c1: devices.eth0.mtu is a list, not a string");
  j = instance_json();
  j["profiles"] = {"default", 3};
  EXPECT_EQ(error_of(parse_instance(j)), "instance c1: profiles holds a number, not only strings");
  j = instance_json();
  j.erase("name");
  EXPECT_EQ(error_of(parse_instance(j)), "the instance has no name");
  EXPECT_EQ(error_of(parse_instance(Json::array())), "the instance is a list, not an object");
}

TEST(WireLists, EntriesAreNamedByNameOrPosition) {
  Json list = Json::array({instance_json(), {{"name", 5}}});
  const auto parsed = parse_instances(list);
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().message, "instance #2: name is a number, not a string");
  EXPECT_EQ(parse_instances(Json::object()).error().message, "the answer is an object, not a list of instances");
  const auto snaps = parse_snapshots(Json::array({{{"name", "c1/s0"}, {"created_at", "2026-01-01T00:00:00Z"}}}));
  ASSERT_TRUE(snaps);
  EXPECT_EQ(snaps->at(0).name, "s0");
  EXPECT_FALSE(parse_snapshots(Json::array({{{"created_at", "x"}}})));
  const auto names = parse_names(Json::array({"/1.0/storage-pools/my%20pool", "/1.0/storage-pools/p?project=x"}));
  ASSERT_TRUE(names);
  EXPECT_EQ(*names, (std::vector<std::string>{"my pool", "p"}));
  for (const char* bad : {"/1.0/storage-pools/", "/1.0/storage-pools/a%2Fb", "/1.0/storage-pools/%2E%2E", "/x/a%00"}) {
    EXPECT_FALSE(parse_names(Json::array({bad}))) << bad;
  }
  EXPECT_EQ(parse_names(Json::array({7})).error().message, "entry #1 is a number, not a URL");
}

TEST(WireServer, EnvironmentOnlyWhenSent) {
  auto s = parse_server({{"auth", "untrusted"}, {"api_extensions", Json::array()}});
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->environment);
  s = parse_server({{"auth", "trusted"}, {"environment", {{"addresses", {"10.0.0.1:8443"}}, {"certificate", "PEM"}}}});
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->environment);
  EXPECT_EQ(s->environment->addresses, std::vector<std::string>{"10.0.0.1:8443"});
  EXPECT_EQ(parse_server({{"auth", "trusted"}, {"environment", {{"addresses", "x"}}}}).error().message,
            "the server's environment: addresses is a string, not a list");
  EXPECT_EQ(parse_server(Json::object()).error().message, "the server has no auth");
}

TEST(WireOperation, StatusCodeIsRequiredAndResourcesAreTyped) {
  const auto op = parse_operation({{"id", "u"},
                                   {"status_code", 103},
                                   {"resources", {{"instances", {"/1.0/instances/c1"}}}},
                                   {"metadata", {{"secret", "s"}}}});
  ASSERT_TRUE(op);
  EXPECT_FALSE(op->is_final());
  EXPECT_EQ(op->resources.at("instances").at(0), "/1.0/instances/c1");
  EXPECT_EQ(string_in(op->metadata, "secret"), "s");
  EXPECT_EQ(parse_operation({{"id", "u"}}).error().message, "the operation has no status_code");
  EXPECT_FALSE(parse_operation({{"status_code", 200}, {"metadata", "x"}}));
  EXPECT_FALSE(parse_operation({{"status_code", 200}, {"resources", {{"instances", "x"}}}}));
  const auto all =
      parse_operations({{"running", Json::array({{{"id", "a"}, {"status_code", 103}}})}, {"success", nullptr}});
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 1U);
  EXPECT_FALSE(parse_operations({{"running", Json::array({7})}}));
}

TEST(WireFreeForm, ReadersNeverTrustTheShape) {
  EXPECT_EQ(text_in(Json::array(), "k"), "");
  EXPECT_EQ(text_in({{"k", 7}}, "k"), "");
  EXPECT_EQ(text_in({{"k", "v"}}, "k"), "v");
  EXPECT_EQ(object_in({{"k", "v"}}, "k"), Json::object());
  EXPECT_EQ(object_in(nullptr, "k"), Json::object());
  EXPECT_FALSE(flag_in({{"k", "true"}}, "k"));
  EXPECT_TRUE(flag_in({{"k", true}}, "k"));
}

}  // namespace
}  // namespace berth::lxd::wire
