// Placement in the fleet file: remotes' labels, capacity and drain, placements: and a container's
// placement: (named or inline, a list of remotes or a label selector), and what resolution reports.

#include <gtest/gtest.h>

#include "tests/unit/config/config_test_support.hpp"

namespace berth::config {
namespace {

using testing::all;
using testing::error_count;
using testing::expect_error;
using testing::load;

constexpr std::string_view placed = R"(version: 1
remotes:
  a: {url: "https://10.0.0.1:8443", labels: {zone: east, rack: 1, ssd: true}, capacity: {cpu: 8, memory: 16GiB}, drain: true}
  b: {url: "https://10.0.0.2:8443", labels: {zone: east}, capacity: {memory: 17179869184}, drain: false}
  c: {url: "https://10.0.0.3:8443", labels: {zone: west}, capacity: {cpu: 2}}
  t: {url: "unix:///t", project: tenant}
images:
  bb: {alias: bb}
  base: {remote: t, alias: base}
placements:
  web: {candidates: [c, a, b], strategy: spread, anti_affinity: web, max_per_remote: 2}
  east: {candidates: {labels: {zone: east}}, strategy: pack}
containers:
  web1: {placement: web, image: bb}
  cache1: {placement: {candidates: {labels: {zone: east}}, strategy: pack}, image: bb, config: {limits.memory: 256MiB}}
  fast: {placement: {candidates: {labels: {rack: 1, ssd: true}}}, image: bb}
  db: {placement: {candidates: [t]}, image: "a:bb"}
  lab: {placement: east, project: other, image: base}
  pin: {remote: c, image: bb}
  old: {placement: web, state: absent}
)";

TEST(ConfigPlacement, RemotesLabelsCapacityAndDrain) {
  const auto r = load(placed);
  ASSERT_TRUE(r.fleet) << all(r);
  EXPECT_TRUE(r.diagnostics.empty()) << all(r);
  const auto& remotes = r.fleet->remotes;
  const auto& a = remotes.at("a");
  EXPECT_EQ(a.labels, (std::map<std::string, std::string>{{"zone", "east"}, {"rack", "1"}, {"ssd", "true"}}));
  EXPECT_EQ(a.capacity, (model::Capacity{8, 16ULL << 30}));
  EXPECT_TRUE(a.drain);
  const auto& b = remotes.at("b");
  EXPECT_EQ(b.capacity, (model::Capacity{std::nullopt, 17179869184ULL}));  // a number of bytes
  EXPECT_FALSE(b.drain);
  EXPECT_EQ(remotes.at("c").capacity, (model::Capacity{2, std::nullopt}));
  const auto& t = remotes.at("t");
  EXPECT_TRUE(t.labels.empty());
  EXPECT_EQ(t.capacity, model::Capacity{});  // what the host reports
  EXPECT_FALSE(t.drain);
}

TEST(ConfigPlacement, NamedPolicies) {
  const auto r = load(placed);
  ASSERT_TRUE(r.fleet) << all(r);
  const auto& placements = r.fleet->placements;
  ASSERT_EQ(placements.size(), 2U);
  const auto& web = placements.at("web");
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.candidates, (std::vector<std::string>{"a", "b", "c"}));  // sorted
  EXPECT_TRUE(web.selector.empty());
  EXPECT_EQ(web.strategy, model::Strategy::spread);
  EXPECT_EQ(web.max_per_remote, 2);
  EXPECT_EQ(web.anti_affinity, "web");
  EXPECT_EQ(web.where.file, "fleet.yaml");
  EXPECT_EQ(web.where.line, 11);
  EXPECT_EQ(web.where.column, 3);
  const auto& east = placements.at("east");
  EXPECT_EQ(east.name, "east");
  EXPECT_EQ(east.candidates, (std::vector<std::string>{"a", "b"}));  // the remotes labelled zone=east
  EXPECT_EQ(east.selector, (std::map<std::string, std::string>{{"zone", "east"}}));
  EXPECT_EQ(east.strategy, model::Strategy::pack);
  EXPECT_FALSE(east.max_per_remote);
  EXPECT_FALSE(east.anti_affinity);
  EXPECT_EQ(east.where.line, 12);
}

