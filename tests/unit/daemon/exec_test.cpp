#include "daemon/instances/exec.hpp"

#include <gtest/gtest.h>

namespace berth::daemon {
namespace {

TEST(ExecRequest, ReadsWhatLxcSends) {
  const auto body = nlohmann::json::parse(R"({
    "command": ["sh", "-c", "echo hi"], "wait-for-websocket": true, "interactive": true,
    "environment": {"TERM": "xterm", "FOO": "bar"}, "width": 80, "height": 24,
    "record-output": false, "user": 1000, "group": 1001, "cwd": "/tmp"})");
  auto r = parse_exec_request(body);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->command, (std::vector<std::string>{"sh", "-c", "echo hi"}));
  EXPECT_TRUE(r->wait_for_websocket);
  EXPECT_TRUE(r->interactive);
  EXPECT_FALSE(r->record_output);
  EXPECT_EQ(r->environment.at("TERM"), "xterm");
  EXPECT_EQ(r->width, 80);
  EXPECT_EQ(r->height, 24);
  EXPECT_EQ(r->user, 1000u);
  EXPECT_EQ(r->group, 1001u);
  EXPECT_EQ(r->cwd, "/tmp");

  // Only the command is required; null fields are absent ones.
  auto minimal = parse_exec_request(nlohmann::json::parse(R"({"command":["true"],"environment":null,"cwd":null})"));
  ASSERT_TRUE(minimal) << minimal.error().message;
  EXPECT_FALSE(minimal->wait_for_websocket);
  EXPECT_EQ(minimal->user, 0u);
  EXPECT_TRUE(minimal->cwd.empty());
}

TEST(ExecRequest, RefusesWhatCannotRunNamingTheField) {
  const std::vector<std::pair<const char*, const char*>> bad = {
      {R"([])", "object"},
      {R"({})", "command"},
      {R"({"command":[]})", "command"},
      {R"({"command":"true"})", "command"},
      {R"({"command":[1]})", "command"},
      {R"({"command":[""]})", "command"},
      {R"({"command":["a\u0000b"]})", "NUL"},
      {R"({"command":["true"],"environment":[]})", "environment"},
      {R"({"command":["true"],"environment":{"A":1}})", "environment A"},
      {R"({"command":["true"],"environment":{"A=B":"c"}})", "A=B"},
      {R"({"command":["true"],"interactive":"yes"})", "interactive"},
      {R"({"command":["true"],"user":-1})", "user"},
      {R"({"command":["true"],"group":4294967296})", "group"},
      {R"({"command":["true"],"width":1.5})", "width"},
      {R"({"command":["true"],"cwd":"relative"})", "cwd"},
      {R"({"command":["true"],"cwd":7})", "cwd"},
  };
  for (const auto& [text, names] : bad) {
    auto r = parse_exec_request(nlohmann::json::parse(text));
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().kind, lxd::ErrorKind::invalid_argument) << text;
    EXPECT_NE(r.error().message.find(names), std::string::npos) << text << ": " << r.error().message;
  }
}

TEST(ExecRequest, DefaultEnvironmentAsLxdFillsIt) {
  ExecRequest r;
  r.environment = {{"FOO", "mine"}, {"PATH", "/custom"}};
  add_default_environment(r, {{"environment.FOO", "instance"}, {"environment.BAR", "instance"}, {"limits.cpu", "1"}});
  EXPECT_EQ(r.environment.at("FOO"), "mine") << "the request wins over the instance";
  EXPECT_EQ(r.environment.at("BAR"), "instance");
  EXPECT_EQ(r.environment.at("PATH"), "/custom");
  EXPECT_EQ(r.environment.at("HOME"), "/root");
  EXPECT_EQ(r.environment.at("USER"), "root");
  EXPECT_EQ(r.environment.at("LANG"), "C.UTF-8");
  EXPECT_EQ(r.environment.count("limits.cpu"), 0u);

  ExecRequest user;
  user.user = 1000;
  add_default_environment(user, {});
  EXPECT_EQ(user.environment.count("HOME"), 0u) << "HOME and USER only for root, as LXD";
  EXPECT_EQ(user.environment.at("PATH"), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
}

}  // namespace
}  // namespace berth::daemon
