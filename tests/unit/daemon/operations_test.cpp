// Token operations: Running until used once, cancelled or gone; finished ones readable for a while.

#include <gtest/gtest.h>

#include "daemon/operations/operations.hpp"
#include "engine/util/time.hpp"

namespace berth::daemon {
namespace {

TEST(Operations, ATokenIsUsedOnceAndThenCancelled) {
  Operations ops;
  const auto op = ops.add_token("Generating certificate add token", {{"secret", "abc"}}, nlohmann::json::object());
  EXPECT_EQ(op["class"], "token");
  EXPECT_EQ(op["status_code"], 103);
  EXPECT_EQ(op["id"].get<std::string>().size(), 36u);
  EXPECT_FALSE(ops.consume_token("abd"));
  EXPECT_FALSE(ops.consume_token(""));
  const auto used = ops.consume_token("abc");
  ASSERT_TRUE(used);
  EXPECT_EQ((*used)["secret"], "abc");
  EXPECT_FALSE(ops.consume_token("abc"));
  const auto after = ops.get(op["id"]);
  ASSERT_TRUE(after);
  EXPECT_EQ((*after)["status"], "Cancelled");
  EXPECT_EQ((*after)["status_code"], 401);
}

TEST(Operations, CancelIsForRunningOperationsOnly) {
  Operations ops;
  const auto op = ops.add_token("t", {{"secret", "s"}}, nlohmann::json::object());
  int status = 0;
  EXPECT_EQ(ops.cancel("nope", status), "not found");
  EXPECT_EQ(status, 404);
  EXPECT_EQ(ops.cancel(op["id"], status), "");
  EXPECT_FALSE(ops.cancel(op["id"], status).empty());
  EXPECT_EQ(status, 400);
  EXPECT_FALSE(ops.consume_token("s"));
}

TEST(Operations, FinishedOperationsAreForgottenAfterAWhile) {
  auto now = Operations::Clock::now();
  Operations ops("none", std::chrono::seconds{5}, [&] { return now; });
  const auto op = ops.add_token("t", {{"secret", "s"}}, nlohmann::json::object());
  ASSERT_TRUE(ops.consume_token("s"));
  now += std::chrono::seconds{4};
  EXPECT_TRUE(ops.get(op["id"]));
  now += std::chrono::seconds{2};
  EXPECT_FALSE(ops.get(op["id"]));
  EXPECT_TRUE(ops.list().empty());
}

TEST(Operations, AnExpiredTokenIsCancelledAndCannotBeUsed) {
  auto now = *util::parse_rfc3339_utc("2026-01-01T00:00:00Z");
  Operations ops("none", std::chrono::seconds{5}, [&] { return now; });
  const auto op =
      ops.add_token("t", {{"secret", "s"}, {"expiresAt", "2026-01-01T00:00:10Z"}}, nlohmann::json::object());
  now += std::chrono::seconds{11};
  EXPECT_FALSE(ops.consume_token("s"));
  const auto after = ops.get(op["id"]);
  ASSERT_TRUE(after);
  EXPECT_EQ((*after)["status"], "Cancelled");
}

TEST(Operations, IdsAndSecretsAreFresh) {
  EXPECT_NE(random_uuid(), random_uuid());
  const auto s = random_secret();
  EXPECT_EQ(s.size(), 64u);
  EXPECT_EQ(s.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(s, random_secret());
}

}  // namespace
}  // namespace berth::daemon