TEST(ConfigPlacement, ContainersWithAPlacement) {
  const auto r = load(placed);
  ASSERT_TRUE(r.fleet) << all(r);
  const auto& containers = r.fleet->containers;

  const auto& web1 = containers.at("web1");
  ASSERT_TRUE(web1.placement);
  EXPECT_EQ(web1.placement->name, "web");  // a copy of the named policy
  EXPECT_EQ(web1.placement->candidates, r.fleet->placements.at("web").candidates);
  EXPECT_EQ(web1.placement->where.line, 11);
  EXPECT_EQ(web1.remote, "");  // the plan chooses it
  EXPECT_EQ(web1.project, "default");
  EXPECT_EQ(web1.image, (model::ImageRef{"", "bb"}));  // on the remote the plan chooses

  const auto& cache1 = containers.at("cache1");
  ASSERT_TRUE(cache1.placement);
  EXPECT_EQ(cache1.placement->name, "");  // inline
  EXPECT_EQ(cache1.placement->candidates, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(cache1.placement->selector, (std::map<std::string, std::string>{{"zone", "east"}}));
  EXPECT_EQ(cache1.placement->strategy, model::Strategy::pack);
  EXPECT_EQ(cache1.placement->where.line, 15);  // the key placement:
  EXPECT_EQ(cache1.placement->where.column, 12);
  EXPECT_EQ(cache1.remote, "");
  EXPECT_EQ(cache1.image, (model::ImageRef{"", "bb"}));
  EXPECT_EQ(cache1.config, (model::ConfigMap{{"limits.memory", "256MiB"}}));

  // Numbers and booleans in a selector match labels as written.
  const auto& fast = containers.at("fast");
  ASSERT_TRUE(fast.placement);
  EXPECT_EQ(fast.placement->candidates, (std::vector<std::string>{"a"}));
  EXPECT_EQ(fast.placement->selector, (std::map<std::string, std::string>{{"rack", "1"}, {"ssd", "true"}}));
  EXPECT_EQ(fast.placement->strategy, model::Strategy::spread);  // the default

  // The project its candidates share; REMOTE:ALIAS keeps its remote.
  const auto& db = containers.at("db");
  ASSERT_TRUE(db.placement);
  EXPECT_EQ(db.placement->candidates, (std::vector<std::string>{"t"}));
  EXPECT_EQ(db.project, "tenant");
  EXPECT_EQ(db.image, (model::ImageRef{"a", "bb"}));

  // Its own project wins; an image entry with a remote keeps it.
  const auto& lab = containers.at("lab");
  ASSERT_TRUE(lab.placement);
  EXPECT_EQ(lab.placement->name, "east");
  EXPECT_EQ(lab.project, "other");
  EXPECT_EQ(lab.image, (model::ImageRef{"t", "base"}));

  const auto& pin = containers.at("pin");
  EXPECT_FALSE(pin.placement);
  EXPECT_EQ(pin.remote, "c");
  EXPECT_EQ(pin.image, (model::ImageRef{"c", "bb"}));

  const auto& old = containers.at("old");
  EXPECT_EQ(old.state, model::DesiredState::absent);
  ASSERT_TRUE(old.placement);
  EXPECT_EQ(old.placement->name, "web");
}

TEST(ConfigPlacement, ServerImagesAndBlockStyle) {
  const auto r = load(R"(version: 1
remotes:
  a: {url: "unix:///a", labels: {example.com/tier: db}}
images:
  deb: {server: "https://images.example.net", alias: debian/12}
placements:
  db:
    candidates:
      labels:
        example.com/tier: db
containers:
  db1:
    placement: db
    image: deb
)");
  ASSERT_TRUE(r.fleet) << all(r);
  const auto& db1 = r.fleet->containers.at("db1");
  ASSERT_TRUE(db1.image);
  EXPECT_EQ(db1.image->remote, "");
  ASSERT_TRUE(db1.image->server);
  EXPECT_EQ(db1.image->server->url, "https://images.example.net");
  ASSERT_TRUE(db1.placement);
  EXPECT_EQ(db1.placement->candidates, (std::vector<std::string>{"a"}));
  EXPECT_EQ(db1.placement->where.line, 7);
  EXPECT_EQ(db1.placement->where.column, 3);
}

// A valid base the error cases extend: three remotes (b in another project), one image, one policy.
constexpr std::string_view head = R"(version: 1
remotes:
  a: {url: "unix:///a", labels: {zone: east}}
  b: {url: "unix:///b", labels: {zone: west, rack: 2}, project: p2}
  c: {url: "unix:///c"}
images:
  bb: {alias: bb}
placements:
  web: {candidates: [a, b]}
containers:
)";  // containers start on line 11

