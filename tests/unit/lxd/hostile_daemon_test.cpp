// A hostile daemon: every request the executor and the state reader make is answered, one at a time,
// with wrong types, nulls, missing fields, broken envelopes and oversized bodies. berth must end each
// run with a clear error (or, where the damage does not matter, succeed): never throw, never abort.
//
// The baseline is a small stateful fake LXD (two of them, for transfers) on which every action
// succeeds end to end; each run then sabotages exactly one of the responses the baseline saw.

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fake_server.hpp"
#include "providers/lxd/executor.hpp"
#include "providers/lxd/state_reader.hpp"
#include "temp_dir.hpp"

namespace berth::lxd {
namespace {

using testing::error_response;
using testing::FakeRequest;
using testing::FakeResponse;
using testing::sync_body;
using Json = nlohmann::json;

constexpr int running = 103;
constexpr int stopped = 102;
constexpr int frozen = 110;

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t start = 1;
  while (start <= path.size()) {
    const auto slash = path.find('/', start);
    const auto end = slash == std::string_view::npos ? path.size() : slash;
    out.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// A fake LXD with state: instances (config, devices, profiles, power), their snapshots, one image
// alias, and operations that succeed at once. Enough for every executor action to succeed.
class HostDaemon {
 public:
  // `populated`: with c1 (stopped, snapshots s0 and s1) and c9 (running); else empty.
  HostDaemon(std::string fleet, bool populated) : fleet_(std::move(fleet)) {
    if (!populated) return;
    add("c1", stopped, {"s0", "s1"});
    add("c9", running, {});
  }

  HostDaemon* peer = nullptr;  // where a migration target pulls from

  [[nodiscard]] const Json& instance(const std::string& name) const { return instances_.at(name); }

  FakeResponse handle(const FakeRequest& r) {
    const std::string path = r.target.substr(0, r.target.find('?'));
    const auto seg = split_path(path);
    const Json body = Json::parse(r.body, nullptr, false);
    if (r.method == "GET" && path == "/1.0") {
      return {200,
              sync_body({{"auth", "trusted"},
                         {"api_extensions", {"migration_pre_copy"}},
                         {"environment",
                          {{"certificate", "PEM"}, {"addresses", {"127.0.0.1:8443"}}, {"server_version", "5.0.2"}}}})};
    }
    if (path == "/1.0/instances" && r.method == "GET") {
      Json list = Json::array();
      for (const auto& [name, inst] : instances_) {
        list.push_back(inst);
        // As LXD lists them: with the config their profiles expand to (a limit from "default").
        list.back()["expanded_config"] = inst.value("config", Json::object());
        list.back()["expanded_config"]["limits.memory"] = "1GiB";
      }
      return {200, sync_body(list)};
    }
    if (path == "/1.0/resources") {
      return {200, sync_body({{"cpu", {{"sockets", Json::array()}, {"total", 8}}}, {"memory", {{"total", 1 << 30}}}})};
    }
    if (path == "/1.0/instances" && r.method == "POST") return create(body);
    if (path == "/1.0/storage-pools") return {200, sync_body({"/1.0/storage-pools/default"})};
    if (path == "/1.0/storage-pools/default/volumes") {
      Json list = Json::array();
      for (const auto& [name, snaps] : snapshots_) {
        list.push_back({{"name", name}, {"type", "container"}, {"project", "default"}});
        for (const auto& s : snaps) list.push_back({{"name", name + "/" + s}, {"type", "container"}});
      }
      return {200, sync_body(list)};
    }
    if (path == "/1.0/images/aliases") return {200, sync_body({{{"name", "bb"}, {"target", "fp1"}}})};
    if (path == "/1.0/images/aliases/bb") return {200, sync_body({{"name", "bb"}, {"target", "fp1"}})};
    if (path == "/1.0/images/fp1/secret" && r.method == "POST") return operation("token", {{"secret", "img-s3cr3t"}});
    if (seg.size() >= 3 && seg[1] == "operations") {
      if (r.method == "DELETE") return {200, sync_body(nullptr)};
      Json metadata = {{"fs_progress", "c1: 1.00MB (1.00MB/s)"}};
      if (const auto done = finished_metadata_.find(seg[2]); done != finished_metadata_.end()) metadata = done->second;
      return {200, sync_body({{"id", seg[2]},
                              {"class", "task"},
                              {"status", "Success"},
                              {"status_code", 200},
                              {"metadata", metadata}})};
    }
    if (seg.size() < 3 || seg[1] != "instances") return error_response(404, "not found");
    const std::string& name = seg[2];
    const auto inst = instances_.find(name);
    if (inst == instances_.end()) return error_response(404, "Instance not found");
    if (seg.size() == 3) return instance_call(r, name, body);
    if (seg.size() == 4 && seg[3] == "state" && r.method == "PUT") {
      const std::string action = body.value("action", "");
      const int code = action == "stop" ? stopped : action == "freeze" ? frozen : running;
      set_status(name, code);
      return operation("task", Json::object());
    }
    if (seg.size() >= 4 && seg[3] == "snapshots") return snapshot_call(r, name, seg, body);
    if (seg.size() == 4 && seg[3] == "files") return file_call(r, name);
    if (seg.size() == 4 && seg[3] == "exec" && r.method == "POST") {
      // Runs at once: exit 0, output recorded in two log files.
      const std::string logs = "/1.0/instances/" + name + "/logs/exec_" + std::to_string(ops_ + 1);
      auto res = operation("task", Json::object());
      finished_metadata_["op" + std::to_string(ops_)] = {
          {"return", 0}, {"output", {{"1", logs + ".stdout"}, {"2", logs + ".stderr"}}}};
      return res;
    }
    if (seg.size() == 5 && seg[3] == "logs") {
      if (r.method == "DELETE") return {200, sync_body(nullptr)};
      return {200, "output of " + seg[4] + "\n"};
    }
    return error_response(404, "not found");
  }

  // The file API: a file is written where its directory exists (/etc and what was made).
  FakeResponse file_call(const FakeRequest& r, const std::string& name) {
    const auto q = r.target.find("?path=");
    const std::string file = q == std::string::npos ? "" : r.target.substr(q + 6);
    const std::string dir = file.substr(0, file.rfind('/'));
    auto& made = dirs_[name];
    if (r.method == "GET") {
      return made.count(file) != 0 || file == "/etc" ? FakeResponse{200, sync_body(Json::array())}
                                                     : error_response(404, "not found");
    }
    if (r.method != "POST") return error_response(400, "bad request");
    if (dir != "/etc" && !dir.empty() && made.count(dir) == 0) return error_response(404, "No such file or directory");
    made.insert(file);
    return {200, sync_body(Json::object())};
  }

 private:
  void add(const std::string& name, int status, std::vector<std::string> snaps) {
    instances_[name] = {{"name", name},
                        {"type", "container"},
                        {"architecture", "x86_64"},
                        {"config", {{"user.berth.fleet", fleet_}, {"user.a", "1"}}},
                        {"devices", Json::object()},
                        {"profiles", {"default"}},
                        {"ephemeral", false},
                        {"description", ""},
                        {"created_at", "2026-01-01T00:00:00Z"}};
    set_status(name, status);
    snapshots_[name] = std::move(snaps);
  }

  void set_status(const std::string& name, int code) {
    instances_[name]["status_code"] = code;
    instances_[name]["status"] = code == stopped ? "Stopped" : code == frozen ? "Frozen" : "Running";
  }

  FakeResponse operation(const std::string& op_class, const Json& metadata) {
    const std::string id = "op" + std::to_string(++ops_);
    return {202, Json{{"type", "async"},
                      {"status", "Operation created"},
                      {"status_code", 100},
                      {"operation", "/1.0/operations/" + id},
                      {"error_code", 0},
                      {"error", ""},
                      {"metadata",
                       {{"id", id},
                        {"class", op_class},
                        {"status", "Running"},
                        {"status_code", 103},
                        {"resources", {{"instances", {"/1.0/instances/c1"}}}},
                        {"metadata", metadata}}}}
                     .dump()};
  }

  FakeResponse create(const Json& body) {
    const std::string name = body.value("name", "");
    const Json source = body.value("source", Json::object());
    const std::string type = source.value("type", "");
    std::vector<std::string> snaps;
    if (type == "migration" && peer != nullptr && !source.value("instance_only", true)) {
      snaps = peer->snapshots_[peer->migrating_];
    }
    add(name, stopped, snaps);
    Json& inst = instances_[name];
    inst["config"] = body.value("config", Json::object());
    inst["devices"] = body.value("devices", Json::object());
    if (body.contains("profiles") && body["profiles"].is_array()) inst["profiles"] = body["profiles"];
    return operation("task", Json::object());
  }

  // A pull-mode migration source: a websocket operation whose metadata holds the secrets.
  FakeResponse migration_source(const std::string& name) {
    migrating_ = name;
    return operation("websocket", {{"control", "ctl-s3cr3t"}, {"fs", "fs-s3cr3t"}});
  }

  FakeResponse instance_call(const FakeRequest& r, const std::string& name, const Json& body) {
    if (r.method == "GET") return {200, sync_body(instances_[name])};
    if (r.method == "PUT") {
      for (const char* key : {"config", "devices", "profiles"}) instances_[name][key] = body.value(key, Json{});
      return operation("task", Json::object());
    }
    if (r.method == "DELETE") {
      instances_.erase(name);
      snapshots_.erase(name);
      return operation("task", Json::object());
    }
    if (r.method == "POST" && body.value("migration", false)) return migration_source(name);
    return error_response(400, "bad request");
  }

  FakeResponse snapshot_call(const FakeRequest& r, const std::string& name, const std::vector<std::string>& seg,
                             const Json& body) {
    auto& snaps = snapshots_[name];
    if (seg.size() == 4 && r.method == "GET") {
      Json list = Json::array();
      for (const auto& s : snaps) list.push_back({{"name", s}, {"created_at", "2026-01-02T00:00:00Z"}});
      return {200, sync_body(list)};
    }
    if (seg.size() == 4 && r.method == "POST") {
      snaps.push_back(body.value("name", ""));
      return operation("task", Json::object());
    }
    const auto it = seg.size() == 5 ? std::find(snaps.begin(), snaps.end(), seg[4]) : snaps.end();
    if (it == snaps.end()) return error_response(404, "Snapshot not found");
    if (r.method == "GET") {
      Json snap = instances_[name];
      snap["name"] = *it;
      return {200, sync_body(snap)};
    }
    if (r.method == "DELETE") {
      snaps.erase(it);
      return operation("task", Json::object());
    }
    if (r.method == "POST" && body.value("migration", false)) return migration_source(name);
    return error_response(400, "bad request");
  }

  std::string fleet_;
  std::map<std::string, Json> instances_;
  std::map<std::string, std::vector<std::string>> snapshots_;
  std::string migrating_;
  int ops_ = 0;
  std::map<std::string, Json> finished_metadata_;      // operation id -> its final metadata
  std::map<std::string, std::set<std::string>> dirs_;  // instance -> paths made with the file API
};

// The values a field takes when a daemon gets its types wrong.
std::vector<Json> wrong_values() {
  return {Json(nullptr), Json(-1.5), Json("x"), Json::array(), Json::object(), Json(std::uint64_t{1} << 63)};
}

// Every body a sabotaged response gets instead of `body`: the envelope and what it holds, to a depth
// of three (envelope -> metadata -> field), each value replaced by every wrong value and each
// key removed; plus broken and oversized bodies. (wire_test.cpp goes deeper into each struct.)
// Under AddressSanitizer (a Debug build) each run is over ten times slower: there every position is
// still sabotaged, with every 41st body of its set, the first included (the Release run takes them
// all). With every seventh, the 15 actions took 25 minutes of CI under ASan.
#if defined(__SANITIZE_ADDRESS__)
constexpr std::size_t sabotage_stride = 41;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr std::size_t sabotage_stride = 41;
#else
constexpr std::size_t sabotage_stride = 1;
#endif
#else
constexpr std::size_t sabotage_stride = 1;
#endif

std::vector<std::string> all_sabotaged_bodies(const std::string& body);

std::vector<std::string> sabotaged_bodies(const std::string& body) {
  const auto all = all_sabotaged_bodies(body);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < all.size(); i += sabotage_stride) out.push_back(all[i]);
  return out;
}

std::vector<std::string> all_sabotaged_bodies(const std::string& body) {
  std::set<std::string> out;
  Json doc = Json::parse(body, nullptr, false);
  // `walk` changes one value of `doc` at a time, records the whole, and puts the value back.
  std::function<void(Json&, int)> walk = [&](Json& at, int depth) {
    const Json original = at;
    for (const auto& v : wrong_values()) {
      at = v;
      out.insert(doc.dump());
    }
    at = original;
    if (depth == 0) return;
    if (at.is_object()) {
      const std::vector<std::string> keys = [&] {
        std::vector<std::string> k;
        for (const auto& [key, value] : at.items()) k.push_back(key);
        return k;
      }();
      for (const auto& key : keys) {
        at.erase(key);
        out.insert(doc.dump());
        at = original;
        walk(at[key], depth - 1);
      }
    } else if (at.is_array() && !at.empty()) {
      walk(at[0], depth - 1);
    }
  };
  if (!doc.is_discarded()) walk(doc, 3);
  out.insert("");
  out.insert("not json");
  out.insert(body.substr(0, body.size() / 2));                        // truncated
  out.insert(std::string(100'000, '[') + std::string(100'000, ']'));  // deeply nested
  // Oversized for what it is: a list of 20,000 entries where one object was expected.
  Json huge = doc.is_object() ? doc : Json::object();
  huge["metadata"] = Json::array();
  for (int i = 0; i < 20'000; ++i) huge["metadata"].push_back({{"name", "n" + std::to_string(i)}});
  out.insert(huge.dump());
  out.erase(body);
  return {out.begin(), out.end()};
}

struct NullJournal : providers::StepJournal {
  std::int64_t intent(const std::string&, const std::string&, const Json&) override { return ++n; }
  void result(std::int64_t, bool, const Json&) override {}
  std::int64_t n = 0;
};

// Two fake hosts, h1 and h2, behind unix sockets; `sabotage` replaces the body of the n-th response
// (counted over both) and `seen` records every response body.
class Hosts {
 public:
  Hosts() {
    h1_.peer = &h2_;
    h2_.peer = &h1_;
    fleet_.name = "f1";
    fleet_.remotes["h1"] = model::RemoteSpec{"h1", s1_.url(), std::nullopt, 4, {}};
    fleet_.remotes["h2"] = model::RemoteSpec{"h2", s2_.url(), std::nullopt, 4, {}};
  }

  std::optional<std::size_t> sabotage_at;
  std::string sabotage_body;
  std::vector<std::string> seen;
  std::vector<std::string> seen_requests;  // "GET /1.0/instances/c1", in the order of `seen`

  [[nodiscard]] const HostDaemon& h1() const { return h1_; }

  // The index of the first response to `request`.
  [[nodiscard]] std::size_t first(const std::string& request) const {
    const auto it = std::find(seen_requests.begin(), seen_requests.end(), request);
    EXPECT_NE(it, seen_requests.end()) << request;
    return static_cast<std::size_t>(it - seen_requests.begin());
  }

  providers::ExecuteResponse execute(const plan::Action& action) {
    ExecutorOptions options;
    options.poll = std::chrono::seconds{1};
    options.stop_timeout = std::chrono::seconds{1};
    LxdExecutor executor(ClientConfig{tmp_.path() / "config"}, options);
    NullJournal journal;
    providers::ExecuteRequest req;
    req.action = &action;
    req.fleet = &fleet_;
    req.journal = &journal;
    return executor.execute(req);
  }

  providers::ReadStateResponse read(const std::string& remote) {
    StateReaderOptions options;
    options.snapshots = SnapshotRead::with_creation_times;
    options.connections = Connections::one;  // the n-th response is the same one in every run
    LxdStateReader reader(ClientConfig{tmp_.path() / "config"}, options);
    providers::ReadStateRequest req;
    req.remote = fleet_.remotes.at(remote);
    req.read_image_aliases = true;
    req.read_resources = true;
    return reader.read_state(req);
  }

 private:
  FakeResponse answer(HostDaemon& daemon, const FakeRequest& r) {
    std::lock_guard lock(mu_);
    FakeResponse res = daemon.handle(r);
    if (sabotage_at && seen.size() == *sabotage_at) res.body = sabotage_body;
    seen.push_back(res.body);
    seen_requests.push_back(r.method + " " + r.target);
    return res;
  }

  testing::TempDir tmp_;
  std::mutex mu_;
  HostDaemon h1_{"f1", true};
  HostDaemon h2_{"f1", false};
  testing::FakeServer s1_{[this](const FakeRequest& r) { return answer(h1_, r); },
                          (tmp_.path() / "h1.socket").string()};
  testing::FakeServer s2_{[this](const FakeRequest& r) { return answer(h2_, r); },
                          (tmp_.path() / "h2.socket").string()};
  model::Fleet fleet_;
};

plan::Action action(plan::ActionKind kind, const std::string& remote, const std::string& name) {
  plan::Action a;
  a.kind = kind;
  a.id = std::string{plan::to_string(kind)} + " " + remote + ":" + name;
  a.address = {remote, name, std::nullopt};
  return a;
}

// Every kind of action the executor carries out, each set up to succeed on the baseline hosts.
std::vector<plan::Action> every_action() {
  using plan::ActionKind;
  std::vector<plan::Action> out;
  auto launch = action(ActionKind::launch, "h1", "c2");
  launch.image = model::ImageRef{"h1", "bb"};
  launch.config = {{"user.role", "web"}};
  launch.target_state = model::DesiredState::running;
  out.push_back(launch);
  auto remote_launch = action(ActionKind::launch, "h2", "c3");
  remote_launch.image = model::ImageRef{"h1", "bb"};
  out.push_back(remote_launch);
  auto update = action(ActionKind::update, "h1", "c1");
  update.changes = {{"config.user.b", nullptr, "2"}, {"devices.d", nullptr, {{"type", "none"}}}};
  out.push_back(update);
  auto restart = action(ActionKind::restart, "h1", "c9");
  restart.changes = {{"config.limits.cpu", nullptr, "2"}};
  out.push_back(restart);
  out.push_back(action(ActionKind::start, "h1", "c1"));
  out.push_back(action(ActionKind::stop, "h1", "c9"));
  out.push_back(action(ActionKind::freeze, "h1", "c9"));
  auto snap = action(ActionKind::snapshot, "h1", "c1");
  snap.address.snapshot = "s9";
  out.push_back(snap);
  auto unsnap = action(ActionKind::delete_snapshot, "h1", "c1");
  unsnap.address.snapshot = "s0";
  out.push_back(unsnap);
  out.push_back(action(ActionKind::delete_, "h1", "c9"));
  auto local_copy = action(ActionKind::copy, "h1", "c4");
  local_copy.source = plan::Address{"h1", "c1", std::nullopt};
  out.push_back(local_copy);
  auto remote_copy = action(ActionKind::copy, "h2", "c5");
  remote_copy.source = plan::Address{"h1", "c1", std::string{"s1"}};
  out.push_back(remote_copy);
  auto move = action(ActionKind::move, "h2", "c1");
  move.source = plan::Address{"h1", "c1", std::nullopt};
  out.push_back(move);
  auto adopt = action(ActionKind::adopt, "h1", "c1");
  adopt.changes = {{"config.user.berth.fleet", nullptr, "f1"}, {"config.user.adopted", nullptr, "yes"}};
  out.push_back(adopt);
  auto recreate = action(ActionKind::recreate, "h1", "c9");
  recreate.image = model::ImageRef{"h1", "bb"};
  recreate.config = {{"user.role", "again"}};
  recreate.target_state = model::DesiredState::running;
  out.push_back(recreate);
  auto push = action(ActionKind::push, "h1", "c1");
  push.files = {model::FileSpec{"/etc/motd", "hello\n", std::nullopt, 0644, 0, 0, false, {}},
                model::FileSpec{"/etc/app/app.conf", "port=80\n", std::nullopt, 0640, 0, 33, false, {}}};
  push.changes = {{"files./etc/motd", nullptr, "sha256:aa"}, {"files./etc/app/app.conf", nullptr, "sha256:bb"}};
  out.push_back(push);
  auto exec = action(ActionKind::exec, "h1", "c9");
  exec.exec = model::ExecSpec{};
  exec.exec->name = "init";
  exec.exec->command = {"sh", "-c", "echo hi"};
  exec.changes = {{"exec.init", "pending", "sha256:cc"}};
  out.push_back(exec);
  return out;
}

TEST(HostileDaemon, EveryActionSucceedsOnTheBaseline) {
  for (const auto& a : every_action()) {
    Hosts hosts;
    const auto res = hosts.execute(a);
    EXPECT_TRUE(res.ok) << a.id << ": " << res.error;
  }
}

// One test per action kind, so that they run in parallel.
class HostileDaemonAction : public ::testing::TestWithParam<std::size_t> {};

TEST_P(HostileDaemonAction, EverySabotagedAnswerEndsInAClearErrorNeverACrash) {
  const plan::Action a = every_action().at(GetParam());
  std::vector<std::string> baseline;
  {
    Hosts hosts;
    ASSERT_TRUE(hosts.execute(a).ok) << a.id;
    baseline = hosts.seen;
  }
  std::size_t runs = 0;
  std::size_t failed = 0;
  std::set<std::string> unnamed;
  for (std::size_t at = 0; at < baseline.size(); ++at) {
    for (const auto& body : sabotaged_bodies(baseline[at])) {
      Hosts hosts;
      hosts.sabotage_at = at;
      hosts.sabotage_body = body;
      providers::ExecuteResponse res;
      EXPECT_NO_THROW(res = hosts.execute(a)) << "response " << at << ": " << body.substr(0, 200);
      ++runs;
      if (res.ok) continue;
      ++failed;
      EXPECT_LT(res.error.size(), 2000U) << "an error must stay readable: " << res.error.substr(0, 300);
      if (res.error.find("remote h") == std::string::npos) unnamed.insert(res.error.substr(0, 300));
    }
  }
  EXPECT_TRUE(unnamed.empty()) << unnamed.size() << " errors name no remote, e.g. " << *unnamed.begin();
  // A run that succeeds was sabotaged where it did not matter (a description, an error_code, the
  // answer to a best-effort cleanup).
  EXPECT_GT(failed, 0U) << runs << " sabotaged runs";
}

INSTANTIATE_TEST_SUITE_P(EveryAction, HostileDaemonAction, ::testing::Range<std::size_t>(0, every_action().size()),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           std::string name = every_action().at(info.param).id;
                           for (char& c : name) {
                             if (std::isalnum(static_cast<unsigned char>(c)) == 0) c = '_';
                           }
                           return name;
                         });

// An answer that leaves out a writable field must not be sent back with that field reset: a PUT
// replaces the whole instance, so an update on it would wipe the config (ownership mark included).
TEST(HostileDaemon, AnInstanceAnswerWithoutItsConfigIsNeverPutBack) {
  auto update = every_action().at(2);
  ASSERT_EQ(update.kind, plan::ActionKind::update);
  std::size_t at = 0;
  std::string without_config;
  {
    Hosts hosts;
    ASSERT_TRUE(hosts.execute(update).ok);
    at = hosts.first("GET /1.0/instances/c1");
    Json body = Json::parse(hosts.seen.at(at));
    body["metadata"].erase("config");
    without_config = body.dump();
  }
  Hosts hosts;
  hosts.sabotage_at = at;
  hosts.sabotage_body = without_config;
  const auto res = hosts.execute(update);
  EXPECT_FALSE(res.ok);
  EXPECT_EQ(res.error, "remote h1: the daemon's answer for c1 has no config; it is not updated");
  EXPECT_EQ(hosts.h1().instance("c1")["config"].value("user.berth.fleet", ""), "f1") << "nothing was put";
  EXPECT_EQ(std::count(hosts.seen_requests.begin(), hosts.seen_requests.end(), "PUT /1.0/instances/c1"), 0);
}

// adopt and recreate check the owner again right before they act: another fleet may have claimed
// the instance since the plan was made (recreate deletes it, so it must be this fleet's).
TEST(HostileDaemon, AdoptAndRecreateCheckTheOwnerAgain) {
  const auto actions = every_action();
  const auto find = [&](plan::ActionKind kind) {
    return *std::find_if(actions.begin(), actions.end(), [&](const plan::Action& a) { return a.kind == kind; });
  };
  Hosts hosts;
  auto claim = find(plan::ActionKind::update);
  for (const std::string name : {"c1", "c9"}) {
    claim.address.container = name;
    claim.changes = {{"config.user.berth.fleet", "f1", "other"}};
    ASSERT_TRUE(hosts.execute(claim).ok);
  }
  const auto adopted = hosts.execute(find(plan::ActionKind::adopt));
  EXPECT_FALSE(adopted.ok);
  EXPECT_EQ(adopted.error, "remote h1: c1 is owned by fleet 'other' since the plan was made; not changed");
  EXPECT_EQ(hosts.h1().instance("c1")["config"].value("user.adopted", ""), "") << "nothing was put";
  const auto recreated = hosts.execute(find(plan::ActionKind::recreate));
  EXPECT_FALSE(recreated.ok);
  EXPECT_EQ(hosts.h1().instance("c9")["config"].value("user.berth.fleet", ""), "other") << "c9 was not deleted";
}

TEST(HostileDaemon, RecreateDeletesNothingWhenItsImageIsGone) {
  const auto actions = every_action();
  auto recreate = *std::find_if(actions.begin(), actions.end(),
                                [](const plan::Action& a) { return a.kind == plan::ActionKind::recreate; });
  recreate.image = model::ImageRef{"h1", "no-such-alias"};
  Hosts hosts;
  const auto res = hosts.execute(recreate);
  EXPECT_FALSE(res.ok);
  EXPECT_EQ(res.error, "image alias 'no-such-alias' not found on remote 'h1'");
  EXPECT_EQ(hosts.h1().instance("c9")["config"].value("user.a", ""), "1") << "c9 is still the old one";
  EXPECT_EQ(std::count(hosts.seen_requests.begin(), hosts.seen_requests.end(), "DELETE /1.0/instances/c9"), 0);
}

TEST(HostileDaemon, RecreateReplacesTheInstanceWithTheDeclaredOne) {
  const auto actions = every_action();
  const auto recreate = *std::find_if(actions.begin(), actions.end(),
                                      [](const plan::Action& a) { return a.kind == plan::ActionKind::recreate; });
  Hosts hosts;
  ASSERT_TRUE(hosts.execute(recreate).ok);
  const auto& c9 = hosts.h1().instance("c9");
  EXPECT_EQ(c9["config"].value("user.role", ""), "again");
  EXPECT_EQ(c9["config"].value("user.a", ""), "") << "nothing of the old instance is kept";
  EXPECT_EQ(c9["config"].value("user.berth.fleet", ""), "f1");
  EXPECT_EQ(c9.value("status_code", 0), 103);
  EXPECT_NE(std::find(hosts.seen_requests.begin(), hosts.seen_requests.end(), "DELETE /1.0/instances/c9"),
            hosts.seen_requests.end());
}

// A damaged saved plan's change of the wrong shape is refused, never coerced into "no profiles".
TEST(HostileDaemon, PushAndExecRecordWhatTheyDid) {
  const auto actions = every_action();
  const auto find = [&](plan::ActionKind k) {
    return *std::find_if(actions.begin(), actions.end(), [&](const plan::Action& a) { return a.kind == k; });
  };
  {
    Hosts hosts;
    const auto res = hosts.execute(find(plan::ActionKind::push));
    ASSERT_TRUE(res.ok) << res.error;
    EXPECT_EQ(hosts.h1().instance("c1")["config"].value("user.berth.files", ""),
              R"({"/etc/app/app.conf":"sha256:bb","/etc/motd":"sha256:aa"})");
    // /etc/app did not exist: the push made it, after a first attempt was refused.
    EXPECT_NE(
        std::find(hosts.seen_requests.begin(), hosts.seen_requests.end(), "POST /1.0/instances/c1/files?path=/etc/app"),
        hosts.seen_requests.end());
  }
  {
    Hosts hosts;
    const auto res = hosts.execute(find(plan::ActionKind::exec));
    ASSERT_TRUE(res.ok) << res.error;
    ASSERT_TRUE(res.command);
    EXPECT_EQ(res.command->exit_code, 0);
    EXPECT_NE(res.command->out.find("output of exec_"), std::string::npos) << res.command->out;
    EXPECT_EQ(hosts.h1().instance("c9")["config"].value("user.berth.exec", ""), R"({"init":"sha256:cc"})");
  }
}

TEST(HostileDaemon, AChangeOfTheWrongShapeIsRefusedNotCoerced) {
  auto update = every_action().at(2);
  update.changes = {{"profiles", Json::array({"default"}), "not a list"}};
  Hosts hosts;
  const auto res = hosts.execute(update);
  EXPECT_FALSE(res.ok);
  EXPECT_EQ(res.error, "update h1:c1: the change of profiles has a value of the wrong type; plan again");
  EXPECT_EQ(hosts.h1().instance("c1")["profiles"], Json::array({"default"}));
  update.changes = {{"devices.d", nullptr, Json::array()}};
  EXPECT_FALSE(hosts.execute(update).ok);
  update.changes = {{"config.user.a", "1", Json::object()}};
  EXPECT_FALSE(hosts.execute(update).ok);
  EXPECT_EQ(hosts.h1().instance("c1")["config"]["user.a"], "1");
}

TEST(HostileDaemon, EverySabotagedAnswerToTheStateReaderLeavesTheRemoteUnknownOrWarns) {
  std::vector<std::string> baseline;
  {
    Hosts hosts;
    const auto res = hosts.read("h1");
    ASSERT_EQ(res.live.status, model::RemoteStatus::ok) << res.live.error;
    ASSERT_TRUE(res.diagnostics.empty());
    ASSERT_TRUE(res.live.resources.has_value()) << res.live.resources_error;
    ASSERT_EQ(res.live.instances.at("c1").limits.at("limits.memory"), "1GiB");
    baseline = hosts.seen;
  }
  std::size_t noticed = 0;
  std::size_t runs = 0;
  for (std::size_t at = 0; at < baseline.size(); ++at) {
    for (const auto& body : sabotaged_bodies(baseline[at])) {
      Hosts hosts;
      hosts.sabotage_at = at;
      hosts.sabotage_body = body;
      providers::ReadStateResponse res;
      EXPECT_NO_THROW(res = hosts.read("h1")) << "response " << at << ": " << body.substr(0, 200);
      ++runs;
      if (res.live.status == model::RemoteStatus::unknown) {
        ++noticed;
        EXPECT_EQ(res.live.error.rfind("remote h1: ", 0), 0U) << res.live.error;
      } else if (!res.diagnostics.empty() || !res.live.resources) {
        ++noticed;
      }
      if (res.live.status == model::RemoteStatus::ok && !res.live.resources) {
        // What the host has is not needed for the rest of the read: its failure is said, naming the remote.
        EXPECT_EQ(res.live.resources_error.rfind("remote h1: GET /1.0/resources", 0), 0U) << res.live.resources_error;
      }
    }
  }
  EXPECT_GT(noticed, 0U) << runs << " sabotaged runs";
}

}  // namespace
}  // namespace berth::lxd
