// The migration control messages and negotiation (daemon/migration/protocol.hpp) against the facts
// of lxd-protocol.md §4.3-§4.5: LXD's field numbers on the wire, its zero time, what each side
// agrees to, and rsync's command lines.

#include <gtest/gtest.h>

#include <string>

#include "daemon/migration/btrfs_header.hpp"
#include "daemon/migration/protocol.hpp"

namespace berth::daemon::migration {
namespace {

std::string bytes(std::initializer_list<unsigned char> b) {
  return std::string(b.begin(), b.end());
}

SnapshotInfo snapshot(const std::string& name, std::optional<std::int64_t> created) {
  SnapshotInfo s;
  s.name = name;
  s.config = {{"user.a", "1"}, {"volatile.base_image", "abc"}};
  s.devices = {{"data", {{"type", "disk"}, {"path", "/data"}, {"source", "/srv"}}}};
  s.profiles = {"default"};
  s.architecture = "x86_64";
  s.created = created;
  return s;
}

TEST(MigrationProtocol, AStoppedContainersOfferIsLxdsBytes) {
  // fs=RSYNC (field 1), rsyncFeatures (8) with all four set (compress false: berthd's choice),
  // refresh (9), indexHeaderVersion (13); no criu for a stopped container.
  const auto encoded = encode_header(make_offer({}));
  EXPECT_EQ(encoded,
            bytes({0x08, 0x00, 0x42, 0x08, 0x08, 0x01, 0x10, 0x01, 0x18, 0x00, 0x20, 0x01, 0x48, 0x00, 0x68, 0x00}));
  OfferInput running;
  running.running = true;
  const auto offer = decode_header(encode_header(make_offer(running)));
  ASSERT_TRUE(offer) << offer.error().message;
  EXPECT_EQ(offer->criu, Criu::none);
}

TEST(MigrationProtocol, AHeaderComesBackWhole) {
  OfferInput input;
  input.idmap = {{true, false, 1000000, 0, 1000000000}, {false, true, 1000000, 0, 1000000000}};
  input.snapshots = {snapshot("snap0", 1764806400), snapshot("snap1", std::nullopt)};
  input.snapshots[1].expires = 1780000000;
  input.snapshots[1].ephemeral = true;
  const Header offer = make_offer(input);
  const auto back = decode_header(encode_header(offer));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, offer);
}

TEST(MigrationProtocol, GoZeroTimeAndZeroAreNoTime) {
  // A Snapshot with name "s", ephemeral false, architecture 2, stateful false, creation_date the Go
  // zero time and last_used_date 0, inside a header (fs RSYNC) that also names it.
  std::string snap = bytes({0x0a, 0x01, 's', 0x20, 0x00, 0x30, 0x02, 0x38, 0x00});
  snap += bytes({0x40});  // creation_date, varint of -62135596800 (ten bytes, two's complement)
  snap += bytes({0x80, 0x92, 0xb8, 0xc3, 0x98, 0xfe, 0xff, 0xff, 0xff, 0x01});
  snap += bytes({0x48, 0x00});  // last_used_date 0
  std::string header = bytes({0x08, 0x00, 0x22, 0x01, 's', 0x2a, static_cast<unsigned char>(snap.size())}) + snap;
  const auto h = decode_header(header);
  ASSERT_TRUE(h) << h.error().message;
  ASSERT_EQ(h->snapshots.size(), 1U);
  EXPECT_EQ(h->snapshots[0].architecture, "x86_64");
  EXPECT_FALSE(h->snapshots[0].created);
  EXPECT_FALSE(h->snapshots[0].last_used);
  EXPECT_FALSE(h->snapshots[0].expires);
  // Sent back out, "no time" is Go's zero time again.
  EXPECT_NE(encode_header(*h).find(bytes({0x40, 0x80, 0x92, 0xb8, 0xc3, 0x98, 0xfe, 0xff, 0xff, 0xff, 0x01})),
            std::string::npos);
}

TEST(MigrationProtocol, WhatIsNoHeaderIsRefused) {
  EXPECT_FALSE(decode_header(""));                      // fs is required
  EXPECT_FALSE(decode_header(bytes({0x08})));           // cut short
  EXPECT_FALSE(decode_header(bytes({0x08, 0x07})));     // no such transfer type
  EXPECT_FALSE(decode_header("\xff\xff\xff\xff\xff"));  // not protobuf
  // An idmap entry without its required maprange.
  EXPECT_FALSE(decode_header(bytes({0x08, 0x00, 0x1a, 0x08, 0x08, 0x01, 0x10, 0x00, 0x18, 0x01, 0x20, 0x00})));
  const auto old_lxd = decode_header(bytes({0x08, 0x00, 0x22, 0x02, 's', '0', 0x22, 0x02, 's', '1'}));
  ASSERT_TRUE(old_lxd) << old_lxd.error().message;
  ASSERT_EQ(old_lxd->snapshots.size(), 2U);  // names only: an LXD without the snapshot messages
  EXPECT_EQ(old_lxd->snapshots[1].name, "s1");
}

TEST(MigrationProtocol, ControlMessagesAreLxdsBytes) {
  EXPECT_EQ(encode_control({true, ""}), bytes({0x08, 0x01, 0x12, 0x00}));
  const auto failed = decode_control(bytes({0x08, 0x00, 0x12, 0x04, 'g', 'o', 'n', 'e'}));
  ASSERT_TRUE(failed);
  EXPECT_FALSE(failed->success);
  EXPECT_EQ(failed->message, "gone");
  EXPECT_FALSE(decode_control(bytes({0x12, 0x00})));  // success is required
}

TEST(MigrationProtocol, TheSinkTakesRsyncAndRefusesWhatItCannotDo) {
  OfferInput input;
  input.running = true;
  input.snapshots = {snapshot("a", 1), snapshot("b", 2)};
  const auto answer = answer_offer(make_offer(input), {});
  ASSERT_TRUE(answer) << answer.error().message;
  EXPECT_EQ(answer->response.fs, FsType::rsync);
  EXPECT_EQ(answer->response.criu, Criu::none);
  // The offer did not say its rsync negotiates: the answer does not either.
  const RsyncFeatures without_negotiation{true, true, false, true, false};
  EXPECT_EQ(answer->response.rsync_features, without_negotiation);
  EXPECT_EQ(answer->response.index_header_version, 0U);
  EXPECT_EQ(answer->response.snapshots, input.snapshots);
  EXPECT_TRUE(answer->agreement.final_sync);
  EXPECT_EQ(answer->agreement.features, without_negotiation);

  // An LXD source offers compress too: berthd agrees to what both have, without it.
  Header lxd_offer = make_offer(input);
  lxd_offer.rsync_features = lxd_rsync_features;
  const auto from_lxd = answer_offer(lxd_offer, {});
  ASSERT_TRUE(from_lxd);
  EXPECT_EQ(from_lxd->response.rsync_features, without_negotiation);
  EXPECT_EQ(from_lxd->agreement.features, from_lxd->response.rsync_features);

  Header btrfs = make_offer({});
  btrfs.fs = FsType::btrfs;  // btrfs with rsync as the fallback: rsync it is
  const auto fallback = answer_offer(btrfs, {});
  ASSERT_TRUE(fallback);
  EXPECT_EQ(fallback->response.fs, FsType::rsync);
  EXPECT_FALSE(fallback->response.criu);
  EXPECT_FALSE(fallback->agreement.final_sync);

  Header old = make_offer({});
  old.rsync_features = RsyncFeatures{true, false, false, false};  // no bidirectional: LXD 3.7
  EXPECT_EQ(answer_offer(old, {})->agreement.features, (RsyncFeatures{true, true, true, false}));

  Header live = make_offer({});
  live.criu = Criu::rsync;
  const auto refused = answer_offer(live, {});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("CRIU"), std::string::npos);
  EXPECT_FALSE(answer_offer(make_offer({}), {.live = true}));
  Header vm = make_offer({});
  vm.fs = FsType::block_and_rsync;
  EXPECT_FALSE(answer_offer(vm, {}));
  Header no_rsync = make_offer({});
  no_rsync.fs = FsType::zfs;
  no_rsync.rsync_features.reset();
  EXPECT_FALSE(answer_offer(no_rsync, {}));
}