LoadResult load_containers(std::string_view containers) {
  return load(std::string{head} + std::string{containers});
}

TEST(ConfigPlacementErrors, RemoteAndPlacementAreExclusive) {
  const auto r = load_containers("  x: {remote: a, placement: web, image: bb}\n");
  const auto* d = expect_error(r, 11, 18, "containers.x", "remote and placement are mutually exclusive");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("remove one of them"), std::string::npos) << d->detail;
  EXPECT_EQ(error_count(r), 1U) << all(r);
}

TEST(ConfigPlacementErrors, NeedsRemoteOrPlacement) {
  const auto r = load_containers("  x: {image: bb}\n  y: {state: absent}\n");
  const auto* d = expect_error(r, 11, 3, "containers.x", "needs remote: or placement:");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("remote: NAME"), std::string::npos) << d->detail;
  EXPECT_NE(d->detail.find("placement: POLICY"), std::string::npos) << d->detail;
  expect_error(r, 12, 3, "containers.y", "needs remote: or placement:");  // absent too: where to look
  EXPECT_EQ(error_count(r), 2U) << all(r);
}

TEST(ConfigPlacementErrors, UnknownPlacement) {
  auto r = load_containers("  x: {placement: webb, image: bb}\n");
  const auto* d = expect_error(r, 11, 18, "containers.x.placement", "unknown placement 'webb'");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->detail,
            "declare it under placements:, or write the policy here as {candidates: [...]} (known "
            "placements: web)");
  EXPECT_EQ(error_count(r), 1U) << all(r);

  r = load("version: 1\nremotes:\n  a: {url: \"unix:///a\"}\ncontainers:\n  x: {placement: p, image: \"a:bb\"}\n");
  d = expect_error(r, 5, 18, "containers.x.placement", "unknown placement 'p'");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("no placements are declared"), std::string::npos) << d->detail;
}

TEST(ConfigPlacementErrors, UnknownAndRepeatedCandidates) {
  const auto r = load(R"(version: 1
remotes:
  a: {url: "unix:///a"}
placements:
  p: {candidates: [a, zz]}
containers:
  x: {placement: {candidates: [a, a]}, image: "a:bb"}
)");
  const auto* d = expect_error(r, 5, 23, "placements.p.candidates[1]", "unknown remote 'zz'");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->detail, "declare it under remotes: (known remotes: a)");
  expect_error(r, 7, 35, "containers.x.placement.candidates[1]", "'a' is listed twice");
  EXPECT_EQ(error_count(r), 2U) << all(r);
}

TEST(ConfigPlacementErrors, NoRemoteHasTheLabels) {
  const auto r = load_containers("  x: {placement: {candidates: {labels: {zone: north, rack: 2}}}, image: bb}\n");
  const auto* d =
      expect_error(r, 11, 32, "containers.x.placement.candidates.labels", "no remote has labels rack=2, zone=north");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("a: zone=east; b: rack=2, zone=west; c: no labels"), std::string::npos) << d->detail;
  EXPECT_EQ(error_count(r), 1U) << all(r);
}

TEST(ConfigPlacementErrors, LabelsFromTheEnvironmentAreNotEchoed) {
  const auto r = load(R"(version: 1
remotes:
  a: {url: "unix:///a", labels: {zone: "${env:ZONE}"}}
placements:
  p: {candidates: {labels: {zone: "${env:WANTED}"}}}
)",
                      {{"ZONE", "secret-east"}, {"WANTED", "secret-north"}});
  const auto* d = expect_error(r, 5, 20, "placements.p.candidates.labels", "no remote has labels zone=${env:WANTED}");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("a: zone=${env:ZONE}"), std::string::npos) << d->detail;
  EXPECT_EQ(all(r).find("secret"), std::string::npos) << all(r);
}

