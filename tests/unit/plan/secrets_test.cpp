// Secrets in plans: values from ${env:...} or listed under sensitive: are masked on both sides of
// every diff, in text, JSON, markdown and saved plans, and come back from the environment when a
// saved plan is applied. The Redactor is the net under everything else that is printed or stored.

#include <gtest/gtest.h>

#include "engine/config/load.hpp"
#include "engine/model/live_json.hpp"
#include "engine/plan/plan.hpp"
#include "engine/plan/plan_file.hpp"
#include "engine/plan/render.hpp"
#include "engine/util/redact.hpp"

namespace berth::plan {
namespace {

// Quotes, a backslash and a slash: the characters that change between plain text and JSON.
const std::string kToken = R"(tok"en\with/odd-chars)";
const std::string kListed = "listed-secret-value";
const std::string kOnHost = "old-secret-on-host";

config::EnvLookup env_with(std::string token) {
  return [token = std::move(token)](std::string_view name) -> std::optional<std::string> {
    if (name == "API_TOKEN") return token;
    if (name == "H1_URL") return std::string{"https://127.0.0.1:8443"};
    return std::nullopt;
  };
}

constexpr const char* kFleet = R"(version: 1
remotes:
  a: {url: "${env:H1_URL}"}
images:
  bb: {remote: a, alias: bb}
sensitive: [user.listed]
containers:
  web:
    remote: a
    image: bb
    config:
      environment.API_TOKEN: "${env:API_TOKEN}"
      user.listed: listed-secret-value
      user.plain: visible
  fresh:
    remote: a
    image: bb
    config: {environment.API_TOKEN: "${env:API_TOKEN}"}
)";

model::Fleet load(const std::string& token) {
  auto loaded = config::load_fleet_text(kFleet, "fleet.yaml", env_with(token));
  if (!loaded.fleet) throw std::runtime_error(diag::format(loaded.diagnostics));
  return std::move(*loaded.fleet);
}

model::LiveState live() {
  return model::live_state_from_json(nlohmann::json::parse(R"({"remotes": {"a": {"status": "ok", "instances": [
    {"name": "web", "status_code": 103,
     "config": {"environment.API_TOKEN": "old-secret-on-host", "user.listed": "old-listed", "user.plain": "old",
                "user.berth.fleet": "default"}}]}}})"));
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The plain and the JSON-escaped form of a value.
void expect_absent(const std::string& text, const std::string& secret, const std::string& where) {
  const std::string dumped = nlohmann::json(secret).dump();
  EXPECT_FALSE(contains(text, secret)) << where << " holds a secret";
  EXPECT_FALSE(contains(text, dumped.substr(1, dumped.size() - 2))) << where << " holds a JSON-escaped secret";
}

TEST(Secrets, TheLoaderMarksEnvAndListedKeysSensitive) {
  const auto fleet = load(kToken);
  const auto& web = fleet.containers.at("web");
  EXPECT_EQ(web.sensitive, (std::set<std::string>{"config.environment.API_TOKEN", "config.user.listed"}));
  EXPECT_EQ(web.config.at("environment.API_TOKEN"), kToken) << "the container still gets the value";
  bool token = false;
  bool url = false;
  for (const auto& s : fleet.secrets) {
    if (s.value == kToken) token = s.shown == "(sensitive)";
    if (s.value == "https://127.0.0.1:8443") url = s.shown == "${env:H1_URL}";
  }
  EXPECT_TRUE(token) << "a config value from the environment shows as (sensitive)";
  EXPECT_TRUE(url) << "any other value from the environment shows as its variable";
}

