// The state file against a real SQLite file in a temporary directory.

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "engine/state/store.hpp"

namespace berth::state {
namespace {

namespace fs = std::filesystem;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("berth-store-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(StoreTest, CreatesItsDirectoryAndSurvivesReopening) {
  const auto path = dir_ / "nested" / "state.db";
  {
    auto store = Store::open(path);
    const auto run = store->begin_run("apply", "fleet.yaml", "{}");
    store->record_action(run, "launch a:c1", "succeeded", "", 1.5);
    store->finish_run(run, "succeeded");
  }
  auto store = Store::open(path);
  const auto runs = store->runs(10);
  ASSERT_EQ(runs.size(), 1U);
  EXPECT_EQ(runs[0].outcome, "succeeded");
  EXPECT_EQ(runs[0].fleet_path, "fleet.yaml");
  EXPECT_FALSE(runs[0].finished_at.empty());
}

// Plans and the journal are only for the owner's eyes, whatever the umask says.
TEST_F(StoreTest, FileAndDirectoryAreOwnerOnly) {
  const auto old_umask = ::umask(022);
  const auto path = dir_ / "fresh" / "state.db";
  {
    auto store = Store::open(path);
    store->begin_run("apply", "fleet.yaml", "{}");
    auto mode = [](const fs::path& p) { return fs::status(p).permissions() & fs::perms::all; };
    EXPECT_EQ(mode(path.parent_path()), fs::perms::owner_all);
    EXPECT_EQ(mode(path), fs::perms::owner_read | fs::perms::owner_write);
    for (const char* suffix : {"-wal", "-shm"}) {
      const fs::path side = path.string() + suffix;
      if (fs::exists(side)) EXPECT_EQ(mode(side), fs::perms::owner_read | fs::perms::owner_write) << side;
    }
  }
  ::umask(old_umask);
}

// A state file written by berth 0.1 (schema 1) may hold plans with secrets in clear: opening it
// with this berth drops them and vacuums the file, so not even a free page keeps them.
TEST_F(StoreTest, MigrationScrubsPlansOfOlderVersions) {
  const auto path = dir_ / "old" / "state.db";
  const std::string secret = "old-secret-in-a-plan-0123456789";
  {
    auto store = Store::open(path);
    store->begin_run("apply", "fleet.yaml", R"({"actions":[{"spec":{"config":{"k":")" + secret + R"("}}}]})");
  }
  {
    // Make it a schema-1 file again, with the plan in clear.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const std::string sql =
        "PRAGMA user_version = 1; ALTER TABLE runs DROP COLUMN report_json; UPDATE runs SET "
        "plan_json = '" +
        secret + "';";
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto read_all = [&] {
    std::string bytes;
    for (const char* suffix : {"", "-wal"}) {
      std::ifstream in(path.string() + suffix, std::ios::binary);
      bytes += std::string(std::istreambuf_iterator<char>(in), {});
    }
    return bytes;
  };
  ASSERT_NE(read_all().find(secret), std::string::npos) << "the test must start with the secret on disk";
  {
    auto store = Store::open(path);
    EXPECT_EQ(store->runs(10).size(), 1U) << "the history stays, without its plan";
  }
  EXPECT_EQ(read_all().find(secret), std::string::npos);
}

TEST_F(StoreTest, RunsKeepTheirReportAndActionsAndOldOnesArePruned) {
  auto store = Store::open(dir_ / "state.db");
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 5; ++i) {
    const auto id = store->begin_run("watch", "fleet.yaml", "{}");
    store->record_action(id, "start a:web", "failed", "boom", 0.5);
    store->finish_run(id, "failed");
    store->set_run_report(id, R"({"drift":[{"action":"start a:web"}]})");
    ids.push_back(id);
  }
  // The oldest run left an open intent: it is kept however old.
  store->journal_intent(ids[0], "start a:web", "start", "{}");
  const auto done = store->journal_intent(ids[1], "start a:web", "start", "{}");
  store->journal_result(done, true, "{}");
  EXPECT_EQ(store->prune_runs(2), 2);  // ids[1] and ids[2]
  const auto runs = store->runs(10);
  ASSERT_EQ(runs.size(), 3U);
  EXPECT_EQ(runs[0].id, ids[4]);
  EXPECT_EQ(runs[0].report, R"({"drift":[{"action":"start a:web"}]})");
  EXPECT_EQ(runs[2].id, ids[0]);
  const auto actions = store->run_actions(ids[4]);
  ASSERT_EQ(actions.size(), 1U);
  EXPECT_EQ(actions[0].status, "failed");
  EXPECT_EQ(actions[0].error, "boom");
  EXPECT_DOUBLE_EQ(actions[0].seconds, 0.5);
  EXPECT_TRUE(store->run_actions(ids[1]).empty());
  EXPECT_EQ(store->open_intents().size(), 1U);
  EXPECT_EQ(store->prune_runs(2), 0);
}

TEST_F(StoreTest, SecondLockerSeesTheHolderUntilReleased) {
  auto first = Store::open(dir_ / "state.db");
  auto second = Store::open(dir_ / "state.db");
  const auto a = first->acquire_lock("apply -f x.yaml", std::chrono::milliseconds(0));
  ASSERT_TRUE(a.lock_id.has_value());
  const auto b = second->acquire_lock("apply", std::chrono::milliseconds(300));
  EXPECT_FALSE(b.lock_id.has_value());
  ASSERT_TRUE(b.holder.has_value());
  EXPECT_EQ(b.holder->pid, ::getpid());
  EXPECT_EQ(b.holder->command, "apply -f x.yaml");
  first->release_lock(*a.lock_id);
  EXPECT_TRUE(second->acquire_lock("apply", std::chrono::milliseconds(0)).lock_id.has_value());
}

TEST_F(StoreTest, ForceUnlockNeedsTheRightId) {
  auto store = Store::open(dir_ / "state.db");
  const auto a = store->acquire_lock("apply", std::chrono::milliseconds(0));
  ASSERT_TRUE(a.lock_id.has_value());
  EXPECT_FALSE(store->force_unlock("not-the-id"));
  EXPECT_TRUE(store->lock_holder().has_value());
  EXPECT_TRUE(store->force_unlock(*a.lock_id));
  EXPECT_FALSE(store->lock_holder().has_value());
}

TEST_F(StoreTest, LockOfADeadProcessIsTakenOver) {
  const auto path = dir_ / "state.db";
  Store::open(path);  // create before forking
  const pid_t child = ::fork();
  if (child == 0) {
    auto store = Store::open(path);
    const auto got = store->acquire_lock("apply", std::chrono::milliseconds(0));
    ::_exit(got.lock_id ? 0 : 1);  // dies holding the lock, as a SIGKILLed apply would
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_EQ(WEXITSTATUS(status), 0);
  auto store = Store::open(path);
  const auto holder = store->lock_holder();
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->pid, child);
  const auto got = store->acquire_lock("apply", std::chrono::milliseconds(0));
  EXPECT_TRUE(got.lock_id.has_value());
  EXPECT_TRUE(got.took_over_stale);
}

TEST_F(StoreTest, IntentsWithoutResultsAreOpenUntilResolved) {
  auto store = Store::open(dir_ / "state.db");
  const auto run = store->begin_run("apply", "f.yaml", "{}");
  const auto done = store->journal_intent(run, "launch a:c1", "create", R"({"remote":"a"})");
  store->journal_result(done, true, "{}");
  const auto open = store->journal_intent(run, "move a:c2", "migrate", R"({"from":"b"})");
  const auto intents = store->open_intents();
  ASSERT_EQ(intents.size(), 1U);
  EXPECT_EQ(intents[0].seq, open);
  EXPECT_EQ(intents[0].step, "migrate");
  EXPECT_EQ(intents[0].detail, R"({"from":"b"})");
  store->resolve_intents({open}, "target verified, source deleted");
  EXPECT_TRUE(store->open_intents().empty());
}

}  // namespace
}  // namespace berth::state