TEST(MigrationProtocol, TwoBerthdsAgreeToNegotiateAndLxdNeverSeesIt) {
  OfferInput input;
  input.rsync_negotiates = true;
  const Header offer = make_offer(input);
  ASSERT_TRUE(offer.rsync_features);
  EXPECT_TRUE(offer.rsync_features->negotiation);
  const auto back = decode_header(encode_header(offer));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, offer);
  const auto answer = answer_offer(*back, {});
  ASSERT_TRUE(answer);
  EXPECT_TRUE(answer->agreement.features.negotiation);
  EXPECT_TRUE(read_answer(offer, answer->response)->features.negotiation);

  // Field 1000 (key 8000: bytes c0 3e) is on the wire only when set: an offer from a berthd whose
  // rsync cannot, and every answer to LXD, are LXD's bytes.
  const std::string field_1000 = bytes({0xc0, 0x3e, 0x01});
  EXPECT_NE(encode_header(offer).find(field_1000), std::string::npos);
  EXPECT_EQ(encode_header(make_offer({})).find(field_1000), std::string::npos);
  Header lxd_offer = make_offer({});
  lxd_offer.rsync_features = lxd_rsync_features;
  const auto to_lxd = answer_offer(lxd_offer, {});
  ASSERT_TRUE(to_lxd);
  EXPECT_FALSE(to_lxd->agreement.features.negotiation);
  EXPECT_EQ(encode_header(to_lxd->response).find(field_1000), std::string::npos);
}