TEST(ConfigPlacementErrors, CandidatesInDifferentProjects) {
  const auto r = load_containers("  x: {placement: web, image: bb}\n  y: {placement: web, project: p2, image: bb}\n");
  const auto* d = expect_error(r, 11, 7, "containers.x.placement",
                               "the candidates are in different projects: remote 'a' uses project 'default', remote "
                               "'b' uses 'p2'");
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->detail.find("declare project: on the container"), std::string::npos) << d->detail;
  EXPECT_EQ(error_count(r), 1U) << all(r);  // y names its project
}

TEST(ConfigPlacementErrors, CapacityValues) {
  const auto r = load(R"(version: 1
remotes:
  a: {url: "unix:///a", capacity: {memory: 16 GB}}
  b: {url: "unix:///b", capacity: {memory: 1.5GiB}}
  c: {url: "unix:///c", capacity: {memory: 0GiB, cpu: 0}}
  d: {url: "unix:///d", capacity: {}}
  e: {url: "unix:///e", capacity: {memory: 99999999999999999999}}
  f: {url: "unix:///f", capacity: {memory: 0, cpu: 2.5, disk: 1}}
  g: {url: "unix:///g", capacity: {memory: 4611686018427387905, cpu: 2000000}}
  h: {url: "unix:///h", capacity: {memory: 7EiB}}
)");
  const auto* d = expect_error(r, 3, 44, "remotes.a.capacity.memory", "invalid size '16 GB'");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->detail.rfind("expected a size such as 16GiB, 512MiB or a number of bytes", 0), 0U) << d->detail;
  expect_error(r, 4, 44, "remotes.b.capacity.memory", "invalid size '1.5GiB'");
  expect_error(r, 5, 44, "remotes.c.capacity.memory", "the memory capacity must be at least 1 byte (got '0GiB')");
  expect_error(r, 5, 55, "remotes.c.capacity.cpu", "must be at least 1 (got 0)");
  expect_error(r, 6, 35, "remotes.d.capacity", "needs at least one of: cpu, memory");
  expect_error(r, 7, 44, "remotes.e.capacity.memory", "invalid size '99999999999999999999'");
  expect_error(r, 8, 44, "remotes.f.capacity.memory", "must be at least 1 (got 0)");
  expect_error(r, 8, 52, "remotes.f.capacity.cpu", "expected an integer, got a fractional number");
  expect_error(r, 8, 57, "remotes.f.capacity.disk", "unknown key 'disk' (expected one of: cpu, memory)");
  // Sums of limits against a capacity must not overflow: no host comes near these.
  expect_error(r, 9, 44, "remotes.g.capacity.memory", "the memory capacity '4611686018427387905' is too large");
  expect_error(r, 9, 70, "remotes.g.capacity.cpu", "the CPU capacity '2000000' is too large");
  expect_error(r, 10, 44, "remotes.h.capacity.memory", "the memory capacity '7EiB' is too large");
  EXPECT_EQ(error_count(r), 12U) << all(r);
}

TEST(ConfigPlacementErrors, LabelsAndDrain) {
  const auto r = load(R"(version: 1
remotes:
  a: {url: "unix:///a", labels: {-bad: x, ok: [1]}, drain: yes}
)");
  expect_error(r, 3, 34, "remotes.a.labels.-bad",
               "invalid label name '-bad': must start with an ASCII letter or digit");
  expect_error(r, 3, 47, "remotes.a.labels.ok", "got a list");
  expect_error(r, 3, 60, "remotes.a.drain", "expected a boolean (true or false), got a string");
  EXPECT_EQ(error_count(r), 3U) << all(r);
}

