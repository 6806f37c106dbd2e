// The `filter` lxc and berth send with instance and image lists: eq and ne on top-level fields and
// config maps, joined by "and"; anything else is refused with a message rather than ignored.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "daemon/api/instances_api.hpp"

namespace berth::daemon::api {
namespace {

const nlohmann::json c1 = {{"name", "c1"},
                           {"status", "Running"},
                           {"ephemeral", false},
                           {"config", {{"user.role", "web"}}},
                           {"expanded_config", {{"user.role", "web"}, {"limits.cpu", "1"}}}};

bool matches(const std::string& filter) {
  std::string error;
  const auto m = filter_matches(filter, c1, error);
  EXPECT_TRUE(m.has_value()) << filter << ": " << error;
  return m.value_or(false);
}

TEST(InstanceFilter, EqAndNeOnFieldsAndConfig) {
  EXPECT_TRUE(matches(""));
  EXPECT_TRUE(matches("name eq c1"));
  EXPECT_FALSE(matches("name eq c2"));
  EXPECT_TRUE(matches("name ne c2"));
  EXPECT_TRUE(matches("status eq Running and config.user.role eq web"));
  EXPECT_FALSE(matches("status eq Running and config.user.role eq db"));
  EXPECT_TRUE(matches("expanded_config.limits.cpu eq 1"));
  EXPECT_TRUE(matches("config.limits.cpu eq ''"));  // not set locally
  EXPECT_TRUE(matches("ephemeral eq false"));
  EXPECT_TRUE(matches("name eq \"c1\""));
}

TEST(InstanceFilter, WhatItCannotReadIsAnError) {
  for (const std::string bad : {"name", "name eq", "name gt c1", "name eq c1 or name eq c2", "name eq c1 and"}) {
    std::string error;
    EXPECT_FALSE(filter_matches(bad, c1, error).has_value()) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

}  // namespace
}  // namespace berth::daemon::api
