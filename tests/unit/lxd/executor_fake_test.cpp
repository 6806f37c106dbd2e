// LxdExecutor against a scripted fake daemon on a unix socket: the request bodies it sends, the
// journal it keeps and the errors it reports. Real LXD: tests/integration/executor_smoke_test.sh.

#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fake_server.hpp"
#include "providers/lxd/certificate.hpp"
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
  std::string failing_op;       // this operation ends in Failure
  bool ops_never_end = false;   // every wait times out (for cancel)
  bool images_present = false;  // GET /1.0/images/<fp> finds the image
  bool c1_owned = false;        // c1 carries the fleet mark of f1

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
                                       {"config", c1_owned ? nlohmann::json{{"user.a", "1"}, {"user.berth.fleet", "f1"}}
                                                           : nlohmann::json{{"user.a", "1"}}},
                                       {"devices", nlohmann::json::object()},
                                       {"profiles", {"default"}},
                                       {"ephemeral", false}})};
      return res;
    }
    if (r.method == "GET" && r.target == "/1.0") {
      return {200,
              sync_body({{"auth", "trusted"},
                         {"api_extensions", nlohmann::json::array()},
                         {"environment", {{"kernel_architecture", "x86_64"}, {"addresses", {"127.0.0.1:8443"}}}}})};
    }
    if (r.method == "GET" && r.target.starts_with("/1.0/images/") && !r.target.starts_with("/1.0/images/aliases")) {
      if (images_present) return {200, sync_body({{"fingerprint", r.target.substr(12)}})};
      return error_response(404, "not found");
    }
    if (r.method == "POST" && r.target == "/1.0/images") return async_op("fetch");
    if (r.method == "DELETE" && r.target.starts_with("/1.0/images/")) return async_op("unfetch");
    if (r.method == "DELETE" && r.target == "/1.0/instances/c1") return async_op("delete");
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

// A simplestreams server for the server-image tests: alias bb/test names fp('4') on x86_64.
struct StreamsServer {
  PemPair pem = *generate_client_certificate({"images@test", 30});
  testing::FakeServer server{[](const FakeRequest& r) -> FakeResponse {
                               if (r.target == "/streams/v1/index.json") {
                                 return {200, R"({"index": {"i": {"datatype": "image-downloads",
                                   "path": "streams/v1/images.json", "products": ["p"]}}})"};
                               }
                               if (r.target == "/streams/v1/images.json") {
                                 return {200, R"({"products": {"p": {"arch": "amd64", "aliases": "bb/test",
                                   "versions": {"20260101": {"items": {"m": {"ftype": "lxd_combined.tar.gz",
                                   "path": "x", "sha256": ")" +
                                                  std::string(64, '4') + R"("}}}}}}})"};
                               }
                               return {404, "no"};
                             },
                             pem.certificate, pem.private_key};
  model::ImageRef image(std::optional<std::string> pin = std::nullopt) const {
    return {{},
            "bb/test",
            model::ImageServer{server.url(), model::ImageProtocol::simplestreams, pem.certificate},
            std::move(pin)};
  }
};

TEST_F(ExecutorFake, LaunchFromAnImageServerSendsTheServerAndTheFingerprint) {
  StreamsServer images;
  auto a = launch_action("bb");
  a.image = images.image();
  a.ephemeral = true;
  a.description = "from a server";
  const auto res = run(a);
  ASSERT_TRUE(res.ok) << res.error;
  const auto posts = lxd_.of("POST", "/1.0/instances");
  ASSERT_EQ(posts.size(), 1U);
  const auto created = nlohmann::json::parse(posts[0].body);
  EXPECT_EQ(created["ephemeral"], true) << "the declared spec, as for any launch";
  EXPECT_EQ(created["description"], "from a server");
  const auto source = created["source"];
  EXPECT_EQ(source, (nlohmann::json{{"type", "image"},
                                    {"mode", "pull"},
                                    {"server", images.server.url()},
                                    {"protocol", "simplestreams"},
                                    {"fingerprint", std::string(64, '4')},
                                    {"certificate", images.pem.certificate}}));
  ASSERT_EQ(journal_.entries.size(), 1U);
  EXPECT_EQ(journal_.entries[0].detail["image"]["fingerprint"], std::string(64, '4'));

  // A pin that the server does not list: nothing is created.
  a.image = images.image(std::string(64, '9'));
  const auto pinned = run(a);
  EXPECT_FALSE(pinned.ok);
  EXPECT_NE(pinned.error.find("it lists no such container image"), std::string::npos) << pinned.error;
  EXPECT_EQ(lxd_.of("POST", "/1.0/instances").size(), 1U);
}

TEST_F(ExecutorFake, RecreateFromAnImageServerHasTheHostFetchTheImageBeforeDeleting) {
  StreamsServer images;
  lxd_.c1_owned = true;
  plan::Action a;
  a.id = "recreate h1:c1";
  a.kind = plan::ActionKind::recreate;
  a.address = {"h1", "c1", std::nullopt};
  a.image = images.image();
  // The host cannot fetch it (its view of the server is older): nothing is deleted.
  lxd_.failing_op = "fetch";
  auto res = run(a);
  EXPECT_FALSE(res.ok);
  EXPECT_NE(res.error.find("c1 was not deleted"), std::string::npos) << res.error;
  EXPECT_TRUE(lxd_.of("DELETE", "/1.0/instances/c1").empty());
  // It can: fetch, delete, create, and the image fetched only for this is removed again.
  lxd_.failing_op.clear();
  journal_.entries.clear();
  res = run(a);
  ASSERT_TRUE(res.ok) << res.error;
  std::vector<std::string> steps;
  for (const auto& e : journal_.entries) steps.push_back(e.step);
  EXPECT_EQ(steps, (std::vector<std::string>{"image-fetch", "recreate-delete", "create", "image-fetch-remove"}));
  // An image the host already has is neither fetched nor removed.
  lxd_.images_present = true;
  journal_.entries.clear();
  ASSERT_TRUE(run(a).ok);
  steps.clear();
  for (const auto& e : journal_.entries) steps.push_back(e.step);
  EXPECT_EQ(steps, (std::vector<std::string>{"recreate-delete", "create"}));
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