TEST(Secrets, PlansMaskBothSidesInTextAndJson) {
  const auto fleet = load(kToken);
  const auto plan = compute_plan(fleet, live(), {});
  const std::string text = render_text(plan, {});
  const std::string json = to_json(plan).dump();
  const std::string markdown = render_markdown(plan);
  for (const auto& [out, where] : {std::pair{text, "text"}, std::pair{json, "JSON"}, std::pair{markdown, "markdown"}}) {
    expect_absent(out, kToken, where);
    expect_absent(out, kListed, where);
    expect_absent(out, kOnHost, where);
    expect_absent(out, "old-listed", where);
    EXPECT_TRUE(contains(out, "(sensitive)")) << where;
    EXPECT_TRUE(contains(out, "visible")) << where << ": what is not sensitive is still shown";
  }
  // In memory the plan holds the real values: the executor needs them.
  const auto* update = &plan.actions.front();
  for (const auto& a : plan.actions) {
    if (a.id == "update a:web") update = &a;
  }
  ASSERT_EQ(update->id, "update a:web");
  bool real = false;
  for (const auto& c : update->changes) real = real || (c.sensitive && c.after == kToken);
  EXPECT_TRUE(real);
  const auto values = secret_values(plan);
  EXPECT_NE(std::find(values.begin(), values.end(), kOnHost), values.end()) << "the host's side is a secret too";
}

TEST(Secrets, SavedPlansKeepDigestsAndTakeTheValuesFromTheEnvironment) {
  const auto fleet = load(kToken);
  const PlanFile file{compute_plan(fleet, live(), {}), "2026-12-02T00:00:00Z", "test"};
  const std::string saved = serialize(file);
  expect_absent(saved, kToken, "the saved plan");
  expect_absent(saved, kListed, "the saved plan");
  expect_absent(saved, kOnHost, "the saved plan");
  EXPECT_TRUE(contains(saved, "scrypt$"));

  auto parsed = parse_plan_file(saved, "p.plan");
  ASSERT_TRUE(parsed.file.has_value()) << diag::format(parsed.diagnostics);
  auto plan = parsed.file->plan;
  EXPECT_TRUE(restore_secrets(plan, fleet).empty());
  for (const auto& a : plan.actions) {
    if (a.id == "launch a:fresh") EXPECT_EQ(a.config.at("environment.API_TOKEN"), kToken);
    if (a.id != "update a:web") continue;
    for (const auto& c : a.changes) {
      if (c.path == "config.environment.API_TOKEN") EXPECT_EQ(c.after, kToken);
    }
  }

  // The environment changed since: refused, naming the action and the key, never the value.
  auto again = parse_plan_file(saved, "p.plan").file->plan;
  const auto problems = restore_secrets(again, load("another-token"));
  ASSERT_FALSE(problems.empty());
  EXPECT_TRUE(contains(problems.front(), "config.environment.API_TOKEN")) << problems.front();
  for (const auto& p : problems) expect_absent(p, "another-token", "a problem");
}

TEST(Secrets, ASavedPlanWithoutItsDigestsIsRefused) {
  const auto fleet = load(kToken);
  const PlanFile file{compute_plan(fleet, live(), {}), "2026-12-02T00:00:00Z", "test"};
  auto j = nlohmann::json::parse(serialize(file));
  for (auto& a : j["plan"]["actions"]) a["spec"].erase("secrets");
  auto plan = parse_plan_file(j.dump(), "p.plan").file->plan;
  EXPECT_FALSE(restore_secrets(plan, fleet).empty()) << "a placeholder must never reach a host";
}

TEST(Redactor, ScrubsPlainAndJsonEscapedFormsLongestFirst) {
  util::Redactor r;
  r.add(kToken, "(sensitive)");
  r.add("https://10.0.0.1:8443", "${env:URL}");
  r.add("abc", "(sensitive)");  // too short to scrub from free text
  const std::string escaped = nlohmann::json(kToken).dump();
  EXPECT_EQ(r.apply("error: " + kToken + " rejected"), "error: (sensitive) rejected");
  EXPECT_EQ(r.apply("{\"v\":" + escaped + "}"), "{\"v\":\"(sensitive)\"}");
  EXPECT_EQ(r.apply("cannot connect to https://10.0.0.1:8443/1.0"), "cannot connect to ${env:URL}/1.0");
  EXPECT_EQ(r.apply("abc"), "abc");
  EXPECT_EQ(r.apply(kToken + kToken), "(sensitive)(sensitive)");
}

}  // namespace
}  // namespace berth::plan
