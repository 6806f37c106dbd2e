// files: and exec: — what the fleet file accepts, the digests berth records on an instance, and
// when a plan pushes a file or runs a command again. tests/integration/files_exec_test.sh does
// the same against a real host.

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "engine/config/load.hpp"
#include "engine/model/live_json.hpp"
#include "engine/model/provision.hpp"
#include "engine/plan/plan.hpp"
#include "engine/plan/plan_file.hpp"
#include "engine/plan/render.hpp"
#include "engine/util/printable.hpp"

namespace berth::plan {
namespace {

config::EnvLookup env() {
  return [](std::string_view name) -> std::optional<std::string> {
    if (name == "TOKEN") return "declared-secret-value";
    return std::nullopt;
  };
}

config::LoadResult load_result(const std::string& text, const std::string& path = "fleet.yaml") {
  return config::load_fleet_text(text, path, env());
}

model::Fleet load(const std::string& text) {
  auto loaded = load_result(text);
  if (!loaded.fleet) throw std::runtime_error(diag::format(loaded.diagnostics));
  return std::move(*loaded.fleet);
}

std::string fleet(const std::string& container_extra, const std::string& state = "running") {
  return "version: 1\nremotes: {h: {url: \"unix:///s\"}}\ncontainers:\n  c:\n    remote: h\n    image: \"h:bb\"\n"
         "    state: " +
         state + "\n" + container_extra;
}

const std::string files_and_exec =
    "    files:\n"
    "      /etc/motd: {content: \"hello\\n\", mode: \"0644\"}\n"
    "      /root/token: {content: \"${env:TOKEN}\", mode: 0600}\n"
    "    exec:\n"
    "      init: {command: [sh, -c, \"echo ready\"], when: create}\n"
    "      reload: {command: [sh, -c, \"kill -HUP 1\"], when: change, watch: [/etc/motd]}\n";

model::LiveState live(nlohmann::json config, int status_code = 103) {
  return model::live_state_from_json({{"remotes",
                                       {{"h",
                                         {{"status", "ok"},
                                          {"instances",
                                           {{{"name", "c"},
                                             {"status_code", status_code},
                                             {"config", std::move(config)},
                                             {"devices", nlohmann::json::object()},
                                             {"profiles", {"default"}}}}}}}}}});
}

model::LiveState empty_live() {
  return model::live_state_from_json(
      {{"remotes", {{"h", {{"status", "ok"}, {"instances", nlohmann::json::array()}}}}}});
}

std::vector<std::string> ids(const Plan& plan) {
  std::vector<std::string> out;
  for (const auto& a : plan.actions) out.push_back(a.id);
  return out;
}

bool has_error(const config::LoadResult& r, const std::string& text) {
  for (const auto& d : r.diagnostics.items()) {
    if (d.severity == diag::Severity::error && (d.summary + " " + d.detail).find(text) != std::string::npos)
      return true;
  }
  return false;
}

TEST(FilesAndExecConfig, AreLoadedInFileOrder) {
  auto f = load(fleet(files_and_exec + "      after: {command: [\"true\"], when: change}\n"
                                       "      before: {command: [\"true\"]}\n"));
  const auto& c = f.containers.at("c");
  ASSERT_EQ(c.files.size(), 2u);
  EXPECT_EQ(c.files.at("/etc/motd").content, "hello\n");
  EXPECT_EQ(c.files.at("/etc/motd").mode, 0644);
  EXPECT_EQ(c.files.at("/root/token").mode, 0600);
  EXPECT_TRUE(c.files.at("/root/token").sensitive);
  EXPECT_FALSE(c.files.at("/etc/motd").sensitive);
  ASSERT_EQ(c.exec.size(), 4u);
  EXPECT_EQ(c.exec[0].name, "init");
  EXPECT_EQ(c.exec[1].name, "reload");
  EXPECT_EQ(c.exec[2].name, "after");  // file order, not sorted
  EXPECT_EQ(c.exec[3].name, "before");
  EXPECT_EQ(c.exec[3].when, model::ExecWhen::create);  // the default
  EXPECT_EQ(c.exec[1].watch, std::vector<std::string>{"/etc/motd"});
}

TEST(FilesAndExecConfig, SourceIsReadRelativeToTheFleetFile) {
  const auto dir = std::filesystem::temp_directory_path() / ("berth-provision-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "conf");
  std::ofstream(dir / "conf" / "app.conf") << "key=value\n";
  auto loaded =
      load_result(fleet("    files:\n      /etc/app.conf: {source: ./conf/app.conf}\n"), (dir / "fleet.yaml").string());
  ASSERT_TRUE(loaded.fleet) << diag::format(loaded.diagnostics);
  EXPECT_EQ(loaded.fleet->containers.at("c").files.at("/etc/app.conf").content, "key=value\n");
  EXPECT_EQ(loaded.fleet->containers.at("c").files.at("/etc/app.conf").source, "./conf/app.conf");

  auto missing =
      load_result(fleet("    files:\n      /etc/app.conf: {source: ./nope.conf}\n"), (dir / "fleet.yaml").string());
  EXPECT_FALSE(missing.fleet);
  EXPECT_TRUE(has_error(missing, "no such file")) << diag::format(missing.diagnostics);
  std::filesystem::remove_all(dir);
}

TEST(FilesAndExecConfig, BadEntriesAreClearErrors) {
  EXPECT_TRUE(
      has_error(load_result(fleet("    files:\n      /etc/x: {mode: \"0644\"}\n")), "needs content: or source:"));
  EXPECT_TRUE(
      has_error(load_result(fleet("    files:\n      /etc/x: {content: a, source: ./b}\n")), "mutually exclusive"));
  EXPECT_FALSE(load_result(fleet("    files:\n      etc/x: {content: a}\n")).fleet);      // not absolute
  EXPECT_FALSE(load_result(fleet("    files:\n      /etc/../x: {content: a}\n")).fleet);  // ..
  EXPECT_FALSE(load_result(fleet("    files:\n      /etc/x/: {content: a}\n")).fleet);    // trailing /
  EXPECT_FALSE(load_result(fleet("    files:\n      /etc/x: {content: a, mode: \"0999\"}\n")).fleet);
  EXPECT_FALSE(load_result(fleet("    files:\n      /etc/x: {content: a, uid: -1}\n")).fleet);
  EXPECT_FALSE(load_result(fleet("    exec:\n      x: {command: []}\n")).fleet);
  EXPECT_FALSE(load_result(fleet("    exec:\n      x: {when: create}\n")).fleet);
  EXPECT_TRUE(
      has_error(load_result(fleet("    exec:\n      x: {command: [\"true\"], when: change, watch: [/etc/x]}\n")),
                "is not under this container's files:"));
  EXPECT_TRUE(has_error(
      load_result(fleet(
          "    files:\n      /etc/x: {content: a}\n    exec:\n      x: {command: [\"true\"], watch: [/etc/x]}\n")),
      "watch: applies only to when: change"));
  EXPECT_TRUE(has_error(load_result(fleet("    exec:\n      x: {command: [\"true\"]}\n", "stopped")),
                        "commands run only in a running container"));
}

TEST(FilesAndExecDigests, CoverContentModeAndOwner) {
  model::FileSpec f{"/etc/motd", "hello\n", std::nullopt, 0644, 0, 0, false, {}};
  const auto d = model::file_digest(f, std::nullopt);
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->starts_with("sha256:"));
  auto other = f;
  other.content = "hello!\n";
  EXPECT_NE(model::file_digest(other, std::nullopt), d);
  other = f;
  other.mode = 0600;
  EXPECT_NE(model::file_digest(other, std::nullopt), d);
  other = f;
  other.uid = 1000;
  EXPECT_NE(model::file_digest(other, std::nullopt), d);

  auto secret = f;
  secret.sensitive = true;
  EXPECT_FALSE(model::file_digest(secret, std::nullopt)) << "a secret has no digest without the key";
  const auto keyed = model::file_digest(secret, std::string(64, 'a'));
  ASSERT_TRUE(keyed);
  EXPECT_TRUE(keyed->starts_with("hmac-sha256:"));
  EXPECT_NE(model::file_digest(secret, std::string(64, 'b')), keyed) << "the key matters";
  EXPECT_EQ(keyed->find("hello"), std::string::npos);
}

TEST(FilesAndExecDigests, RecordRoundTripsAndRefusesDamage) {
  const model::DigestRecord r{{"/etc/motd", "sha256:ab"}, {"/root/x", "unknown"}};
  EXPECT_EQ(model::parse_digest_record(model::record_text(r)), r);
  EXPECT_FALSE(model::parse_digest_record("[]"));
  EXPECT_FALSE(model::parse_digest_record(R"({"a": 1})"));
  EXPECT_FALSE(model::parse_digest_record("not json"));
}

TEST(FilesAndExecPlan, ANewContainerIsCreatedStoppedPushedStartedThenRuns) {
  auto f = load(fleet(files_and_exec));
  f.digest_key = std::string(64, 'k');
  const Plan plan = compute_plan(f, empty_live(), {});
  EXPECT_EQ(ids(plan),
            (std::vector<std::string>{"launch h:c", "push h:c", "start h:c", "exec h:c init", "exec h:c reload"}));
  const auto& launch = plan.actions[0];
  EXPECT_EQ(launch.target_state, model::DesiredState::stopped);
  EXPECT_EQ(launch.config.at(std::string{model::exec_key}), R"({"init":"pending"})");
  EXPECT_EQ(plan.actions[1].files.size(), 2u);
  EXPECT_EQ(plan.actions[2].depends_on, std::vector<std::string>{"push h:c"});
  EXPECT_EQ(plan.actions[3].depends_on, std::vector<std::string>{"start h:c"});
  EXPECT_EQ(plan.actions[4].depends_on, std::vector<std::string>{"exec h:c init"});
}

TEST(FilesAndExecPlan, NothingToDoOnceRecorded) {
  auto f = load(fleet(files_and_exec));
  f.digest_key = std::string(64, 'k');
  const auto& c = f.containers.at("c");
  model::DigestRecord files;
  for (const auto& [p, file] : c.files) files[p] = *model::file_digest(file, f.digest_key);
  const model::DigestRecord execs{{"init", *model::exec_digest(c.exec[0], c, f.digest_key)},
                                  {"reload", *model::exec_digest(c.exec[1], c, f.digest_key)}};
  nlohmann::json config = {{"user.berth.fleet", "default"},
                           {"user.berth.managed", R"({"config":[],"devices":[],"profiles":[]})"},
                           {"user.berth.files", model::record_text(files)},
                           {"user.berth.exec", model::record_text(execs)}};
  EXPECT_EQ(ids(compute_plan(f, live(config), {})), std::vector<std::string>{});

  // Without the key the secret file's digest is unknown: it is pushed again, every time.
  auto keyless = f;
  keyless.digest_key.reset();
  const Plan again = compute_plan(keyless, live(config), {});
  ASSERT_EQ(ids(again), (std::vector<std::string>{"push h:c"}));
  ASSERT_EQ(again.actions[0].files.size(), 1u);
  EXPECT_EQ(again.actions[0].files[0].path, "/root/token");

  // A changed watched file: pushed, and only the command watching it runs; init never again.
  auto changed = load(fleet(files_and_exec));
  changed.digest_key = f.digest_key;
  changed.containers.at("c").files.at("/etc/motd").content = "bye\n";
  const Plan plan = compute_plan(changed, live(config), {});
  EXPECT_EQ(ids(plan), (std::vector<std::string>{"push h:c", "exec h:c reload"}));
  EXPECT_EQ(plan.actions[1].depends_on, std::vector<std::string>{"push h:c"});
}

TEST(FilesAndExecPlan, CreateCommandsRunOnlyInContainersBerthCreated) {
  auto f = load(fleet("    exec:\n      init: {command: [\"true\"], when: create}\n"));
  nlohmann::json config = {{"user.berth.fleet", "default"},
                           {"user.berth.managed", R"({"config":[],"devices":[],"profiles":[]})"}};
  Plan plan = compute_plan(f, live(config), {});
  EXPECT_TRUE(plan.actions.empty());
  ASSERT_FALSE(plan.diagnostics.empty());
  EXPECT_NE(plan.diagnostics.items()[0].summary.find("does not run"), std::string::npos);

  config["user.berth.exec"] = R"({"init":"pending"})";  // created by berth, interrupted before it ran
  EXPECT_EQ(ids(compute_plan(f, live(config), {})), std::vector<std::string>{"exec h:c init"});
  config["user.berth.exec"] = R"({"init":"sha256:whatever"})";  // ran (with another command, even)
  EXPECT_TRUE(compute_plan(f, live(config), {}).actions.empty());
}

TEST(FilesAndExecPlan, CommandsOfAStoppedContainerWaitForItsStart) {
  auto f = load(fleet("    exec:\n      go: {command: [\"true\"], when: change}\n"));
  nlohmann::json config = {{"user.berth.fleet", "default"},
                           {"user.berth.managed", R"({"config":[],"devices":[],"profiles":[]})"}};
  const Plan plan = compute_plan(f, live(config, 102), {});
  EXPECT_EQ(ids(plan), (std::vector<std::string>{"start h:c", "exec h:c go"}));
  EXPECT_EQ(plan.actions[1].depends_on, std::vector<std::string>{"start h:c"});
}

TEST(FilesAndExecPlan, SavedPlanKeepsNoContentAndRestoresIt) {
  auto f = load(fleet(files_and_exec));
  f.digest_key = std::string(64, 'k');
  Plan plan = compute_plan(f, empty_live(), {});
  const std::string text = serialize(PlanFile{plan, "now", "test"});
  EXPECT_EQ(text.find("declared-secret-value"), std::string::npos);
  EXPECT_EQ(text.find("hello"), std::string::npos) << "file content is not kept in a saved plan";
  auto parsed = parse_plan_file(text, "saved.plan");
  ASSERT_TRUE(parsed.file) << diag::format(parsed.diagnostics);
  Plan saved = parsed.file->plan;
  EXPECT_TRUE(restore_contents(saved, f).empty());
  const auto push = std::find_if(saved.actions.begin(), saved.actions.end(),
                                 [](const Action& a) { return a.kind == ActionKind::push; });
  ASSERT_NE(push, saved.actions.end());
  EXPECT_EQ(push->files[0].content, "hello\n");

  auto changed = f;
  changed.containers.at("c").files.at("/etc/motd").content = "changed\n";
  Plan stale = parsed.file->plan;
  const auto problems = restore_contents(stale, changed);
  ASSERT_EQ(problems.size(), 2u);  // the file, and the command that watches it
  EXPECT_NE(problems[0].find("/etc/motd differs from when the plan was made"), std::string::npos);
  EXPECT_NE(problems[1].find("exec h:c reload: the command differs"), std::string::npos);

  auto keyless = f;
  keyless.digest_key = std::string(64, 'z');
  Plan other_key = parsed.file->plan;
  EXPECT_FALSE(restore_contents(other_key, keyless).empty()) << "a secret checked against another key";
}

TEST(FilesAndExecPlan, ASavedCommandWithASecretAndNoDigestIsRefused) {
  auto f =
      load(fleet("    exec:\n      go: {command: [\"true\"], when: change, environment: {T: \"${env:TOKEN}\"}}\n"));
  Plan plan = compute_plan(f, empty_live(), {});  // no digest key: the command's digest is unknown
  auto parsed = parse_plan_file(serialize(PlanFile{plan, "now", "test"}), "saved.plan");
  ASSERT_TRUE(parsed.file) << diag::format(parsed.diagnostics);
  const auto problems = restore_contents(parsed.file->plan, f);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("holds a secret and has no digest"), std::string::npos) << problems[0];
}

TEST(FilesAndExecPlan, TextShowsPushAndExecWithoutSecrets) {
  auto f = load(fleet(files_and_exec));
  f.digest_key = std::string(64, 'k');
  const std::string text = render_text(compute_plan(f, empty_live(), {}), TextStyle{false});
  EXPECT_NE(text.find("! exec      h:c init"), std::string::npos) << text;
  EXPECT_NE(text.find("~ push      h:c"), std::string::npos) << text;
  EXPECT_NE(text.find("/root/token: (not pushed by berth) -> hmac-sha256:"), std::string::npos) << text;
  EXPECT_NE(text.find("mode 0600, owner 0:0, content (sensitive)"), std::string::npos) << text;
  EXPECT_NE(text.find("command: \"sh\" \"-c\" \"echo ready\""), std::string::npos) << text;
  EXPECT_EQ(text.find("declared-secret-value"), std::string::npos);
  const std::string json = util::json_text(to_json(compute_plan(f, empty_live(), {})));
  EXPECT_EQ(json.find("declared-secret-value"), std::string::npos);
}

}  // namespace
}  // namespace berth::plan