TEST(MigrationProtocol, TheSourceSendsWhatTheAnswerAsksFor) {
  OfferInput input;
  input.running = true;
  input.snapshots = {snapshot("a", 1), snapshot("b", 2), snapshot("c", 3)};
  const Header offer = make_offer(input);
  Header response = answer_offer(offer, {})->response;
  response.snapshots = {snapshot("a", 1), snapshot("c", 3)};  // a refresh that has b already
  const auto agreed = read_answer(offer, response);
  ASSERT_TRUE(agreed) << agreed.error().message;
  ASSERT_EQ(agreed->snapshots.size(), 2U);
  EXPECT_EQ(agreed->snapshots[0].name, "a");
  EXPECT_EQ(agreed->snapshots[1].name, "c");
  EXPECT_TRUE(agreed->final_sync);

  Header unknown = response;
  unknown.snapshots.push_back(snapshot("zzz", 4));
  EXPECT_FALSE(read_answer(offer, unknown));
  Header btrfs = response;
  btrfs.fs = FsType::btrfs;
  EXPECT_FALSE(read_answer(offer, btrfs));
  Header old = response;
  old.rsync_features = RsyncFeatures{false, false, false, false};
  EXPECT_EQ(read_answer(offer, old)->features, (RsyncFeatures{true, true, true, false}));
  Header no_criu = response;
  no_criu.criu.reset();
  EXPECT_FALSE(read_answer(offer, no_criu)->final_sync);
}

TEST(MigrationProtocol, RsyncCommandLinesAreLxds) {
  EXPECT_EQ(rsync_send_args("/pool/containers/c1", lxd_rsync_features, true, "berthd-helper netcat 3"),
            (std::vector<std::string>{"-ar", "--devices", "--numeric-ids", "--partial", "--sparse", "--xattrs",
                                      "--filter=-x security.selinux", "--delete", "--compress", "--compress-level=2",
                                      "/pool/containers/c1/", "localhost:/tmp/foo", "-e", "berthd-helper netcat 3"}));
  EXPECT_EQ(rsync_receive_args("/pool/containers/c1/", RsyncFeatures{true, false, false, true}, false),
            (std::vector<std::string>{"--server", "-vlogDtpre.iLsfx", "--numeric-ids", "--devices", "--partial",
                                      "--sparse", "--xattrs", ".", "/pool/containers/c1/"}));
  // Agreed with a sender whose rsync negotiates: the capability string such a client sends.
  EXPECT_EQ(rsync_receive_args("/pool/containers/c1", RsyncFeatures{true, true, false, true, true}, true),
            (std::vector<std::string>{"--server", "-vlogDtpre.iLsfxCIv", "--numeric-ids", "--devices", "--partial",
                                      "--sparse", "--xattrs", "--filter=-x security.selinux", "--delete", ".",
                                      "/pool/containers/c1/"}));
}

TEST(MigrationProtocol, RsyncVersionsAndArchitectures) {
  EXPECT_TRUE(rsync_at_least_3_1_3("rsync  version 3.2.7  protocol version 31\nCopyright"));
  EXPECT_TRUE(rsync_at_least_3_1_3("rsync  version 3.1.3  protocol version 31"));
  EXPECT_FALSE(rsync_at_least_3_1_3("rsync  version v4.0  protocol"));
  EXPECT_FALSE(rsync_at_least_3_1_3("rsync  version 3.1.2  protocol version 31"));
  EXPECT_FALSE(rsync_at_least_3_1_3(""));
  EXPECT_TRUE(rsync_negotiates("rsync  version 3.2.0  protocol version 31"));
  EXPECT_TRUE(rsync_negotiates("rsync  version 3.5.0  protocol version 32"));
  EXPECT_FALSE(rsync_negotiates("rsync  version 3.1.3  protocol version 31"));
  EXPECT_FALSE(rsync_negotiates("no version here"));
  EXPECT_EQ(architecture_id("x86_64"), 2);
  EXPECT_EQ(architecture_id("amd64"), 2);
  EXPECT_EQ(architecture_id("aarch64"), 4);
  EXPECT_EQ(architecture_id("riscv64"), 12);
  EXPECT_FALSE(architecture_id(""));
  EXPECT_FALSE(architecture_id("sparc"));
  EXPECT_EQ(architecture_name(7), "ppc64le");
  EXPECT_FALSE(architecture_name(0));
}

}  // namespace
}  // namespace berth::daemon::migration

