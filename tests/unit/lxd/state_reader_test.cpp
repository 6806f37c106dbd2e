#include "providers/lxd/state_reader.hpp"

#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "fake_lxd.hpp"
#include "providers/lxd/certificate.hpp"
#include "providers/lxd/remote_store.hpp"
#include "temp_dir.hpp"

namespace berth::lxd {
namespace {

using testing::FakeLxd;
using testing::FakeServer;

std::vector<std::string> names(const model::LiveInstance& i) {
  std::vector<std::string> out;
  for (const auto& s : i.snapshots) out.push_back(s.name);
  return out;
}

int count_targets(const FakeServer& s, std::string_view prefix) {
  int n = 0;
  for (const auto& r : s.requests()) n += r.target.starts_with(prefix) ? 1 : 0;
  return n;
}

class StateReaderUnix : public ::testing::TestWithParam<bool> {
 protected:
  StateReaderUnix() { lxd_.unix_socket = true; }
  testing::TempDir tmp_;
  FakeLxd lxd_;
  FakeServer server_{[this](const testing::FakeRequest& r) { return lxd_.handle(r); },
                     (tmp_.path() / "unix.socket").string()};
  ClientConfig config_{tmp_.path() / "cfg"};
};

TEST_P(StateReaderUnix, BulkReadWithoutPerInstanceRequests) {
  StateReaderOptions options;
  options.connections = GetParam() ? Connections::two : Connections::one;
  auto reader = make_state_reader(config_, options);
  providers::ReadStateRequest req;
  req.remote.name = "local";
  req.remote.url = server_.url();
  req.read_image_aliases = true;
  const auto resp = reader->read_state(req);
  const auto& live = resp.live;
  ASSERT_EQ(live.status, model::RemoteStatus::ok) << live.error;
  EXPECT_EQ(live.name, "local");
  // No GET /1.0 on the way: trust shows in the first real request (403 when untrusted).
  EXPECT_TRUE(resp.diagnostics.empty());
  ASSERT_EQ(live.instances.size(), 3u);
  EXPECT_EQ(names(live.instances.at("c1")), (std::vector<std::string>{"snap0", "snap1"}));
  EXPECT_EQ(names(live.instances.at("c2")), (std::vector<std::string>{"aa", "zz"}));
  EXPECT_TRUE(live.instances.at("c1").snapshots_known);
  EXPECT_EQ(live.instances.at("c1").digest, model::digest_of(live.instances.at("c1")));
  ASSERT_TRUE(live.image_aliases.has_value());
  ASSERT_EQ(live.image_aliases->size(), 1u);
  EXPECT_EQ(live.image_aliases->begin()->first, "bb");
  EXPECT_EQ(count_targets(server_, "/1.0/instances/"), 0);  // never one request per instance
  EXPECT_EQ(server_.connections(), GetParam() ? 2 : 1);
}

TEST_P(StateReaderUnix, CreationTimesOnRequest) {
  StateReaderOptions options;
  options.connections = GetParam() ? Connections::two : Connections::one;
  options.snapshots = SnapshotRead::with_creation_times;
  providers::ReadStateRequest req;
  req.remote.name = "local";
  req.remote.url = server_.url();
  const auto resp = make_state_reader(config_, options)->read_state(req);
  ASSERT_EQ(resp.live.status, model::RemoteStatus::ok) << resp.live.error;
  EXPECT_EQ(names(resp.live.instances.at("c1")), (std::vector<std::string>{"snap1", "snap0"}));  // oldest first
  EXPECT_EQ(names(resp.live.instances.at("c2")), (std::vector<std::string>{"zz", "aa"}));
  EXPECT_FALSE(resp.live.image_aliases.has_value());        // not asked for
  EXPECT_EQ(count_targets(server_, "/1.0/instances/"), 2);  // only instances that have snapshots
}

// What the host has is read only when asked for: one request more, on either connection.
TEST_P(StateReaderUnix, ResourcesWhenAskedFor) {
  StateReaderOptions options;
  options.connections = GetParam() ? Connections::two : Connections::one;
  providers::ReadStateRequest req;
  req.remote.name = "local";
  req.remote.url = server_.url();
  const auto unasked = make_state_reader(config_, options)->read_state(req);
  ASSERT_EQ(unasked.live.status, model::RemoteStatus::ok) << unasked.live.error;
  EXPECT_FALSE(unasked.live.resources.has_value());
  EXPECT_TRUE(unasked.live.resources_error.empty());
  EXPECT_EQ(count_targets(server_, "/1.0/resources"), 0);

  req.read_resources = true;
  const auto resp = make_state_reader(config_, options)->read_state(req);
  ASSERT_EQ(resp.live.status, model::RemoteStatus::ok) << resp.live.error;
  ASSERT_TRUE(resp.live.resources.has_value()) << resp.live.resources_error;
  EXPECT_EQ(*resp.live.resources, (model::HostResources{4, 8ULL << 30}));
  EXPECT_TRUE(resp.live.resources_error.empty());
  EXPECT_TRUE(resp.diagnostics.empty());
  EXPECT_EQ(resp.live.instances.size(), 3U);
  EXPECT_EQ(count_targets(server_, "/1.0/resources"), 1);
}

INSTANTIATE_TEST_SUITE_P(Connections, StateReaderUnix, ::testing::Bool());

// A host whose resources cannot be read stays readable: its instances are known, only placement
// onto it lacks what it has, and the error says which remote and what failed.
TEST(StateReaderResources, AFailedReadNamesTheRemoteAndLeavesItReadable) {
  testing::TempDir tmp;
  FakeLxd lxd;
  lxd.unix_socket = true;
  std::optional<testing::FakeResponse> answer;
  FakeServer server{[&](const testing::FakeRequest& r) {
                      if (r.target == "/1.0/resources" && answer) return *answer;
                      return lxd.handle(r);
                    },
                    (tmp.path() / "unix.socket").string()};
  providers::ReadStateRequest req;
  req.remote.name = "h1";
  req.remote.url = server.url();
  req.read_resources = true;
  const auto metadata = [](nlohmann::json md) { return testing::FakeResponse{200, testing::sync_body(md)}; };
  const auto without = [](const std::string& section) {
    auto md = testing::resources_fixture();
    md.erase(section);
    return md;
  };
  const auto with = [](const std::string& section, const std::string& key, nlohmann::json value) {
    auto md = testing::resources_fixture();
    md[section][key] = std::move(value);
    return md;
  };
  const std::vector<std::pair<testing::FakeResponse, std::string>> cases = {
      {testing::error_response(404, "not found"), "GET /1.0/resources failed: not found (HTTP 404)"},
      {testing::error_response(403, "not authorized"), "GET /1.0/resources failed: not authorized (HTTP 403)"},
      {{200, "garbage"}, "GET /1.0/resources: the response is not an LXD JSON envelope (HTTP 200)"},
      {{500, "<html>"}, "GET /1.0/resources failed: HTTP 500"},
      {metadata(nullptr), "GET /1.0/resources: the answer is null, not an object"},
      {metadata(nlohmann::json::array()), "GET /1.0/resources: the answer is a list, not an object"},
      {metadata(without("cpu")), "GET /1.0/resources: cpu.total is missing or 0"},
      {metadata(without("memory")), "GET /1.0/resources: memory.total is missing or 0"},
      {metadata(with("cpu", "total", 0)), "GET /1.0/resources: cpu.total is missing or 0"},
      {metadata(with("memory", "total", nullptr)), "GET /1.0/resources: memory.total is missing or 0"},
      {metadata(with("cpu", "total", "4")), "GET /1.0/resources: cpu: total is a string, not an integer"},
      {metadata(with("cpu", "total", 4.5)), "GET /1.0/resources: cpu: total is a number, not an integer"},
      {metadata(with("memory", "total", -1)), "GET /1.0/resources: memory: total is negative"},
      {metadata(with("cpu", "total", std::uint64_t{1} << 63)), "GET /1.0/resources: cpu.total is out of range"},
      {metadata({{"cpu", "many"}, {"memory", {{"total", 1}}}}), "GET /1.0/resources: cpu is a string, not an object"},
  };
  for (const auto& [response, why] : cases) {
    answer = response;
    const auto read = make_state_reader(ClientConfig{tmp.path() / "cfg"})->read_state(req);
    ASSERT_EQ(read.live.status, model::RemoteStatus::ok) << why << ": " << read.live.error;
    EXPECT_EQ(read.live.instances.size(), 3U) << why;
    EXPECT_FALSE(read.live.resources.has_value()) << why;
    EXPECT_EQ(read.live.resources_error, "remote h1: " + why);
  }
}

// What placement counts of an instance: limits.cpu and limits.memory of its expanded config (a
// profile's count), else of its own config when a daemon sends no expanded config.
TEST(StateReaderInstances, LimitsFromTheExpandedConfigElseTheConfig) {
  testing::TempDir tmp;
  FakeLxd lxd;
  lxd.unix_socket = true;
  auto from_profile = testing::instance_json("c1", 103, {{"user.a", "1"}});
  from_profile["expanded_config"] = {{"user.a", "1"}, {"limits.cpu", "2"}, {"limits.memory", "1GiB"}, {"x", "y"}};
  auto old_daemon = testing::instance_json("c2", 102, {{"limits.memory", "512MiB"}});
  old_daemon.erase("expanded_config");
  auto unlimited = testing::instance_json("c3", 102, {{"limits.cpu", "4"}});
  unlimited["expanded_config"] = {{"limits.cpu", ""}};  // "": no limit (as LXD reads it)
  lxd.instances = nlohmann::json::array({from_profile, old_daemon, unlimited});
  FakeServer server{[&](const testing::FakeRequest& r) { return lxd.handle(r); },
                    (tmp.path() / "unix.socket").string()};
  providers::ReadStateRequest req;
  req.remote.name = "h1";
  req.remote.url = server.url();
  const auto read = make_state_reader(ClientConfig{tmp.path() / "cfg"})->read_state(req);
  ASSERT_EQ(read.live.status, model::RemoteStatus::ok) << read.live.error;
  const auto& c1 = read.live.instances.at("c1");
  EXPECT_EQ(c1.limits, (model::ConfigMap{{"limits.cpu", "2"}, {"limits.memory", "1GiB"}}));
  EXPECT_EQ(c1.config, (model::ConfigMap{{"user.a", "1"}})) << "the compared config stays the local one";
  EXPECT_EQ(read.live.instances.at("c2").limits, (model::ConfigMap{{"limits.memory", "512MiB"}}));
  EXPECT_TRUE(read.live.instances.at("c3").limits.empty());

  // A wrong type is an error that names the field, as for the config: the remote is unknown.
  lxd.instances[0]["expanded_config"] = "limits.cpu=2";
  const auto odd = make_state_reader(ClientConfig{tmp.path() / "cfg"})->read_state(req);
  EXPECT_EQ(odd.live.status, model::RemoteStatus::unknown);
  EXPECT_EQ(odd.live.error,
            "remote h1: GET /1.0/instances?recursion=1: instance c1: expanded_config is a string, not an object");
  lxd.instances[0]["expanded_config"] = {{"limits.cpu", nlohmann::json::array()}};
  const auto odd_value = make_state_reader(ClientConfig{tmp.path() / "cfg"})->read_state(req);
  EXPECT_EQ(odd_value.live.error,
            "remote h1: GET /1.0/instances?recursion=1: instance c1: "
            "expanded_config.limits.cpu is a list, not a string");
  lxd.instances[0]["expanded_config"] = {{"limits.cpu", 2}};  // a number reads as its text, as in config
  const auto number = make_state_reader(ClientConfig{tmp.path() / "cfg"})->read_state(req);
  ASSERT_EQ(number.live.status, model::RemoteStatus::ok) << number.live.error;
  EXPECT_EQ(number.live.instances.at("c1").limits, (model::ConfigMap{{"limits.cpu", "2"}}));
}

TEST(StateReaderDefaults, TwoConnectionsOverUnixOneOverHttps) {
  testing::TempDir tmp;
  FakeLxd lxd;
  lxd.unix_socket = true;
  FakeServer server([&](const testing::FakeRequest& r) { return lxd.handle(r); }, (tmp.path() / "u.sock").string());
  providers::ReadStateRequest req;
  req.remote.name = "local";
  req.remote.url = server.url();
  ASSERT_EQ(make_state_reader({tmp.path()})->read_state(req).live.status, model::RemoteStatus::ok);
  EXPECT_EQ(server.connections(), 2);
}

TEST(StateReader, UnreachableRemoteIsUnknown) {
  testing::TempDir tmp;
  providers::ReadStateRequest req;
  req.remote.name = "gone";
  req.remote.url = "unix://" + (tmp.path() / "none.sock").string();
  const auto resp = make_state_reader({tmp.path()})->read_state(req);
  EXPECT_EQ(resp.live.status, model::RemoteStatus::unknown);
  EXPECT_EQ(resp.live.error.rfind("remote gone: cannot connect to unix://", 0), 0u) << resp.live.error;
  EXPECT_TRUE(resp.live.instances.empty());
}

TEST(StateReader, HttpsWithoutPinIsUnknownAndSaysWhatToDo) {
  testing::TempDir tmp;
  providers::ReadStateRequest req;
  req.remote.name = "foo";
  req.remote.url = "https://127.0.0.1:8443";
  const auto resp = make_state_reader({tmp.path()})->read_state(req);
  EXPECT_EQ(resp.live.status, model::RemoteStatus::unknown);
  EXPECT_EQ(resp.live.error,
            "remote foo: no pinned server certificate; add fingerprint: (the sha256 fingerprint of the host's "
            "certificate) to this remote in the fleet file, or run `berth remote add foo https://127.0.0.1:8443`");
}

class StateReaderTls : public testing::FakeTlsLxdTest {
 protected:
  void SetUp() override {
    FakeTlsLxdTest::SetUp();
    if (HasFatalFailure()) return;
    auto id = ensure_client_identity(config_);
    ASSERT_TRUE(id.ok());
    client_fp_ = id->fingerprint;
    req_.remote.name = "foo";
    req_.remote.url = server_->url();
  }
  std::string client_fp_;
  providers::ReadStateRequest req_;
};

TEST_F(StateReaderTls, PinnedByTheFleetFile) {
  lxd_.trust(client_fp_);
  req_.remote.fingerprint = "sha256:" + server_fp_;
  const auto resp = make_state_reader(config_)->read_state(req_);
  ASSERT_EQ(resp.live.status, model::RemoteStatus::ok) << resp.live.error;
  EXPECT_EQ(resp.live.instances.size(), 3u);
  EXPECT_EQ(server_->connections(), 1);  // one kept-alive TLS connection by default
}

TEST_F(StateReaderTls, PinnedByRemoteAdd) {
  lxd_.trust(client_fp_);
  auto store = RemoteStore::load(config_);
  ASSERT_TRUE(store->add({"foo", server_->url(), server_fp_}, server_pem_.certificate).ok());
  const auto resp = make_state_reader(config_)->read_state(req_);
  ASSERT_EQ(resp.live.status, model::RemoteStatus::ok) << resp.live.error;
}

TEST_F(StateReaderTls, FingerprintMismatchRefuses) {
  lxd_.trust(client_fp_);
  req_.remote.fingerprint = std::string(64, 'a');
  const auto resp = make_state_reader(config_)->read_state(req_);
  EXPECT_EQ(resp.live.status, model::RemoteStatus::unknown);
  EXPECT_EQ(resp.live.error, "remote foo: server certificate fingerprint " + server_fp_ +
                                 " does not match the pinned " + std::string(64, 'a') + "; refusing to talk to it");
  EXPECT_TRUE(server_->requests().empty());
}

TEST_F(StateReaderTls, UntrustedClient) {
  req_.remote.fingerprint = server_fp_;
  for (auto connections : {Connections::automatic, Connections::one, Connections::two}) {
    StateReaderOptions options;
    options.connections = connections;
    const auto resp = make_state_reader(config_, options)->read_state(req_);
    EXPECT_EQ(resp.live.status, model::RemoteStatus::unknown);
    EXPECT_EQ(
        resp.live.error.rfind("remote foo: the server does not trust this client's certificate (" + client_fp_, 0), 0u)
        << resp.live.error;
    EXPECT_NE(resp.live.error.find("berth remote add foo"), std::string::npos);
  }
}

// A runner with no config dir: the certificate comes from the environment, the pin from the fleet
// file. Nothing is read from or written to the config dir.
TEST_F(StateReaderTls, GivenCertificateAndFleetPinNeedNoConfigDir) {
  // An identity from BERTH_CLIENT_CERT and BERTH_CLIENT_KEY.
  const auto from_environment = [](const PemPair& pair) {
    ClientIdentitySources sources;
    sources.getenv = [&pair](const char* name) -> const char* {
      if (std::string_view{name} == client_certificate_env) return pair.certificate.c_str();
      if (std::string_view{name} == client_key_env) return pair.private_key.c_str();
      return nullptr;
    };
    return select_client_identity(sources);
  };
  const auto trusted_pair = generate_client_certificate({"runner@test", 30});
  const auto other_pair = generate_client_certificate({"stranger@test", 30});
  ASSERT_TRUE(trusted_pair.ok() && other_pair.ok());
  const auto trusted = from_environment(*trusted_pair);
  const auto other = from_environment(*other_pair);
  ASSERT_TRUE(trusted.ok() && other.ok());
  ASSERT_TRUE(*trusted && *other);
  lxd_.trust((*trusted)->fingerprint);

  const auto absent = tmp_.path() / "absent";
  req_.remote.fingerprint = "sha256:" + server_fp_;
  const auto resp = make_state_reader(ClientConfig{absent, *trusted})->read_state(req_);
  ASSERT_EQ(resp.live.status, model::RemoteStatus::ok) << resp.live.error;
  EXPECT_EQ(server_->requests().back().peer_fingerprint, (*trusted)->fingerprint);

  // Not trusted by the host: said, with where the certificate came from.
  const auto untrusted = make_state_reader(ClientConfig{absent, *other})->read_state(req_);
  EXPECT_EQ(untrusted.live.status, model::RemoteStatus::unknown);
  EXPECT_NE(untrusted.live.error.find("does not trust this client's certificate (" + (*other)->fingerprint +
                                      "), given by BERTH_CLIENT_CERT and BERTH_CLIENT_KEY"),
            std::string::npos)
      << untrusted.live.error;
  EXPECT_FALSE(std::filesystem::exists(absent)) << "the config dir is neither read nor made";
}

TEST_F(StateReaderTls, FleetPinAndRemoteAddPinMustAgree) {
  lxd_.trust(client_fp_);
  auto store = RemoteStore::load(config_);
  ASSERT_TRUE(store->add({"foo", server_->url(), server_fp_}, server_pem_.certificate).ok());

  req_.remote.fingerprint = server_fp_;  // the same certificate: fine
  const auto same = make_state_reader(config_)->read_state(req_);
  ASSERT_EQ(same.live.status, model::RemoteStatus::ok) << same.live.error;

  const std::size_t before = server_->requests().size();
  req_.remote.fingerprint = std::string(64, 'b');  // another one: neither is picked
  const auto differ = make_state_reader(config_)->read_state(req_);
  EXPECT_EQ(differ.live.status, model::RemoteStatus::unknown);
  EXPECT_EQ(
      differ.live.error.rfind("remote foo: the fleet file pins the server certificate sha256:" + std::string(64, 'b') +
                                  ", but `berth remote add` pinned another one under this name (sha256:" + server_fp_,
                              0),
      0u)
      << differ.live.error;
  EXPECT_EQ(server_->requests().size(), before) << "nothing is sent when the pins disagree";
}

// 40 MB of instances (what ~13000 instances of LXD 5.0 send): over the default limit the remote is
// Unknown with an error that says which request, which limit and which flag; with the limit raised
// it is read whole.
TEST(StateReaderLimits, AnswerOverTheLimitMakesTheRemoteUnknownWithAClearError) {
  testing::TempDir tmp;
  FakeLxd lxd;
  lxd.unix_socket = true;
  lxd.instances = nlohmann::json::array();
  const std::string padding(1300, 'p');  // in config and expanded_config: ~3 KB an instance
  for (int i = 0; i < 13'500; ++i) {
    lxd.instances.push_back(testing::instance_json("c" + std::to_string(i), 102, {{"user.padding", padding}}));
  }
  const std::string cached = testing::sync_body(lxd.instances);
  ASSERT_GT(cached.size(), 40'000'000U);
  ASSERT_LT(cached.size(), 45'000'000U);
  FakeServer server(
      [&](const testing::FakeRequest& r) {
        if (r.target == "/1.0/instances?recursion=1") return testing::FakeResponse{200, cached};
        return lxd.handle(r);
      },
      (tmp.path() / "unix.socket").string());
  providers::ReadStateRequest req;
  req.remote.name = "h1";
  req.remote.url = server.url();

  StateReaderOptions options;
  const auto refused = make_state_reader(ClientConfig{tmp.path() / "cfg"}, options)->read_state(req);
  EXPECT_EQ(refused.live.status, model::RemoteStatus::unknown);
  EXPECT_EQ(refused.live.error,
            "remote h1: GET /1.0/instances?recursion=1: the answer is larger than 32 MiB; if that is expected, raise "
            "the limit with --max-response-size");

  options.timeouts.max_response_bytes = 64 * util::mib;
  const auto read = make_state_reader(ClientConfig{tmp.path() / "cfg"}, options)->read_state(req);
  ASSERT_EQ(read.live.status, model::RemoteStatus::ok) << read.live.error;
  EXPECT_EQ(read.live.instances.size(), 13'500U);
}

// Every project the fleet uses is read, each instance keyed by project; a required project that
// does not exist makes the remote unknown, an optional one (a move's source) has no instances.
TEST(StateReaderProjects, ReadsEachProjectAndNamesOneThatDoesNotExist) {
  testing::TempDir tmp;
  FakeLxd lxd;
  lxd.unix_socket = true;
  FakeServer server{
      [&](const testing::FakeRequest& r) -> testing::FakeResponse {
        if (r.target == "/1.0/projects/p") return {200, testing::sync_body({{"name", "p"}})};
        if (r.target.starts_with("/1.0/projects/")) return testing::error_response(404, "Project not found");
        if (r.target == "/1.0/instances?recursion=1&project=p") {
          return {200, testing::sync_body(nlohmann::json::array({testing::instance_json("c1", 102)}))};
        }
        if (r.target == "/1.0/storage-pools/default/volumes?recursion=1&project=p") {
          return {200, testing::sync_body(nlohmann::json::array({testing::volume_json("c1", "container", "p"),
                                                                 testing::volume_json("c1/in-p", "container", "p")}))};
        }
        if (r.target.find("project=") != std::string::npos) {
          return testing::error_response(404, "Project not found");
        }
        return lxd.handle(r);
      },
      (tmp.path() / "unix.socket").string()};
  providers::ReadStateRequest req;
  req.remote.name = "local";
  req.remote.url = server.url();
  req.projects = {"default", "p"};
  req.other_projects = {"elsewhere"};
  const auto read = make_state_reader(ClientConfig{tmp.path() / "cfg"}, {})->read_state(req);
  ASSERT_EQ(read.live.status, model::RemoteStatus::ok) << read.live.error;
  ASSERT_EQ(read.live.instances.count("p/c1"), 1U);
  ASSERT_EQ(read.live.instances.count("c1"), 1U) << "the default project's c1 is another instance";
  EXPECT_EQ(read.live.instances.at("p/c1").project, "p");
  EXPECT_EQ(names(read.live.instances.at("p/c1")), std::vector<std::string>{"in-p"});
  EXPECT_EQ(names(read.live.instances.at("c1")), (std::vector<std::string>{"snap0", "snap1"}));

  req.projects = {"nope"};
  const auto missing = make_state_reader(ClientConfig{tmp.path() / "cfg"}, {})->read_state(req);
  EXPECT_EQ(missing.live.status, model::RemoteStatus::unknown);
  EXPECT_NE(missing.live.error.find("remote local: project 'nope' does not exist"), std::string::npos)
      << missing.live.error;
}

// An LXD cluster: GET /1.0 says so, the members are read, each instance keeps its member, a
// placeholder is marked, and each online member's resources are read with ?target=. A member
// list the reader cannot use makes the remote Unknown, naming the request.
TEST(StateReaderCluster, MembersLocationsPlaceholdersAndPerMemberResources) {
  testing::TempDir tmp;
  FakeLxd lxd;
  lxd.unix_socket = true;
  auto c1 = testing::instance_json("c1", 103, {});
  c1["location"] = "m1";
  const nlohmann::json placeholder = {{"name", "c9"},       {"type", ""},          {"architecture", ""},
                                      {"status", "Error"},  {"status_code", 112},  {"location", "m2"},
                                      {"config", nullptr},  {"devices", nullptr},  {"profiles", nullptr},
                                      {"ephemeral", false}, {"project", "default"}};
  lxd.instances = nlohmann::json::array({c1, placeholder});
  nlohmann::json members = nlohmann::json::array(
      {{{"server_name", "m1"}, {"status", "Online"}, {"groups", {"default"}}},
       {{"server_name", "m2"}, {"status", "Offline"}, {"message", "No heartbeat"}, {"groups", {"default"}}}});
  std::vector<std::string> resource_targets;
  std::mutex mu;
  FakeServer server{[&](const testing::FakeRequest& r) {
                      if (r.target == "/1.0") {
                        auto answer = lxd.handle(r);
                        auto body = nlohmann::json::parse(answer.body);
                        body["metadata"]["environment"]["server_clustered"] = true;
                        return testing::FakeResponse{200, body.dump()};
                      }
                      if (r.target == "/1.0/cluster/members?recursion=1") {
                        return testing::FakeResponse{200, testing::sync_body(members)};
                      }
                      if (r.target.starts_with("/1.0/resources?target=")) {
                        std::lock_guard lock(mu);
                        resource_targets.push_back(r.target);
                        return testing::FakeResponse{200, testing::sync_body(testing::resources_fixture())};
                      }
                      return lxd.handle(r);
                    },
                    (tmp.path() / "unix.socket").string()};
  providers::ReadStateRequest req;
  req.remote.name = "prod";
  req.remote.url = server.url();
  req.read_resources = true;
  auto read = make_state_reader(ClientConfig{tmp.path() / "cfg"})->read_state(req);
  ASSERT_EQ(read.live.status, model::RemoteStatus::ok) << read.live.error;
  ASSERT_TRUE(read.live.members);
  EXPECT_EQ(read.live.members->size(), 2U);
  EXPECT_FALSE(read.live.members->at("m2").online());
  EXPECT_EQ(read.live.instances.at("c1").location, "m1");
  EXPECT_FALSE(read.live.instances.at("c1").placeholder);
  EXPECT_TRUE(read.live.instances.at("c9").placeholder);
  EXPECT_EQ(resource_targets, (std::vector<std::string>{"/1.0/resources?target=m1"}));  // online members only
  EXPECT_EQ(read.live.member_resources.count("m1"), 1U);
  EXPECT_FALSE(read.live.resources.has_value());

  members = nlohmann::json::array({{{"server_name", "m1"}}, {{"server_name", "m1"}}});
  read = make_state_reader(ClientConfig{tmp.path() / "cfg"})->read_state(req);
  EXPECT_EQ(read.live.status, model::RemoteStatus::unknown);
  EXPECT_EQ(read.live.error, "remote prod: GET /1.0/cluster/members: cluster member m1 is listed twice");
}

// urls: tried in order: one that does not answer is passed over, and when none answers the error
// names each.
TEST(StateReaderUrls, TriedInOrderUntilOneAnswers) {
  testing::TempDir tmp;
  FakeLxd lxd;
  lxd.unix_socket = true;
  FakeServer server{[&](const testing::FakeRequest& r) { return lxd.handle(r); },
                    (tmp.path() / "unix.socket").string()};
  const std::string nowhere = "unix://" + (tmp.path() / "nobody.socket").string();
  providers::ReadStateRequest req;
  req.remote.name = "prod";
  req.remote.urls = {nowhere, server.url()};
  req.remote.url = nowhere;
  auto read = make_state_reader(ClientConfig{tmp.path() / "cfg"})->read_state(req);
  EXPECT_EQ(read.live.status, model::RemoteStatus::ok) << read.live.error;
  EXPECT_EQ(read.live.instances.size(), 3U);

  req.remote.urls = {nowhere, nowhere + "2"};
  read = make_state_reader(ClientConfig{tmp.path() / "cfg"})->read_state(req);
  EXPECT_EQ(read.live.status, model::RemoteStatus::unknown);
  EXPECT_TRUE(read.live.error.starts_with("remote prod: none of its 2 URLs answered (" + nowhere + ": "))
      << read.live.error;
  EXPECT_NE(read.live.error.find("; " + nowhere + "2: "), std::string::npos) << read.live.error;
}

}  // namespace
}  // namespace berth::lxd
