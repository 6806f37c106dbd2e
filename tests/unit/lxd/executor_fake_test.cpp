// LxdExecutor against a scripted fake daemon on a unix socket: the request bodies it sends, the
// journal it keeps and the errors it reports. Real LXD: tests/integration/executor_smoke_test.sh.

#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fake_server.hpp"
#include "providers/lxd/executor.hpp"
#include "temp_dir.hpp"

namespace berth::lxd {
namespace {

using testing::error_response;
using testing::FakeRequest;
using testing::FakeResponse;
using testing::sync_body;

FakeResponse async_op(const std::string& id) {
  return {202, nlohmann::json{{"type", "async"},
                              {"status", "Operation created"},
                              {"status_code", 100},
                              {"operation", "/1.0/operations/" + id},
                              {"error_code", 0},
                              {"error", ""},
                              {"metadata", {{"id", id}, {"class", "task"}, {"status_code", 103}}}}
                   .dump()};
}

// One daemon: instance c1 (stopped unless told otherwise), image alias bb, operations that end as scripted.
class ScriptedLxd {
 public:
  int c1_status = 102;
  bool put_conflict = false;
  std::string failing_op;      // this operation ends in Failure
  bool ops_never_end = false;  // every wait times out (for cancel)

  FakeResponse handle(const FakeRequest& r) {
    std::lock_guard lock(mu_);
    requests.push_back(r);
    if (r.method == "GET" && r.target == "/1.0/images/aliases/bb") {
      return {200, sync_body({{"name", "bb"}, {"target", "fp1"}})};
    }
    if (r.method == "GET" && r.target == "/1.0/instances/c1") {
      FakeResponse res{200, sync_body({{"name", "c1"},
                                       {"status_code", c1_status},
                                       {"architecture", "x86_64"},
                                       {"config", {{"user.a", "1"}}},
                                       {"devices", nlohmann::json::object()},
                                       {"profiles", {"default"}},
                                       {"ephemeral", false}})};
      return res;
    }
    if (r.method == "POST" && r.target == "/1.0/instances") return async_op("create");
    if (r.method == "PUT" && r.target == "/1.0/instances/c1") {
      if (put_conflict) return error_response(412, "ETag doesn't match");
      return async_op("update");
    }
    if (r.method == "PUT" && r.target == "/1.0/instances/c1/state") return async_op("state");
    if (r.method == "GET" && r.target.starts_with("/1.0/operations/") && r.target.find("/wait") != std::string::npos) {
      const std::string id = r.target.substr(16, r.target.find("/wait") - 16);
      if (ops_never_end) return {200, sync_body({{"id", id}, {"status", "Running"}, {"status_code", 103}})};
      if (id == failing_op) {
        return {200, sync_body({{"id", id}, {"status", "Failure"}, {"status_code", 400}, {"err", "disk full"}})};
      }
      return {200, sync_body({{"id", id}, {"status", "Success"}, {"status_code", 200}})};
    }
    return error_response(404, "not found");
  }

  std::vector<FakeRequest> requests;

  std::vector<FakeRequest> of(const std::string& method, const std::string& target) {
    std::lock_guard lock(mu_);
    std::vector<FakeRequest> out;
    for (const auto& r : requests) {
      if (r.method == method && r.target == target) out.push_back(r);
    }
    return out;
  }

 private:
  std::mutex mu_;
};

struct RecordingJournal : providers::StepJournal {
  struct Entry {
    std::string step;
    nlohmann::json detail;
    std::optional<bool> ok;
  };
  std::vector<Entry> entries;
  std::int64_t intent(const std::string&, const std::string& step, const nlohmann::json& detail) override {
    entries.push_back({step, detail, std::nullopt});
    return static_cast<std::int64_t>(entries.size() - 1);
  }
  void result(std::int64_t seq, bool ok, const nlohmann::json&) override {
    entries.at(static_cast<std::size_t>(seq)).ok = ok;
  }
};

class ExecutorFake : public ::testing::Test {
 protected:
  ExecutorFake() {
    fleet_.name = "f1";
    fleet_.remotes["h1"] = model::RemoteSpec{"h1", server_.url(), std::nullopt, 4, {}};
    options_.poll = std::chrono::seconds{1};
  }

  providers::ExecuteResponse run(const plan::Action& action, const std::atomic<bool>* cancel = nullptr) {
    LxdExecutor executor(ClientConfig{tmp_.path()}, options_);
    providers::ExecuteRequest req;
    req.action = &action;
    req.fleet = &fleet_;
    req.journal = &journal_;
    req.cancel = cancel;
    return executor.execute(req);
  }

