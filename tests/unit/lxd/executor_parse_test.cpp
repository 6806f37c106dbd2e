// Pure parts of the executor: progress strings, operation objects, migration bodies, move verification.

#include <gtest/gtest.h>

#include "providers/lxd/instance_api.hpp"
#include "providers/lxd/migration.hpp"
#include "providers/lxd/operations.hpp"

namespace berth::lxd {
namespace {

// An instance as a daemon would send it (named "c" unless the JSON says otherwise), parsed.
wire::Instance instance(nlohmann::json j) {
  if (!j.contains("name")) j["name"] = "c";
  auto parsed = wire::parse_instance(j);
  EXPECT_TRUE(parsed) << (parsed ? "" : parsed.error().message);
  return parsed ? *parsed : wire::Instance{};
}

TEST(ExecutorProgress, ParsesLxdByteSizes) {
  EXPECT_DOUBLE_EQ(*parse_byte_size("12.34MB"), 12.34e6);
  EXPECT_DOUBLE_EQ(*parse_byte_size("512B"), 512.0);
  EXPECT_DOUBLE_EQ(*parse_byte_size("1.5GB"), 1.5e9);
  EXPECT_DOUBLE_EQ(*parse_byte_size("3kB"), 3000.0);
  EXPECT_FALSE(parse_byte_size("fast"));
  EXPECT_FALSE(parse_byte_size("12XB"));
}

TEST(ExecutorProgress, ReadsBytesAndRateOfATransfer) {
  const auto p = parse_progress_text("m1/s1: 283.63MB (20.16MB/s)");
  EXPECT_EQ(p.bytes, 283630000U);
  ASSERT_TRUE(p.bytes_per_second);
  EXPECT_DOUBLE_EQ(*p.bytes_per_second, 20.16e6);
  EXPECT_FALSE(p.percent);
}

TEST(ExecutorProgress, ReadsPercentAndRateOfAnUnpack) {
  const auto p = parse_progress_text("Unpack: 45% (15.99MB/s)");
  EXPECT_EQ(p.percent, 45);
  EXPECT_FALSE(p.bytes);
  EXPECT_DOUBLE_EQ(*p.bytes_per_second, 15.99e6);
}

TEST(ExecutorProgress, FindsTheProgressKeyInOperationMetadata) {
  EXPECT_FALSE(progress_from_metadata(nlohmann::json::object()));
  EXPECT_FALSE(progress_from_metadata(nullptr));
  const auto fs = progress_from_metadata({{"control", "x"}, {"fs_progress", "c1: 1.00MB (1.00MB/s)"}});
  ASSERT_TRUE(fs);
  EXPECT_EQ(fs->bytes, 1000000U);
  const auto dl = progress_from_metadata({{"download_progress", "rootfs: 10% (2.00MB/s)"}});
  ASSERT_TRUE(dl);
  EXPECT_EQ(dl->percent, 10);
  EXPECT_TRUE(progress_from_metadata({{"create_instance_from_image_unpack_progress", "Unpack: 1% (1.00kB/s)"}}));
}

TEST(ExecutorOperations, ParsesAnOperationAndItsId) {
  const nlohmann::json op = {{"id", "abc"},
                             {"status", "Failure"},
                             {"status_code", 400},
                             {"err", "boom"},
                             {"metadata", {{"fs_progress", "x"}}}};
  const auto parsed = wire::parse_operation(op);
  ASSERT_TRUE(parsed);
  EXPECT_TRUE(parsed->is_final());
  EXPECT_FALSE(parsed->succeeded());
  EXPECT_EQ(parsed->err, "boom");
  EXPECT_FALSE(wire::parse_operation(nlohmann::json{{"id", "x"}}));
  EXPECT_EQ(operation_id("/1.0/operations/1234-5"), "1234-5");
  EXPECT_EQ(operation_id("https://h:8443/1.0/operations/uuid"), "uuid");
  // A cluster member that forwarded the request adds a query.
  EXPECT_EQ(operation_id("/1.0/operations/uuid?project=default"), "uuid");
  EXPECT_EQ(operation_id("/1.0/operations/uuid/?target=m2"), "uuid");
  EXPECT_TRUE(is_cancelled(cancelled_error("waiting")));
  EXPECT_FALSE(is_cancelled(make_error(ErrorKind::rejected, "no")));
}

TEST(ExecutorMigration, SourceRequestAlwaysSaysLiveFalse) {
  const auto body = migration_source_request("", true);
  ASSERT_TRUE(body.contains("live"));  // a missing `live` means true on an LXD source
  EXPECT_EQ(body["live"], false);
  EXPECT_EQ(body["migration"], true);
  EXPECT_EQ(body["instance_only"], false);
  EXPECT_EQ(migration_source_request("c2", false)["instance_only"], true);
  EXPECT_EQ(migration_source_request("c2", false)["name"], "c2");
}

TEST(ExecutorMigration, CopyDropsVolatileButTheBaseImageMoveKeepsAllButPower) {
  const model::ConfigMap source = {{"user.a", "1"},
                                   {"volatile.base_image", "fp"},
                                   {"volatile.uuid", "u"},
                                   {"volatile.last_state.power", "RUNNING"},
                                   {std::string{incomplete_key}, "h1:c0"}};
  const auto copy = transfer_config(source, TransferKind::copy);
  EXPECT_EQ(copy, (model::ConfigMap{{"user.a", "1"}, {"volatile.base_image", "fp"}}));
  const auto move = transfer_config(source, TransferKind::move);
  EXPECT_EQ(move, (model::ConfigMap{{"user.a", "1"}, {"volatile.base_image", "fp"}, {"volatile.uuid", "u"}}));
}

TEST(ExecutorMigration, TargetRequestCarriesSourceOverlayMarkAndSecrets) {
  const auto source = instance({{"architecture", "x86_64"},
                                {"config", {{"user.a", "1"}, {"user.b", "2"}, {"volatile.base_image", "fp"}}},
                                {"devices", {{"d1", {{"type", "disk"}}}}},
                                {"profiles", {"default"}},
                                {"ephemeral", false},
                                {"type", "container"}});
  TargetOverlay overlay;
  overlay.name = "c2";
  overlay.config = {{"user.b", "3"}};
  overlay.devices = {{"d2", {{"type", "none"}}}};
  overlay.fleet_name = "f";
  overlay.incomplete_marker = "h1:c1";
  const nlohmann::json secrets = secrets_of({{"control", "s1"}, {"fs", "s2"}, {"fs_progress", "x"}, {"n", 1}});
  EXPECT_EQ(secrets.size(), 3U);  // every string value, as lxc copies them
  const auto body = migration_target_request(source, TransferKind::copy, overlay, "https://h1:8443/1.0/operations/op",
                                             secrets, "PEM", false);
  EXPECT_EQ(body["name"], "c2");
  EXPECT_EQ(body["config"]["user.a"], "1");
  EXPECT_EQ(body["config"]["user.b"], "3");
  EXPECT_EQ(body["config"]["user.berth.fleet"], "f");
  EXPECT_EQ(body["config"][std::string{incomplete_key}], "h1:c1");
  EXPECT_TRUE(body["devices"].contains("d1"));
  EXPECT_TRUE(body["devices"].contains("d2"));
  EXPECT_EQ(body["profiles"], nlohmann::json::array({"default"}));
  const auto& src = body["source"];
  EXPECT_EQ(src["type"], "migration");
  EXPECT_EQ(src["mode"], "pull");
  EXPECT_EQ(src["live"], false);
  EXPECT_EQ(src["instance_only"], true);
  EXPECT_EQ(src["base-image"], "fp");
  EXPECT_EQ(src["certificate"], "PEM");
  EXPECT_EQ(src["operation"], "https://h1:8443/1.0/operations/op");
  EXPECT_EQ(src["secrets"]["control"], "s1");

  overlay.fleet_name = "f";
  const auto moved = migration_target_request(source, TransferKind::move, overlay, "u", secrets, "PEM", true);
  EXPECT_FALSE(moved["config"].contains("user.berth.fleet"));  // a move keeps the config as it was
  EXPECT_EQ(moved["source"]["instance_only"], false);
}

TEST(ExecutorMigration, VerifyMoveComparesSnapshotsConfigDevicesAndProfiles) {
  const auto source = instance({{"config", {{"user.a", "1"}, {"volatile.last_state.power", "STOPPED"}}},
                                {"devices", nlohmann::json::object()},
                                {"profiles", {"default"}}});
  auto target = source;
  target.config["volatile.uuid"] = "other";
  target.config[std::string{incomplete_key}] = "h1:c1";
  EXPECT_FALSE(verify_move(source, {"s1", "s2"}, target, {"s1", "s2"}, {}));
  EXPECT_TRUE(verify_move(source, {"s1", "s2"}, target, {"s1"}, {}));
  auto changed = target;
  changed.config["user.a"] = "2";
  EXPECT_TRUE(verify_move(source, {}, changed, {}, {}));
  auto extra = target;
  extra.config["user.z"] = "1";
  EXPECT_TRUE(verify_move(source, {}, extra, {}, {}));
  EXPECT_FALSE(verify_move(source, {}, extra, {}, {{"user.z", "1"}}));
  auto devices = target;
  devices.devices["d"] = {{"type", "none"}};
  EXPECT_TRUE(verify_move(source, {}, devices, {}, {}));
  auto profiles = target;
  profiles.profiles = std::vector<std::string>{};
  EXPECT_TRUE(verify_move(source, {}, profiles, {}, {}));
}

TEST(ExecutorInstanceApi, ReachableUrlPrefersTheRemoteUrlThenListenAddresses) {
  model::RemoteSpec https{"h1", "https://10.0.0.1:8443", std::nullopt, 4, {}};
  EXPECT_EQ(*reachable_url(https, wire::Environment{}), "https://10.0.0.1:8443");
  model::RemoteSpec local{"h1", "unix:///var/lib/lxd/unix.socket", std::nullopt, 4, {}};
  wire::Environment env;
  env.addresses = {":8443", "10.0.0.2:8443"};
  EXPECT_EQ(*reachable_url(local, env), "https://10.0.0.2:8443");
  const auto none = reachable_url(local, wire::Environment{});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().message.rfind("remote h1: ", 0), 0U) << none.error().message;
}

}  // namespace
}  // namespace berth::lxd