namespace berth::plan {
namespace {

TEST(FilesAndExecPlan, ANewFrozenContainerWithFilesIsFrozenAfterThePush) {
  auto f = load(fleet("    files:\n      /etc/motd: {content: hi}\n", "frozen"));
  const Plan plan = compute_plan(f, empty_live(), {});
  EXPECT_EQ(ids(plan), (std::vector<std::string>{"launch h:c", "push h:c", "start h:c", "freeze h:c"}));
}

TEST(FilesAndExecPlan, SnapshotsOfANewContainerAreTakenOnceItIsProvisioned) {
  auto f = load(fleet(files_and_exec + "    snapshots: [base]\n"));
  const Plan plan = compute_plan(f, empty_live(), {});
  ASSERT_FALSE(plan.actions.empty());
  const auto& snap = plan.actions.back();
  EXPECT_EQ(snap.id, "snapshot h:c/base");
  EXPECT_EQ(snap.depends_on, std::vector<std::string>{"exec h:c reload"});
}

TEST(FilesAndExecConfig, ASecretCannotBePartOfACommand) {
  EXPECT_TRUE(has_error(load_result(fleet("    exec:\n      x: {command: [sh, -c, \"echo ${env:TOKEN}\"]}\n")),
                        "cannot be part of a command"));
  EXPECT_TRUE(has_error(load_result(fleet("    exec:\n      x: {command: [\"true\"], cwd: \"/${env:TOKEN}\"}\n")),
                        "cannot be part of a command"));
}

TEST(FilesAndExecConfig, EachVariableInATextIsASecretOfItsOwn) {
  auto f = load(fleet("    files:\n      /etc/app.env: {content: \"TOKEN=${env:TOKEN}\\n\"}\n"));
  bool whole = false;
  bool own = false;
  for (const auto& s : f.secrets) {
    whole = whole || s.value == "TOKEN=declared-secret-value\n";
    own = own || s.value == "declared-secret-value";
  }
  EXPECT_TRUE(whole);
  EXPECT_TRUE(own) << "a command that prints only the variable's value must be masked too";
}

}  // namespace
}  // namespace berth::plan
