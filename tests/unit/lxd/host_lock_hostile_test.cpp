// The host lock against a daemon that answers one request wrongly: an error, garbage, the wrong
// shapes, a dropped connection, or a request carried out whose answer is lost. Whatever it answers,
// the locker must not throw, must say what happened, and must never take, move or remove a lock that
// another run holds.

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fake_server.hpp"
#include "providers/lxd/host_lock.hpp"
#include "temp_dir.hpp"

namespace berth::lxd {
namespace {

using testing::error_response;
using testing::FakeRequest;
using testing::FakeResponse;
using testing::sync_body;
using Json = nlohmann::json;

constexpr std::int64_t now_s = 1'800'000'000;
const std::string fleet = "shop";
const std::string ours_id = "0123456789abcdef0123456789abcdef";
const std::string theirs_id = "fedcba9876543210fedcba9876543210";

// The profiles API of a daemon, enough for the lock: create, read, list, rename, replace, delete.
class ProfileDaemon {
 public:
  std::map<std::string, Json> profiles;

  FakeResponse handle(const FakeRequest& r) {
    const auto query = r.target.find('?');
    const std::string path = r.target.substr(0, query);
    const std::string prefix = "/1.0/profiles/";
    const Json body = Json::parse(r.body, nullptr, false);
    if (r.method == "GET" && path == "/1.0") {
      return {200, sync_body({{"auth", "trusted"}, {"api_extensions", Json::array()}})};
    }
    if (path == "/1.0/profiles" && r.method == "GET") {
      Json list = Json::array();
      for (const auto& [name, p] : profiles) list.push_back(p);
      return {200, sync_body(list)};
    }
    if (path == "/1.0/profiles" && r.method == "POST") {
      const auto name = body.value("name", std::string{});
      if (profiles.contains(name)) return error_response(409, "Error inserting " + name + " into database");
      Json p = body;
      p["used_by"] = Json::array();
      profiles[name] = p;
      return {200, sync_body(nullptr)};
    }
    if (!path.starts_with(prefix)) return error_response(404, "not found");
    const std::string name = path.substr(prefix.size());
    const auto it = profiles.find(name);
    if (it == profiles.end()) return error_response(404, "Profile not found");
    if (r.method == "GET") return {200, sync_body(it->second)};
    if (r.method == "DELETE") {
      profiles.erase(it);
      return {200, sync_body(nullptr)};
    }
    if (r.method == "PUT") {
      it->second["config"] = body.value("config", Json::object());
      return {200, sync_body(nullptr)};
    }
    if (r.method == "POST") {
      const auto to = body.value("name", std::string{});
      if (profiles.contains(to)) return error_response(409, "Name already in use");
      Json p = it->second;
      p["name"] = to;
      profiles.erase(it);
      profiles[to] = p;
      return {200, sync_body(nullptr)};
    }
    return error_response(405, "method not allowed");
  }
};

Json lock(const std::string& name, const std::string& id, std::int64_t expires) {
  return {{"name", name},
          {"description", "a lock"},
          {"config",
           {{"user.berth.lock.fleet", fleet},
            {"user.berth.lock.id", id},
            {"user.berth.lock.holder", "berth apply, ci@runner-7, pid 4242"},
            {"user.berth.lock.since", "2027-01-15T08:00:00Z"},
            {"user.berth.lock.expires", std::to_string(expires)},
            {"user.berth.lock.machine", "runner-7 boot-1"},
            {"user.berth.lock.process", "4242:99"}}},
          {"devices", Json::object()},
          {"used_by", Json::array()}};
}

// One wrong answer. `carried_out`: the daemon did what was asked, and only the answer is wrong.
struct Sabotage {
  std::string name;
  bool carried_out;
  std::function<FakeResponse()> answer;
};

std::vector<Sabotage> sabotages() {
  return {
      {"an internal error", false, [] { return error_response(500, "database is locked"); }},
      {"a not found", false, [] { return error_response(404, "not found"); }},
      {"a conflict", false, [] { return error_response(409, "conflict"); }},
      {"garbage", false,
       [] {
         return FakeResponse{200, "<html>proxy</html>"};
       }},
      {"null metadata", false,
       [] {
         return FakeResponse{200, sync_body(nullptr)};
       }},
      {"a string for metadata", false,
       [] {
         return FakeResponse{200, sync_body("yes")};
       }},
      {"config as a list", false,
       [] {
         return FakeResponse{200, sync_body({{"name", "x"}, {"config", Json::array({1, 2})}})};
       }},
      {"keys of the wrong types", false,
       [] {
         return FakeResponse{200, sync_body({{"name", "berth-lock-shop"},
                                             {"config",
                                              {{"user.berth.lock.fleet", 7},
                                               {"user.berth.lock.id", nullptr},
                                               {"user.berth.lock.expires", "soon"}}}})};
       }},
      {"a list of strings", false,
       [] {
         return FakeResponse{200, sync_body(Json::array({"a", 1, nullptr}))};
       }},
      {"a dropped connection", false,
       [] {
         return FakeResponse{200, "", true};
       }},
      {"a lost answer", true,
       [] {
         return FakeResponse{200, "", true};
       }},
      {"a lost answer, then garbage", true,
       [] {
         return FakeResponse{500, "{\"type\":"};
       }},
  };
}

// A locker on one fake host whose request number `sabotaged` (0-based) gets `sabotage`'s answer.
class HostLockHostile : public ::testing::Test {
 protected:
  FakeResponse answer(const FakeRequest& r) {
    std::lock_guard lock(mu_);
    const int n = requests_++;
    if (sabotage_ && n == sabotaged_) {
      if (sabotage_->carried_out) (void)daemon_.handle(r);
      return sabotage_->answer();
    }
    return daemon_.handle(r);
  }