namespace berth::lxd {
namespace {

// Recovery's proofs: what the journal recorded against what the host shows now.
TEST(RecoveryProof, TargetIsTheTransfersOwnOnlyWhileMarkAndEtagsMatch) {
  const nlohmann::json proof = {{"mark", "h1:c1 tok"}, {"marked_etag", "e1"}, {"target_etag", "e2"}};
  const auto marked = instance({{"config", {{"user.berth.incomplete", "h1:c1 tok"}}}});
  EXPECT_FALSE(target_changed(marked, "e1", proof));
  EXPECT_TRUE(target_changed(marked, "other", proof)) << "touched while marked";
  const auto foreign = instance({{"config", {{"user.berth.incomplete", "h1:c1 another"}}}});
  EXPECT_TRUE(target_changed(foreign, "e1", proof));
  const auto unmarked = instance({{"config", nlohmann::json::object()}});
  EXPECT_FALSE(target_changed(unmarked, "e2", proof));
  EXPECT_TRUE(target_changed(unmarked, "e3", proof)) << "touched after the unmark";
  EXPECT_TRUE(target_changed(unmarked, "", nlohmann::json::object())) << "no recorded ETag proves nothing";
  EXPECT_TRUE(target_changed(marked, "e1", {{"mark", 7}})) << "a damaged proof proves nothing";
}

TEST(RecoveryProof, SourceMustBeStoppedWithTheRecordedEtagAndSnapshots) {
  const nlohmann::json state = {{"etag", "s1"}, {"status", "Stopped"}, {"snapshots", {"a", "b"}}};
  const auto stopped = instance({{"status", "Stopped"}, {"status_code", 102}});
  EXPECT_FALSE(source_changed(stopped, "s1", {"a", "b"}, state));
  EXPECT_EQ(source_changed(instance({{"status", "Running"}, {"status_code", 103}}), "s1", {"a", "b"}, state),
            "it is Running");
  EXPECT_EQ(source_changed(stopped, "s2", {"a", "b"}, state), "its configuration changed");
  EXPECT_EQ(source_changed(stopped, "s1", {"a"}, state), "its snapshots changed");
  EXPECT_TRUE(source_changed(stopped, "s1", {"a", "b"}, {{"etag", 7}})) << "a damaged record proves nothing";
  EXPECT_TRUE(source_changed(stopped, "s1", {"a", "b"}, nullptr)) << "a damaged record proves nothing";
}

}  // namespace
}  // namespace berth::lxd
