// Token operations: Running until used once, cancelled or gone; finished ones readable for a while.
// Task operations: run on workers, end in Success or Failure, tell waiters and events; shutdown.

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "daemon/operations/operations.hpp"
#include "engine/util/time.hpp"

namespace berth::daemon {
namespace {

TEST(Operations, ATokenIsUsedOnceAndThenCancelled) {
  Operations ops;
  const auto op = ops.add_token(TokenKind::certificate_add, "Generating certificate add token", {{"secret", "abc"}},
                                nlohmann::json::object());
  EXPECT_EQ(op["class"], "token");
  EXPECT_EQ(op["status_code"], 103);
  EXPECT_EQ(op["id"].get<std::string>().size(), 36u);
  EXPECT_FALSE(ops.consume_token(TokenKind::certificate_add, "abd"));
  EXPECT_FALSE(ops.consume_token(TokenKind::certificate_add, ""));
  const auto used = ops.consume_token(TokenKind::certificate_add, "abc");
  ASSERT_TRUE(used);
  EXPECT_EQ((*used)["secret"], "abc");
  EXPECT_FALSE(ops.consume_token(TokenKind::certificate_add, "abc"));
  const auto after = ops.get(op["id"]);
  ASSERT_TRUE(after);
  EXPECT_EQ((*after)["status"], "Cancelled");
  EXPECT_EQ((*after)["status_code"], 401);
}

TEST(Operations, CancelIsForRunningOperationsOnly) {
  Operations ops;
  const auto op = ops.add_token(TokenKind::certificate_add, "t", {{"secret", "s"}}, nlohmann::json::object());
  int status = 0;
  EXPECT_EQ(ops.cancel("nope", status), "not found");
  EXPECT_EQ(status, 404);
  EXPECT_EQ(ops.cancel(op["id"], status), "");
  EXPECT_FALSE(ops.cancel(op["id"], status).empty());
  EXPECT_EQ(status, 400);
  EXPECT_FALSE(ops.consume_token(TokenKind::certificate_add, "s"));
}

TEST(Operations, FinishedOperationsAreForgottenAfterAWhile) {
  auto now = Operations::Clock::now();
  Operations ops("none", std::chrono::seconds{5}, [&] { return now; });
  const auto op = ops.add_token(TokenKind::certificate_add, "t", {{"secret", "s"}}, nlohmann::json::object());
  ASSERT_TRUE(ops.consume_token(TokenKind::certificate_add, "s"));
  now += std::chrono::seconds{4};
  EXPECT_TRUE(ops.get(op["id"]));
  now += std::chrono::seconds{2};
  EXPECT_FALSE(ops.get(op["id"]));
  EXPECT_TRUE(ops.list().empty());
}

TEST(Operations, AnExpiredTokenIsCancelledAndCannotBeUsed) {
  auto now = *util::parse_rfc3339_utc("2026-01-01T00:00:00Z");
  Operations ops("none", std::chrono::seconds{5}, [&] { return now; });
  const auto op = ops.add_token(TokenKind::certificate_add, "t",
                                {{"secret", "s"}, {"expiresAt", "2026-01-01T00:00:10Z"}}, nlohmann::json::object());
  now += std::chrono::seconds{11};
  EXPECT_FALSE(ops.consume_token(TokenKind::certificate_add, "s"));
  const auto after = ops.get(op["id"]);
  ASSERT_TRUE(after);
  EXPECT_EQ((*after)["status"], "Cancelled");
}

TEST(Operations, ASecretAnswersOnlyForItsOwnKindOfToken) {
  Operations ops;
  (void)ops.add_token(TokenKind::image_download, "Image download token", {{"secret", "img"}},
                      {{"images", {"/1.0/images/aa"}}});
  (void)ops.add_token(TokenKind::certificate_add, "t", {{"secret", "cert"}}, nlohmann::json::object());
  // An image secret cannot join the trust store, nor a trust token read an image.
  EXPECT_FALSE(ops.consume_token(TokenKind::certificate_add, "img"));
  EXPECT_FALSE(ops.consume_token(TokenKind::image_download, "cert", "/1.0/images/aa"));
  // An image secret reads its own image only.
  EXPECT_FALSE(ops.consume_token(TokenKind::image_download, "img", "/1.0/images/bb"));
  EXPECT_TRUE(ops.consume_token(TokenKind::image_download, "img", "/1.0/images/aa"));
  EXPECT_TRUE(ops.consume_token(TokenKind::certificate_add, "cert"));
}

TEST(Operations, AUsedImageTokenAnswersWhileItsOperationIsKeptButARevokedOneNever) {
  auto now = Operations::Clock::now();
  Operations ops("none", std::chrono::seconds{5}, [&] { return now; });
  const auto used = ops.add_token(TokenKind::image_download, "t", {{"secret", "s1"}}, {{"images", {"/1.0/images/aa"}}});
  const auto revoked =
      ops.add_token(TokenKind::image_download, "t", {{"secret", "s2"}}, {{"images", {"/1.0/images/aa"}}});
  ASSERT_TRUE(ops.consume_token(TokenKind::image_download, "s1", "/1.0/images/aa"));
  EXPECT_EQ((*ops.get(used["id"]))["status"], "Cancelled");
  // The export that follows the image's GET, with the same secret.
  EXPECT_TRUE(ops.consume_token(TokenKind::image_download, "s1", "/1.0/images/aa"));
  now += std::chrono::seconds{6};
  EXPECT_FALSE(ops.consume_token(TokenKind::image_download, "s1", "/1.0/images/aa")) << "gone with its operation";

  int status = 0;
  EXPECT_EQ(ops.cancel(revoked["id"], status), "");
  EXPECT_FALSE(ops.consume_token(TokenKind::image_download, "s2", "/1.0/images/aa"));
}

TEST(Operations, ADeleteAfterUseEndsAnImageTokensGraceToo) {
  Operations ops;
  const auto op = ops.add_token(TokenKind::image_download, "t", {{"secret", "s"}}, {{"images", {"/1.0/images/aa"}}});
  ASSERT_TRUE(ops.consume_token(TokenKind::image_download, "s", "/1.0/images/aa"));
  int status = 0;
  EXPECT_FALSE(ops.cancel(op["id"], status).empty()) << "no longer Running: 400, as LXD answers";
  EXPECT_EQ(status, 400);
  EXPECT_FALSE(ops.consume_token(TokenKind::image_download, "s", "/1.0/images/aa"));
}

TEST(Operations, IdsAndSecretsAreFresh) {
  EXPECT_NE(random_uuid(), random_uuid());
  const auto s = random_secret();
  EXPECT_EQ(s.size(), 64u);
  EXPECT_EQ(s.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(s, random_secret());
}

// Waits (bounded) until the operation finished; its final object.
nlohmann::json await(Operations& ops, const std::string& id) {
  std::promise<nlohmann::json> done;
  auto future = done.get_future();
  EXPECT_TRUE(ops.when_finished(id, [&done](const nlohmann::json& op) { done.set_value(op); }));
  if (future.wait_for(std::chrono::seconds{10}) != std::future_status::ready) {
    ADD_FAILURE() << "operation " << id << " did not finish";
    return {};
  }
  return future.get();
}

TEST(Operations, ATaskRunsOnAWorkerAndItsMetadataIsMerged) {
  std::mutex mu;
  std::vector<nlohmann::json> events;
  Operations ops(
      "none", std::chrono::seconds{10}, [] { return Operations::Clock::now(); },
      [&](const nlohmann::json& op) {
        const std::lock_guard lock(mu);
        events.push_back(op);
      });
  const auto caller = std::this_thread::get_id();
  std::atomic<bool> other_thread{false};
  const auto op = ops.add_task("Creating instance", {{"instances", {"/1.0/instances/c1"}}},
                               [&]() -> lxd::Result<nlohmann::json> {
                                 other_thread = std::this_thread::get_id() != caller;
                                 return nlohmann::json{{"fingerprint", "abc"}};
                               },
                               {{"progress", "start"}});
  EXPECT_EQ(op["class"], "task");
  EXPECT_EQ(op["status_code"], 103);
  EXPECT_EQ(op["may_cancel"], false);
  const auto final_op = await(ops, op["id"]);
  EXPECT_TRUE(other_thread);
  EXPECT_EQ(final_op["status"], "Success");
  EXPECT_EQ(final_op["metadata"]["fingerprint"], "abc");
  EXPECT_EQ(final_op["metadata"]["progress"], "start");
  EXPECT_EQ(final_op["resources"]["instances"][0], "/1.0/instances/c1");
  const std::lock_guard lock(mu);
  ASSERT_EQ(events.size(), 2u);  // created (Running), then Success: lxc waits on these
  EXPECT_EQ(events[0]["status_code"], 103);
  EXPECT_EQ(events[1]["status_code"], 200);
}

TEST(Operations, AFailingOrThrowingTaskEndsInFailureWithItsError) {
  Operations ops;
  const auto failed = ops.add_task("t", {}, []() -> lxd::Result<nlohmann::json> {
    return lxd::make_error(lxd::ErrorKind::invalid_argument, "Instance not found");
  });
  const auto threw = ops.add_task("t", {}, []() -> lxd::Result<nlohmann::json> { throw std::runtime_error("bug"); });
  const auto a = await(ops, failed["id"]);
  EXPECT_EQ(a["status"], "Failure");
  EXPECT_EQ(a["status_code"], 400);
  EXPECT_EQ(a["err"], "Instance not found");
  const auto b = await(ops, threw["id"]);
  EXPECT_EQ(b["status_code"], 400);
  EXPECT_NE(b["err"].get<std::string>().find("bug"), std::string::npos);
  // A waiter that comes after the end is told at once.
  EXPECT_EQ(await(ops, failed["id"])["status_code"], 400);
  EXPECT_FALSE(ops.when_finished("no-such-id", [](const nlohmann::json&) {}));
}

TEST(Operations, ManyTasksAllRunEvenWhenTheyOutnumberTheWorkers) {
  Operations ops;
  std::atomic<int> ran{0};
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i) {
    ids.push_back(ops.add_task("t", {}, [&]() -> lxd::Result<nlohmann::json> {
      std::this_thread::sleep_for(std::chrono::milliseconds{5});
      ++ran;
      return nlohmann::json::object();
    })["id"]);
  }
  for (const auto& id : ids) EXPECT_EQ(await(ops, id)["status_code"], 200);
  EXPECT_EQ(ran, 40);
}

TEST(Operations, ShutdownCancelsQueuedTasksAndWaitsForRunningOnes) {
  Operations ops;
  std::promise<void> release;
  auto released = release.get_future().share();
  std::atomic<int> started{0};
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) {  // 8 workers: 4 wait in the queue
    ids.push_back(ops.add_task("t", {}, [&, released]() -> lxd::Result<nlohmann::json> {
      ++started;
      released.wait();
      return nlohmann::json::object();
    })["id"]);
  }
  while (started < 8) std::this_thread::sleep_for(std::chrono::milliseconds{1});
  std::thread stopper([&] { release.set_value(); });
  EXPECT_TRUE(ops.shutdown(std::chrono::steady_clock::now() + std::chrono::seconds{10}));
  stopper.join();
  int succeeded = 0;
  int cancelled = 0;
  for (const auto& id : ids) {
    const auto op = ops.get(id);
    ASSERT_TRUE(op);
    succeeded += (*op)["status_code"] == 200 ? 1 : 0;
    cancelled += (*op)["status_code"] == 401 ? 1 : 0;
  }
  EXPECT_EQ(succeeded + cancelled, 12);
  EXPECT_GE(succeeded, 8);
  EXPECT_EQ(started, succeeded);
  // After shutdown, a new task never runs.
  const auto late = ops.add_task("t", {}, []() -> lxd::Result<nlohmann::json> { return nlohmann::json::object(); });
  EXPECT_EQ(late["status_code"], 401);
}

// What the journal is told: a task is written down before its work can run and cleared once it
// ended, whether it succeeded, failed or never ran (cancelled at shutdown).
TEST(Operations, TheJournalHoldsATaskExactlyWhileItRuns) {
  std::mutex mu;
  std::set<std::string> journal;
  std::vector<std::string> ended;
  Operations ops;
  ops.set_journal({[&](const nlohmann::json& op) {
                     const std::lock_guard lock(mu);
                     journal.insert(op["id"].get<std::string>());
                   },
                   [&](const std::string& id) {
                     const std::lock_guard lock(mu);
                     journal.erase(id);
                     ended.push_back(id);
                   }});
  std::promise<void> release;
  auto released = release.get_future().share();
  bool journalled_when_it_ran = false;
  const std::string id = ops.add_task("t", {}, [&, released]() -> lxd::Result<nlohmann::json> {
    {
      const std::lock_guard lock(mu);
      journalled_when_it_ran = journal.size() == 1;
    }
    released.wait();
    return lxd::make_error(lxd::ErrorKind::io, "no");
  })["id"];
  {
    const std::lock_guard lock(mu);
    EXPECT_EQ(journal.count(id), 1U);
  }
  release.set_value();
  std::promise<void> done;
  ASSERT_TRUE(ops.when_finished(id, [&](const nlohmann::json&) { done.set_value(); }));
  done.get_future().wait();
  EXPECT_TRUE(ops.shutdown(std::chrono::steady_clock::now() + std::chrono::seconds{10}));
  {
    const std::lock_guard lock(mu);
    EXPECT_TRUE(journalled_when_it_ran);
    EXPECT_TRUE(journal.empty());
    EXPECT_EQ(ended, std::vector<std::string>{id});
  }

  // One added after shutdown began never runs, and leaves nothing in the journal either.
  const auto late = ops.add_task("t", {}, []() -> lxd::Result<nlohmann::json> { return nlohmann::json::object(); });
  EXPECT_EQ(late["status_code"], 401);
  const std::lock_guard lock(mu);
  EXPECT_TRUE(journal.empty());
  EXPECT_EQ(ended.size(), 2U);
}

// A task an earlier berthd left unfinished is a Failure with the reason, kept past keep_finished.
TEST(Operations, AnInterruptedTaskIsAFailureKeptLongerThanAFinishedOne) {
  auto now = Operations::Clock::now();
  std::vector<std::string> events;
  Operations ops(
      "none", std::chrono::seconds{10}, [&] { return now; },
      [&](const nlohmann::json& op) { events.push_back(op["status"].get<std::string>()); });
  const nlohmann::json journalled{{"id", "1d6a0c0e-0000-4000-8000-000000000001"},
                                  {"class", "task"},
                                  {"description", "Creating instance"},
                                  {"created_at", "2026-12-03T10:00:00Z"},
                                  {"status", "Running"},
                                  {"status_code", 103},
                                  {"resources", {{"instances", {"/1.0/instances/c1"}}}},
                                  {"metadata", nullptr},
                                  {"may_cancel", false},
                                  {"err", ""},
                                  {"location", "elsewhere"}};
  ops.add_interrupted(journalled, "berthd stopped", std::chrono::seconds{3600});
  ops.add_interrupted(nlohmann::json::array(), "not an operation", std::chrono::seconds{3600});
  ops.add_interrupted({{"id", 7}}, "an id that is no string", std::chrono::seconds{3600});
  const auto op = ops.get(journalled["id"]);
  ASSERT_TRUE(op);
  EXPECT_EQ((*op)["status"], "Failure");
  EXPECT_EQ((*op)["status_code"], 400);
  EXPECT_EQ((*op)["err"], "berthd stopped");
  EXPECT_EQ((*op)["description"], "Creating instance");
  EXPECT_EQ((*op)["created_at"], "2026-12-03T10:00:00Z");
  EXPECT_EQ((*op)["resources"], journalled["resources"]);
  EXPECT_EQ((*op)["location"], "none");
  EXPECT_EQ(ops.list().size(), 1U);
  EXPECT_EQ(events, std::vector<std::string>{"Failure"});
  now += std::chrono::minutes{30};
  EXPECT_TRUE(ops.get(journalled["id"]));
  now += std::chrono::minutes{31};
  EXPECT_FALSE(ops.get(journalled["id"]));
}

}  // namespace
}  // namespace berth::daemon