  // Runs `call` with request `n` sabotaged; returns how many requests it made.
  int run(const Sabotage* sabotage, int n, const std::function<void(providers::HostLocker&)>& call) {
    {
      std::lock_guard lock(mu_);
      sabotage_ = sabotage;
      sabotaged_ = n;
      requests_ = 0;
    }
    HostLockerOptions options;
    options.timeouts.connect = std::chrono::milliseconds{2000};
    options.timeouts.read = std::chrono::milliseconds{2000};
    options.machine = "this-machine boot-2";
    options.process = "77:1";
    options.gone = [](const std::string&) { return false; };
    options.now = [] { return now_s; };
    auto locker = make_host_locker(ClientConfig{tmp_.path() / "config"}, options);
    call(*locker);
    std::lock_guard lock(mu_);
    return requests_;
  }

  // Every single sabotage of every request `call` makes, each from the state `setup` makes;
  // `check` runs after each.
  void each_sabotage(const std::function<void()>& setup, const std::function<void(providers::HostLocker&)>& call,
                     const std::function<void(const std::string& what)>& check) {
    setup();
    const int baseline = run(nullptr, -1, call);
    ASSERT_GT(baseline, 0);
    for (const auto& s : sabotages()) {
      for (int n = 0; n < baseline; ++n) {
        setup();
        (void)run(&s, n, call);
        check(s.name + " for request " + std::to_string(n));
      }
    }
  }

  [[nodiscard]] std::optional<Json> profile(const std::string& name) {
    std::lock_guard lock(mu_);
    const auto it = daemon_.profiles.find(name);
    if (it == daemon_.profiles.end()) return std::nullopt;
    return it->second;
  }

  void set_profiles(std::map<std::string, Json> profiles) {
    std::lock_guard lock(mu_);
    daemon_.profiles = std::move(profiles);
  }

  [[nodiscard]] static providers::HostLockClaim claim() {
    return {fleet, ours_id, "berth watch, root@vm, pid 77", std::chrono::seconds{120}};
  }