TEST(ConfigPlacementErrors, PolicyShape) {
  const auto r = load(R"(version: 1
remotes:
  a: {url: "unix:///a"}
placements:
  p1: {strategy: pack}
  p2: {candidates: [], strategy: random}
  p3: {candidates: {labels: {}}, max_per_remote: 0}
  p4: {candidates: {zone: east}}
  p5: {candidates: a, anti_affinity: "web server"}
  bad name: {candidates: [a]}
containers:
  x: {placement: [a], image: "a:bb"}
  y: {placement: {candidates: [a], spread: true}, image: "a:bb"}
  z: {placement: "no/such", image: "a:bb"}
)");
  expect_error(r, 5, 3, "placements.p1", "missing required key 'candidates'");
  expect_error(r, 6, 20, "placements.p2.candidates", "must not be an empty list");
  expect_error(r, 6, 34, "placements.p2.strategy", "invalid value 'random' (expected one of: spread, pack)");
  expect_error(r, 7, 29, "placements.p3.candidates.labels", "must not be an empty map");
  expect_error(r, 7, 50, "placements.p3.max_per_remote", "must be at least 1 (got 0)");
  expect_error(r, 8, 21, "placements.p4.candidates.zone", "unknown key 'zone' (expected one of: labels)");
  expect_error(r, 8, 8, "placements.p4.candidates", "missing required key 'labels'");
  expect_error(r, 9, 20, "placements.p5.candidates", "expected a list or a map, got a string");
  expect_error(r, 9, 38, "placements.p5.anti_affinity", "invalid anti-affinity group 'web server'");
  expect_error(r, 10, 3, "placements.bad name", "invalid placement name 'bad name'");
  expect_error(r, 12, 18, "containers.x.placement", "expected a string or a map, got a list");
  expect_error(r, 13, 36, "containers.y.placement.spread", "unknown key 'spread'");
  expect_error(r, 14, 18, "containers.z.placement", "invalid placement name 'no/such'");
  EXPECT_EQ(error_count(r), 13U) << all(r);
}

TEST(ConfigCluster, UrlsTargetAndMemberCandidates) {
  const auto r = load(R"(version: 1
remotes:
  prod: {urls: ["https://10.0.0.1:8443", "https://10.0.0.2:8443"]}
  one: {url: "https://10.0.0.9:8443"}
containers:
  a: {remote: prod, image: "prod:bb", target: m2}
  b: {remote: prod, image: "prod:bb", target: "@fast"}
  c: {placement: {candidates: ["prod/m1", "prod/*", one]}, image: "prod:bb"}
)");
  ASSERT_TRUE(r.fleet) << all(r);
  const auto& prod = r.fleet->remotes.at("prod");
  EXPECT_EQ(prod.url, "https://10.0.0.1:8443");
  EXPECT_EQ(prod.urls, (std::vector<std::string>{"https://10.0.0.1:8443", "https://10.0.0.2:8443"}));
  EXPECT_EQ(r.fleet->remotes.at("one").urls, (std::vector<std::string>{"https://10.0.0.9:8443"}));
  EXPECT_EQ(r.fleet->containers.at("a").target, "m2");
  EXPECT_EQ(r.fleet->containers.at("b").target, "@fast");
  EXPECT_EQ(r.fleet->containers.at("c").placement->candidates, (std::vector<std::string>{"one", "prod/*", "prod/m1"}));
}

TEST(ConfigClusterErrors, UrlAndUrlsTargetAndPlacementUnknownClusterRemote) {
  const auto r = load(R"(version: 1
remotes:
  prod: {url: "https://10.0.0.1:8443", urls: ["https://10.0.0.2:8443"]}
containers:
  a: {placement: {candidates: ["prod/m1"]}, image: "prod:bb", target: m2}
  b: {placement: {candidates: ["nope/m1"]}, image: "prod:bb"}
)");
  EXPECT_FALSE(r.fleet);
  const std::string text = all(r);
  EXPECT_NE(text.find("url and urls are mutually exclusive"), std::string::npos) << text;
  EXPECT_NE(text.find("target and placement are mutually exclusive"), std::string::npos) << text;
  EXPECT_NE(text.find("unknown remote 'nope'"), std::string::npos) << text;
}

}  // namespace
}  // namespace berth::config