namespace berth::daemon::migration {
namespace {

TEST(MigrationBtrfs, ASourceOnBtrfsOffersItWithRsyncAsTheFallback) {
  OfferInput input;
  input.btrfs = true;
  input.running = true;
  const auto offer = decode_header(encode_header(make_offer(input)));
  ASSERT_TRUE(offer);
  EXPECT_EQ(offer->fs, FsType::btrfs);
  ASSERT_TRUE(offer->btrfs_features);
  EXPECT_EQ(*offer->btrfs_features, berthd_btrfs_features);
  // Nested subvolumes: taken (LXD refuses to send them otherwise), never sent (they go by rsync).
  EXPECT_TRUE(offer->btrfs_features->header_subvolumes);
  ASSERT_TRUE(offer->rsync_features);
  EXPECT_TRUE(offer->rsync_features->bidirectional);
  EXPECT_FALSE(decode_header(encode_header(make_offer({})))->btrfs_features);
}

TEST(MigrationBtrfs, ABtrfsSinkTakesBtrfsWithoutASecondPassAndADirSinkRsync) {
  OfferInput input;
  input.btrfs = true;
  input.running = true;  // stateless: rsync would sync twice, a btrfs stream of a snapshot once
  input.snapshots = {snapshot("s1", 1), snapshot("s2", 2)};
  const auto offer = make_offer(input);
  const auto btrfs = answer_offer(offer, {.btrfs = true});
  ASSERT_TRUE(btrfs);
  EXPECT_EQ(btrfs->agreement.fs, FsType::btrfs);
  EXPECT_FALSE(btrfs->agreement.final_sync);
  EXPECT_EQ(btrfs->response.fs, FsType::btrfs);
  ASSERT_TRUE(btrfs->response.btrfs_features);
  EXPECT_TRUE(btrfs->response.btrfs_features->migration_header);
  EXPECT_EQ(btrfs->agreement.snapshots.size(), 2U);
  const auto read = read_answer(offer, btrfs->response);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->fs, FsType::btrfs);
  EXPECT_TRUE(read->btrfs.header_subvolume_uuids);
  EXPECT_FALSE(read->final_sync);

  const auto dir = answer_offer(offer, {});
  ASSERT_TRUE(dir);
  EXPECT_EQ(dir->agreement.fs, FsType::rsync);
  EXPECT_TRUE(dir->agreement.final_sync);
  EXPECT_FALSE(dir->response.btrfs_features);
  EXPECT_EQ(read_answer(offer, dir->response)->fs, FsType::rsync);

  // An older peer without the UUIDs: what both have.
  Header older = offer;
  older.btrfs_features = BtrfsFeatures{true, true, false};
  EXPECT_EQ(answer_offer(older, {.btrfs = true})->agreement.btrfs, (BtrfsFeatures{true, true, false}));
  // A btrfs answer to an rsync offer is refused.
  EXPECT_FALSE(read_answer(make_offer({}), btrfs->response));
}

TEST(MigrationBtrfs, ARefreshAsksForTheSnapshotsItLacksAndDropsTheOnesTheSourceLacks) {
  OfferInput input;
  input.snapshots = {snapshot("s1", 100), snapshot("s2", 200), snapshot("s3", 300)};
  const auto offer = make_offer(input);
  SinkInput sink;
  // s1 the same; s2 made at another time; s9 gone from the source; s3 new.
  sink.refresh = std::vector<SinkInput::Local>{{"s1", 100}, {"s2", 150}, {"s9", 50}};
  const auto answer = answer_offer(offer, sink);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->drop, (std::vector<std::string>{"s2", "s9"}));
  ASSERT_EQ(answer->agreement.snapshots.size(), 2U);
  EXPECT_EQ(answer->agreement.snapshots[0].name, "s2");
  EXPECT_EQ(answer->agreement.snapshots[1].name, "s3");
  EXPECT_TRUE(answer->response.refresh);
  EXPECT_TRUE(answer->agreement.refresh);
  const auto read = read_answer(offer, answer->response);
  ASSERT_TRUE(read);
  EXPECT_TRUE(read->refresh);
  EXPECT_EQ(read->snapshots.size(), 2U);