  testing::TempDir tmp_;
  std::mutex mu_;
  ProfileDaemon daemon_;
  const Sabotage* sabotage_ = nullptr;
  int sabotaged_ = -1;
  int requests_ = 0;
  testing::FakeServer server_{[this](const FakeRequest& r) { return answer(r); }, (tmp_.path() / "h1.socket").string()};
  model::RemoteSpec remote_{"h1", server_.url(), std::nullopt, 4, {}};
};

// Acquire, renew and release, each with every sabotage, while another run holds the lock.
TEST_F(HostLockHostile, ALiveLockOfAnotherRunIsNeverTakenMovedOrRemoved) {
  const std::string name = lock_profile(fleet);
  const Json theirs = lock(name, theirs_id, now_s + 60);
  using Call = std::function<providers::HostLockResponse(providers::HostLocker&)>;
  const std::vector<std::pair<std::string, Call>> calls = {
      {"acquire", [&](providers::HostLocker& l) { return l.acquire(remote_, claim()); }},
      {"renew", [&](providers::HostLocker& l) { return l.renew(remote_, claim()); }},
      {"release",
       [&](providers::HostLocker& l) {
         (void)l.release(remote_, claim());
         return providers::HostLockResponse{};
       }},
  };
  for (const auto& entry : calls) {
    const std::string& call_name = entry.first;
    const Call& call = entry.second;
    providers::HostLockResponse response;
    each_sabotage(
        [&] {
          set_profiles({{name, theirs}});
        },
        [&](providers::HostLocker& locker) { response = call(locker); },
        [&](const std::string& what) {
          EXPECT_NE(response.answer, providers::LockAnswer::acquired) << call_name << ": " << what;
          if (call_name != "release" && response.answer == providers::LockAnswer::failed) {
            EXPECT_NE(response.error, "") << call_name << ": " << what;
          }
          const auto now = profile(name);
          ASSERT_TRUE(now.has_value()) << call_name << ": " << what << ": their lock is gone";
          EXPECT_EQ((*now)["config"], theirs["config"]) << call_name << ": " << what;
        });
  }
}

TEST_F(HostLockHostile, ATakeoverEndsWithOneLockAndSaysWhoseItIs) {
  const std::string name = lock_profile(fleet);
  providers::HostLockResponse response;
  each_sabotage(
      [&] {
        set_profiles({{name, lock(name, theirs_id, now_s - 5)}});
      },
      [&](providers::HostLocker& locker) { response = locker.acquire(remote_, claim()); },
      [&](const std::string& what) {
        const auto now = profile(name);
        if (response.answer == providers::LockAnswer::acquired) {
          ASSERT_TRUE(now.has_value()) << what << ": acquired, but there is no lock";
          EXPECT_EQ((*now)["config"]["user.berth.lock.id"], ours_id) << what;
        } else {
          EXPECT_NE(response.error + (response.holder ? response.holder->holder : ""), "") << what;
        }
        // The expired lock is kept (under its own name, or moved aside), never lost unseen.
        const bool kept = (now && (*now)["config"]["user.berth.lock.id"] == theirs_id) ||
                          profile(moved_lock_profile(fleet, theirs_id)).has_value();
        EXPECT_TRUE(kept) << what;
      });
}

TEST_F(HostLockHostile, ListAndRemoveSayWhatWentWrong) {
  const std::string name = lock_profile(fleet);
  std::vector<providers::HostLockInfo> found;
  std::string error;
  each_sabotage(
      [&] {
        set_profiles({{name, lock(name, theirs_id, now_s + 60)}});
      },
      [&](providers::HostLocker& locker) {
        error.clear();
        found = locker.list(remote_, fleet, error);
      },
      [&](const std::string& what) {
        // Either the lock is listed, or the listing failed and says so; never an empty "no locks".
        if (found.empty()) EXPECT_NE(error, "") << what;
        for (const auto& l : found) EXPECT_EQ(l.remote, "h1") << what;
      });
  providers::HostLockInfo info;
  info.remote = "h1";
  info.object = name;
  each_sabotage(
      [&] {
        set_profiles({{name, lock(name, theirs_id, now_s + 60)}});
      },
      [&](providers::HostLocker& locker) { error = locker.remove(remote_, info); },
      [&](const std::string& what) {
        // Removed, or an error that says it was not; a 404 is taken at its word (already gone).
        if (profile(name).has_value() && !what.starts_with("a not found")) EXPECT_NE(error, "") << what;
      });
}

}  // namespace
}  // namespace berth::lxd