  testing::TempDir tmp_;
  ScriptedLxd lxd_;
  testing::FakeServer server_{[this](const FakeRequest& r) { return lxd_.handle(r); },
                              (tmp_.path() / "unix.socket").string()};
  model::Fleet fleet_;
  ExecutorOptions options_;
  RecordingJournal journal_;
};

plan::Action launch_action(const std::string& alias) {
  plan::Action a;
  a.id = "launch h1:c2";
  a.kind = plan::ActionKind::launch;
  a.address = {"h1", "c2", std::nullopt};
  a.image = model::ImageRef{"h1", alias};
  a.config = {{"user.role", "web"}};
  return a;
}

TEST_F(ExecutorFake, LaunchSendsTheImageFingerprintAndTheOwnershipMarkAndJournalsIt) {
  const auto res = run(launch_action("bb"));
  ASSERT_TRUE(res.ok) << res.error;
  const auto posts = lxd_.of("POST", "/1.0/instances");
  ASSERT_EQ(posts.size(), 1U);
  const auto body = nlohmann::json::parse(posts[0].body);
  EXPECT_EQ(body["name"], "c2");
  EXPECT_EQ(body["source"]["type"], "image");
  EXPECT_EQ(body["source"]["fingerprint"], "fp1");
  EXPECT_EQ(body["config"]["user.role"], "web");
  EXPECT_EQ(body["config"]["user.berth.fleet"], "f1");
  EXPECT_TRUE(body["profiles"].is_null());  // not declared: the server picks the image's or default
  ASSERT_EQ(journal_.entries.size(), 1U);
  EXPECT_EQ(journal_.entries[0].step, "create");
  EXPECT_EQ(journal_.entries[0].ok, true);
}

TEST_F(ExecutorFake, LaunchOfAMissingAliasSaysWhichAliasOnWhichRemote) {
  const auto res = run(launch_action("nope"));
  EXPECT_FALSE(res.ok);
  EXPECT_EQ(res.error, "image alias 'nope' not found on remote 'h1'");
  EXPECT_TRUE(journal_.entries.empty());  // nothing was changed
}

TEST_F(ExecutorFake, AFailedOperationNamesTheRemoteAndTheDaemonsError) {
  lxd_.failing_op = "create";
  const auto res = run(launch_action("bb"));
  EXPECT_FALSE(res.ok);
  EXPECT_EQ(res.error.rfind("remote h1: ", 0), 0U) << res.error;
  EXPECT_NE(res.error.find("disk full"), std::string::npos) << res.error;
  ASSERT_EQ(journal_.entries.size(), 1U);
  EXPECT_EQ(journal_.entries[0].ok, false);
}

TEST_F(ExecutorFake, UpdateKeepsUndeclaredKeysAndReportsAStaleETag) {
  plan::Action a;
  a.id = "update h1:c1";
  a.kind = plan::ActionKind::update;
  a.address = {"h1", "c1", std::nullopt};
  a.config = {{"user.b", "2"}};
  a.changes = {{"config.user.b", nullptr, "2"}};
  ASSERT_TRUE(run(a).ok);
  const auto puts = lxd_.of("PUT", "/1.0/instances/c1");
  ASSERT_EQ(puts.size(), 1U);
  const auto body = nlohmann::json::parse(puts[0].body);
  EXPECT_EQ(body["config"]["user.a"], "1");
  EXPECT_EQ(body["config"]["user.b"], "2");
  EXPECT_EQ(body["profiles"], nlohmann::json::array({"default"}));

  lxd_.put_conflict = true;
  const auto stale = run(a);
  EXPECT_FALSE(stale.ok);
  EXPECT_EQ(stale.error, "remote h1: c1 changed since it was read; plan again");
}

TEST_F(ExecutorFake, PowerActionsAreIdempotent) {
  plan::Action a;
  a.id = "stop h1:c1";
  a.kind = plan::ActionKind::stop;
  a.address = {"h1", "c1", std::nullopt};
  ASSERT_TRUE(run(a).ok);  // already stopped
  EXPECT_TRUE(lxd_.of("PUT", "/1.0/instances/c1/state").empty());

  a.kind = plan::ActionKind::start;
  ASSERT_TRUE(run(a).ok);
  const auto puts = lxd_.of("PUT", "/1.0/instances/c1/state");
  ASSERT_EQ(puts.size(), 1U);
  EXPECT_EQ(nlohmann::json::parse(puts[0].body)["action"], "start");
}

TEST_F(ExecutorFake, CancelStopsWaitingBetweenPolls) {
  lxd_.ops_never_end = true;
  std::atomic<bool> cancel{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  const auto res = run(launch_action("bb"), &cancel);
  stopper.join();
  EXPECT_FALSE(res.ok);
  EXPECT_NE(res.error.find("cancelled"), std::string::npos) << res.error;
}

}  // namespace
}  // namespace berth::lxd