  // A btrfs refresh needs the UUIDs in the header; without them it goes by rsync (LXD's MatchTypes).
  OfferInput on_btrfs = input;
  on_btrfs.btrfs = true;
  Header old = make_offer(on_btrfs);
  old.btrfs_features = BtrfsFeatures{true, true, false};
  SinkInput btrfs_sink = sink;
  btrfs_sink.btrfs = true;
  EXPECT_EQ(answer_offer(old, btrfs_sink)->agreement.fs, FsType::rsync);
  EXPECT_EQ(answer_offer(make_offer(on_btrfs), btrfs_sink)->agreement.fs, FsType::btrfs);
}

TEST(MigrationBtrfs, TheHeaderIsLxdsJson) {
  const std::vector<BtrfsSubvolume> subvolumes{{"/", "s1", true, "3c2b-1"}, {"/", "", false, "9f9f-2"}};
  const auto text = encode_btrfs_header(subvolumes);
  EXPECT_EQ(text, R"({"subvolumes":[{"path":"/","readonly":true,"snapshot":"s1","uuid":"3c2b-1"},)"
                  R"({"path":"/","readonly":false,"snapshot":"","uuid":"9f9f-2"}]})");
  EXPECT_EQ(*decode_btrfs_header(text), subvolumes);
  // Go writes a nil list as null; fields left out read as their zero values.
  EXPECT_TRUE(decode_btrfs_header(R"({"subvolumes":null})")->empty());
  EXPECT_EQ(decode_btrfs_header(R"({"subvolumes":[{"snapshot":"s1"}]})")->front().path, "/");

  // Nested subvolumes (header_subvolumes): paths inside the volume.
  const auto nested = decode_btrfs_header(R"({"subvolumes":[{"path":"/","snapshot":""},{"path":"/var/lib/docker"}]})");
  ASSERT_TRUE(nested);
  EXPECT_EQ((*nested)[1].path, "/var/lib/docker");
  for (const char* bad : {"", "a", "/a/", "/a//b", "/../x", "/a/./b", "/a/.."}) {
    const auto refused = decode_btrfs_header(R"({"subvolumes":[{"path":")" + std::string(bad) + R"("}]})");
    ASSERT_FALSE(refused) << bad;
    EXPECT_NE(refused.error().message.find("not a path in a volume"), std::string::npos) << refused.error().message;
  }
  EXPECT_FALSE(decode_btrfs_header(R"({"subvolumes":[{"path":"/","snapshot":"s1"},{"path":"/","snapshot":"s1"}]})"));
  EXPECT_FALSE(decode_btrfs_header("not json"));
  EXPECT_FALSE(decode_btrfs_header(R"([1,2])"));
  EXPECT_FALSE(decode_btrfs_header(R"({"subvolumes":[{"path":1}]})"));
  EXPECT_FALSE(decode_btrfs_header(R"({"subvolumes":[{"readonly":"yes"}]})"));
}

TEST(MigrationBtrfs, EachStreamIsIncrementalAgainstWhatTheSinkAlreadyHas) {
  using Plan = std::vector<BtrfsSendStep>;
  // A new copy: the first snapshot whole, each next against the one before, the volume last.
  EXPECT_EQ(btrfs_send_plan({"s1", "s2"}, {"s1", "s2"}, false), (Plan{{"s1", ""}, {"s2", "s1"}, {"", "s2"}}));
  EXPECT_EQ(btrfs_send_plan({}, {}, false), (Plan{{"", ""}}));
  // Instance only: no snapshot travels, so none can be the parent.
  EXPECT_EQ(btrfs_send_plan({"s1"}, {}, false), (Plan{{"", ""}}));
  // A refresh: the sink kept s1 and s2; s3 against s2, the volume against s3.
  EXPECT_EQ(btrfs_send_plan({"s1", "s2", "s3"}, {"s3"}, true), (Plan{{"s3", "s2"}, {"", "s3"}}));
  // Nothing new: the volume against the newest snapshot.
  EXPECT_EQ(btrfs_send_plan({"s1", "s2"}, {}, true), (Plan{{"", "s2"}}));
  // The first snapshot itself is new: it goes whole.
  EXPECT_EQ(btrfs_send_plan({"s1", "s2"}, {"s1", "s2"}, true), (Plan{{"s1", ""}, {"s2", "s1"}, {"", "s2"}}));
}

}  // namespace
}  // namespace berth::daemon::migration
