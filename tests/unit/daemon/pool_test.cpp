// The storage pool on both drivers: a dir pool in a temporary directory, and a btrfs pool on a
// loop-mounted file (root and mkfs.btrfs needed, else skipped). The same behaviour is asserted on
// both: layout, snapshots that do not follow later writes, restore, rename with snapshots, copies
// keeping owners, modes, hardlinks and xattrs.

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include <optional>

#include "../lxd/temp_dir.hpp"
#include "daemon/storage/pool.hpp"

namespace berth::daemon {
namespace {

namespace fs = std::filesystem;
using lxd::ErrorKind;
using lxd::testing::TempDir;

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

struct stat stat_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st;
}

// A loop-mounted btrfs filesystem, unmounted (lazily, so a stray open file cannot keep it) at the end.
class BtrfsMount {
 public:
  explicit BtrfsMount(const fs::path& dir) : image_(dir / "pool.img"), mnt_(dir / "mnt") {
    fs::create_directories(mnt_);
    const std::string cmd = "truncate -s 256M " + image_.string() + " && mkfs.btrfs -q " + image_.string() +
                            " >/dev/null 2>&1 && mount -o loop " + image_.string() + " " + mnt_.string();
    mounted_ = std::system(cmd.c_str()) == 0;
  }
  ~BtrfsMount() {
    if (mounted_) ::umount2(mnt_.c_str(), MNT_DETACH);
  }
  BtrfsMount(const BtrfsMount&) = delete;
  BtrfsMount& operator=(const BtrfsMount&) = delete;
  [[nodiscard]] bool mounted() const { return mounted_; }
  [[nodiscard]] const fs::path& path() const { return mnt_; }

 private:
  fs::path image_, mnt_;
  bool mounted_ = false;
};

class StoragePoolTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    fs::path where = tmp_.path() / "pool";
    if (GetParam() == "btrfs") {
      if (::geteuid() != 0) GTEST_SKIP() << "a btrfs pool needs root to mount a loop file";
      if (std::system("command -v mkfs.btrfs >/dev/null && command -v btrfs >/dev/null") != 0) {
        GTEST_SKIP() << "mkfs.btrfs or btrfs not installed";
      }
      btrfs_ = std::make_unique<BtrfsMount>(tmp_.path());
      if (!btrfs_->mounted()) GTEST_SKIP() << "could not mount a btrfs loop file (no loop devices?)";
      where = btrfs_->path() / "pool";
    }
    auto pool = StoragePool::open("default", where);
    ASSERT_TRUE(pool.ok()) << pool.error().message;
    pool_ = std::move(*pool);
  }
  void TearDown() override {
    pool_.reset();
    btrfs_.reset();
  }

  TempDir tmp_;
  std::unique_ptr<BtrfsMount> btrfs_;
  std::unique_ptr<StoragePool> pool_;
};

TEST_P(StoragePoolTest, DriverAndLayoutAreLxds) {
  EXPECT_EQ(pool_->driver(), GetParam());
  ASSERT_TRUE(pool_->create_volume("c1").ok());
  EXPECT_EQ(pool_->volume_path("c1"), pool_->path() / "containers" / "c1");
  EXPECT_EQ(pool_->snapshot_path("c1", "s1"), pool_->path() / "containers-snapshots" / "c1" / "s1");
  EXPECT_TRUE(fs::is_directory(pool_->volume_path("c1")));
  EXPECT_EQ(stat_of(pool_->volume_path("c1")).st_mode & 07777, 0711U);
  if (GetParam() == "btrfs") EXPECT_EQ(stat_of(pool_->volume_path("c1")).st_ino, 256U);  // a subvolume
  EXPECT_EQ(pool_->volumes(), (std::vector<std::string>{"c1"}));

  auto again = pool_->create_volume("c1");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().kind, ErrorKind::conflict);
  for (const char* bad : {"", "../x", "a/b", ".hidden"}) {
    auto r = pool_->create_volume(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::invalid_argument);
  }
}

TEST_P(StoragePoolTest, SnapshotKeepsItsContentAndRestoreBringsItBack) {
  ASSERT_TRUE(pool_->create_volume("c1").ok());
  const fs::path vol = pool_->volume_path("c1");
  fs::create_directories(vol / "rootfs/etc");
  write(vol / "rootfs/etc/hostname", "before\n");
  ASSERT_TRUE(pool_->create_snapshot("c1", "snap0").ok());
  write(vol / "rootfs/etc/hostname", "after\n");
  write(vol / "rootfs/new-file", "x");

  EXPECT_EQ(read(pool_->snapshot_path("c1", "snap0") / "rootfs/etc/hostname"), "before\n");
  EXPECT_EQ(pool_->snapshots("c1"), (std::vector<std::string>{"snap0"}));
  if (GetParam() == "btrfs") {  // read-only snapshot
    std::ofstream out(pool_->snapshot_path("c1", "snap0") / "rootfs/etc/hostname");
    EXPECT_FALSE(out.good());
  }

  auto restored = pool_->restore_snapshot("c1", "snap0");
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  EXPECT_EQ(read(vol / "rootfs/etc/hostname"), "before\n");
  EXPECT_FALSE(fs::exists(vol / "rootfs/new-file"));
  EXPECT_EQ(stat_of(vol).st_mode & 07777, 0711U);
  write(vol / "rootfs/etc/hostname", "writable again\n");  // the restored volume is writable
  EXPECT_EQ(read(vol / "rootfs/etc/hostname"), "writable again\n");
  EXPECT_EQ(pool_->volumes(), (std::vector<std::string>{"c1"}));  // no temporary left visible
  EXPECT_EQ(read(pool_->snapshot_path("c1", "snap0") / "rootfs/etc/hostname"), "before\n");
}

// A restore cut short by a crash: before the swap (".c1.restoring" only) the volume keeps its old
// content; between the two renames (".c1.old", no volume) the old content goes back; after the
// swap (the volume and ".c1.old") the restored content stays. No temporary is left in any case.
TEST_P(StoragePoolTest, RecoverRestoresLeavesEachVolumeWhole) {
  for (const char* name : {"c1", "c2", "c3"}) {
    ASSERT_TRUE(pool_->create_volume(name).ok());
    fs::create_directories(pool_->volume_path(name) / "rootfs");
    write(pool_->volume_path(name) / "rootfs/which", "current\n");
  }
  const fs::path containers = pool_->path() / "containers";
  // c1: cut before the swap.
  // (a writable volume stands in for the clone: a btrfs snapshot subvolume is read-only, and
  // restore makes its clone writable before anything else happens.)
  ASSERT_TRUE(pool_->create_volume("c1-new").ok());
  write(pool_->volume_path("c1-new") / "half", "restored\n");
  fs::rename(pool_->volume_path("c1-new"), containers / ".c1.restoring");
  // c2: cut between moving the volume aside and moving the new content in.
  fs::rename(pool_->volume_path("c2"), containers / ".c2.old");
  // c3: cut after the swap, before the old content was removed.
  ASSERT_TRUE(pool_->create_volume("c3-old").ok());
  write(pool_->volume_path("c3-old") / "stale", "old\n");
  fs::rename(pool_->volume_path("c3-old"), containers / ".c3.old");

  const auto done = pool_->recover_restores();
  EXPECT_EQ(done.size(), 3U);
  EXPECT_EQ(pool_->volumes(), (std::vector<std::string>{"c1", "c2", "c3"}));
  for (const char* name : {"c1", "c2", "c3"}) {
    EXPECT_EQ(read(pool_->volume_path(name) / "rootfs/which"), "current\n") << name;
  }
  std::vector<std::string> hidden;
  for (const auto& e : fs::directory_iterator(containers)) hidden.push_back(e.path().filename().string());
  std::sort(hidden.begin(), hidden.end());
  EXPECT_EQ(hidden, (std::vector<std::string>{"c1", "c2", "c3"}));
  EXPECT_TRUE(pool_->recover_restores().empty());
}

TEST_P(StoragePoolTest, RenameCarriesSnapshotsAndDeleteTakesThem) {
  ASSERT_TRUE(pool_->create_volume("c1").ok());
  write(pool_->volume_path("c1") / "f", "1");
  ASSERT_TRUE(pool_->create_snapshot("c1", "a").ok());
  ASSERT_TRUE(pool_->create_snapshot("c1", "b").ok());
  auto dup = pool_->create_snapshot("c1", "a");
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().kind, ErrorKind::conflict);

  ASSERT_TRUE(pool_->rename_snapshot("c1", "b", "c").ok());
  EXPECT_EQ(pool_->snapshots("c1"), (std::vector<std::string>{"a", "c"}));

  auto renamed = pool_->rename_volume("c1", "c2");
  ASSERT_TRUE(renamed.ok()) << renamed.error().message;
  EXPECT_EQ(pool_->volumes(), (std::vector<std::string>{"c2"}));
  EXPECT_EQ(pool_->snapshots("c2"), (std::vector<std::string>{"a", "c"}));
  EXPECT_TRUE(pool_->snapshots("c1").empty());
  EXPECT_EQ(read(pool_->snapshot_path("c2", "a") / "f"), "1");

  ASSERT_TRUE(pool_->delete_snapshot("c2", "a").ok());
  EXPECT_EQ(pool_->snapshots("c2"), (std::vector<std::string>{"c"}));
  auto deleted = pool_->delete_volume("c2");
  ASSERT_TRUE(deleted.ok()) << deleted.error().message;
  EXPECT_TRUE(pool_->volumes().empty());
  EXPECT_FALSE(fs::exists(pool_->path() / "containers-snapshots" / "c2"));
  auto missing = pool_->delete_volume("c2");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind, ErrorKind::not_found);
}

TEST_P(StoragePoolTest, CopiesKeepOwnersModesHardlinksAndXattrs) {
  ASSERT_TRUE(pool_->create_volume("src").ok());
  const fs::path src = pool_->volume_path("src");
  fs::create_directories(src / "rootfs/bin");
  write(src / "rootfs/bin/tool", "#!/bin/sh\n");
  fs::create_hard_link(src / "rootfs/bin/tool", src / "rootfs/bin/tool-link");
  fs::create_symlink("tool", src / "rootfs/bin/alias");
  ASSERT_EQ(::mkfifo((src / "rootfs/fifo").c_str(), 0640), 0);
  ASSERT_EQ(::chmod((src / "rootfs/bin/tool").c_str(), 04755), 0);
  const bool root = ::geteuid() == 0;
  if (root) {
    ASSERT_EQ(::lchown((src / "rootfs/bin/tool").c_str(), 100000, 100005), 0);
    ASSERT_EQ(::chmod((src / "rootfs/bin/tool").c_str(), 04755), 0);  // chown cleared setuid
    ASSERT_EQ(::lchown((src / "rootfs/bin/alias").c_str(), 100001, 100001), 0);
  }
  const bool xattrs = ::setxattr((src / "rootfs/bin/tool").c_str(), "user.berth", "v", 1, 0) == 0;

  auto copied = pool_->copy_volume("src", "dst");
  ASSERT_TRUE(copied.ok()) << copied.error().message;
  const fs::path dst = pool_->volume_path("dst");
  const struct stat tool = stat_of(dst / "rootfs/bin/tool");
  EXPECT_EQ(tool.st_mode & 07777, 04755U);
  EXPECT_EQ(tool.st_ino, stat_of(dst / "rootfs/bin/tool-link").st_ino);
  EXPECT_EQ(tool.st_mtim.tv_sec, stat_of(src / "rootfs/bin/tool").st_mtim.tv_sec);
  EXPECT_EQ(fs::read_symlink(dst / "rootfs/bin/alias"), "tool");
  EXPECT_TRUE(S_ISFIFO(stat_of(dst / "rootfs/fifo").st_mode));
  if (root) {
    EXPECT_EQ(tool.st_uid, 100000U);
    EXPECT_EQ(tool.st_gid, 100005U);
    EXPECT_EQ(stat_of(dst / "rootfs/bin/alias").st_uid, 100001U);
  }
  if (xattrs) {
    char value[8] = {};
    EXPECT_EQ(::getxattr((dst / "rootfs/bin/tool").c_str(), "user.berth", value, sizeof(value)), 1);
    EXPECT_EQ(value[0], 'v');
  }
  write(dst / "rootfs/bin/tool", "changed");
  EXPECT_EQ(read(src / "rootfs/bin/tool"), "#!/bin/sh\n");  // a copy, not a link

  ASSERT_TRUE(pool_->create_snapshot("src", "s").ok());
  auto from_snap = pool_->copy_snapshot_to_volume("src", "s", "third");
  ASSERT_TRUE(from_snap.ok()) << from_snap.error().message;
  EXPECT_EQ(read(pool_->volume_path("third") / "rootfs/bin/tool"), "#!/bin/sh\n");
  write(pool_->volume_path("third") / "rootfs/bin/tool", "writable");
  EXPECT_EQ(stat_of(pool_->volume_path("third")).st_mode & 07777, 0711U);
  EXPECT_EQ(pool_->volumes(), (std::vector<std::string>{"dst", "src", "third"}));

  auto exists = pool_->copy_volume("src", "dst");
  ASSERT_FALSE(exists.ok());
  EXPECT_EQ(exists.error().kind, ErrorKind::conflict);
}

TEST_P(StoragePoolTest, UsageCountsBytesOnDisk) {
  ASSERT_TRUE(pool_->create_volume("c1").ok());
  auto empty = pool_->usage("c1");
  ASSERT_TRUE(empty.ok()) << empty.error().message;
  {
    std::ofstream out(pool_->volume_path("c1") / "big");
    out << std::string(1 << 20, 'x');
  }
  ::sync();
  auto full = pool_->usage("c1");
  ASSERT_TRUE(full.ok()) << full.error().message;
  EXPECT_GE(*full, *empty + (1U << 20));
  EXPECT_EQ(pool_->usage("nope").error().kind, ErrorKind::not_found);
}

std::vector<std::string> entries_of(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  return names;
}

TEST_P(StoragePoolTest, ADeletedVolumeIsGoneAtOnceAndItsSpaceComesBackLater) {
  ASSERT_TRUE(pool_->create_volume("c1").ok());
  fs::create_directories(pool_->volume_path("c1") / "rootfs/etc");
  write(pool_->volume_path("c1") / "rootfs/etc/hostname", "c1");
  ASSERT_TRUE(pool_->create_snapshot("c1", "s0").ok());
  ASSERT_TRUE(pool_->create_snapshot("c1", "s1").ok());

  ASSERT_TRUE(pool_->delete_volume("c1").ok());
  EXPECT_FALSE(fs::exists(pool_->volume_path("c1")));
  EXPECT_FALSE(fs::exists(pool_->path() / "containers-snapshots" / "c1"));
  // The name is free at once: a volume of the same name (a container moved back) is new.
  ASSERT_TRUE(pool_->create_volume("c1").ok());
  EXPECT_TRUE(fs::is_empty(pool_->volume_path("c1")));
  EXPECT_TRUE(pool_->snapshots("c1").empty());

  pool_->wait_for_reaper();
  EXPECT_TRUE(entries_of(pool_->path() / "deleted").empty());
}

TEST_P(StoragePoolTest, WhatAStopLeftDeletedIsRemovedAfterTheNextOpen) {
  ASSERT_TRUE(pool_->create_volume("c1").ok());
  const fs::path rootfs = pool_->volume_path("c1") / "rootfs";
  for (int d = 0; d < 20; ++d) {
    fs::create_directories(rootfs / std::to_string(d));
    for (int f = 0; f < 50; ++f) write(rootfs / std::to_string(d) / std::to_string(f), "x");
  }
  ASSERT_TRUE(pool_->create_snapshot("c1", "s0").ok());
  ASSERT_TRUE(pool_->delete_volume("c1").ok());
  const fs::path where = pool_->path();
  pool_.reset();  // at once, the reaper likely still at work: it stops where it is
  // And what a crash left: a volume half moved aside.
  fs::create_directories(where / "deleted/entry.crash/0/rootfs/etc");
  write(where / "deleted/entry.crash/0/rootfs/etc/passwd", "root:x:0:0::/root:/bin/sh\n");

  auto reopened = StoragePool::open("default", where);
  ASSERT_TRUE(reopened.ok()) << reopened.error().message;
  pool_ = std::move(*reopened);
  pool_->wait_for_reaper();
  EXPECT_TRUE(entries_of(where / "deleted").empty());
  EXPECT_TRUE(pool_->volumes().empty());
}

TEST_P(StoragePoolTest, ATreeDeeperThanAPathCanNameIsRemovedToo) {
  ASSERT_TRUE(pool_->create_volume("c1").ok());
  // 300 levels of 30 characters: 9,000 characters, past PATH_MAX (4,096); made by descriptors.
  int fd = ::open(pool_->volume_path("c1").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const std::string level(30, 'd');
  for (int i = 0; i < 300; ++i) {
    ASSERT_EQ(::mkdirat(fd, level.c_str(), 0755), 0) << i;
    const int next = ::openat(fd, level.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ::close(fd);
    ASSERT_GE(next, 0) << i;
    fd = next;
  }
  const int file = ::openat(fd, "bottom", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(file, 0);
  ::close(file);
  ::close(fd);

  ASSERT_TRUE(pool_->delete_volume("c1").ok());
  pool_->wait_for_reaper();
  EXPECT_TRUE(entries_of(pool_->path() / "deleted").empty());
}

TEST_P(StoragePoolTest, DeletesAtTheSameTimeAllSucceedWhileTheReaperSweeps) {
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round) {
        const std::string name = "c" + std::to_string(t);
        if (!pool_->create_volume(name).ok()) ++failures;
        write(pool_->volume_path(name) / "f", "x");
        if (!pool_->create_snapshot(name, "s").ok()) ++failures;
        if (auto r = pool_->delete_volume(name); !r) {
          ADD_FAILURE() << r.error().message;
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  pool_->wait_for_reaper();
  EXPECT_TRUE(entries_of(pool_->path() / "deleted").empty());
  EXPECT_TRUE(pool_->volumes().empty());
}

TEST_P(StoragePoolTest, ARestoreLeavesNoOldContentBehind) {
  ASSERT_TRUE(pool_->create_volume("c1").ok());
  write(pool_->volume_path("c1") / "f", "before");
  ASSERT_TRUE(pool_->create_snapshot("c1", "s0").ok());
  write(pool_->volume_path("c1") / "f", "after");
  ASSERT_TRUE(pool_->restore_snapshot("c1", "s0").ok());
  EXPECT_EQ(read(pool_->volume_path("c1") / "f"), "before");
  pool_->wait_for_reaper();
  EXPECT_EQ(entries_of(pool_->path() / "containers"), (std::vector<std::string>{"c1"}));
  EXPECT_TRUE(entries_of(pool_->path() / "deleted").empty());
}

// What a btrfs migration does with the pool: a read-only copy of the volume to send, a staging
// directory, received subvolumes adopted as snapshots (read-only, keeping the UUID they were
// received from) and as the volume (writable, no longer marked received).
TEST_P(StoragePoolTest, ReceivedSubvolumesAreAdoptedWithTheirIdentity) {
  if (GetParam() != "btrfs") GTEST_SKIP() << "btrfs send/receive needs a btrfs pool";
  ASSERT_TRUE(pool_->create_volume("c1").ok());
  write(pool_->volume_path("c1") / "f", "one");
  ASSERT_TRUE(pool_->create_snapshot("c1", "s1").ok());
  auto nested = pool_->has_nested_subvolumes("c1");
  ASSERT_TRUE(nested.ok()) << nested.error().message;
  EXPECT_FALSE(*nested);

  std::optional<fs::path> staged;
  {
    auto staging = pool_->staging();
    ASSERT_TRUE(staging.ok()) << staging.error().message;
    staged = staging->path();
    EXPECT_TRUE(fs::is_directory(*staged));
    const auto copy = staging->path() / "volume";
    fs::create_directories(pool_->volume_path("c1") / "inner");  // where a nested subvolume was
    ASSERT_TRUE(pool_->readonly_copy("c1", copy).ok());
    auto info = pool_->subvolume_info(copy);
    ASSERT_TRUE(info.ok()) << info.error().message;
    EXPECT_TRUE(info->readonly);
    EXPECT_EQ(info->uuid.size(), 36U);
    EXPECT_TRUE(info->received_uuid.empty());
    const auto snap = pool_->subvolume_info(pool_->snapshot_path("c1", "s1"));
    ASSERT_TRUE(snap.ok());
    EXPECT_EQ(snap->identity(), snap->uuid);

    // Through btrfs send and receive, as a migration's two ends do, then adopted.
    fs::create_directories(staging->path() / "0");
    fs::create_directories(staging->path() / "1");
    const std::string send_s1 = "btrfs send -q " + pool_->snapshot_path("c1", "s1").string() + " | btrfs receive -e " +
                                (staging->path() / "0").string() + " 2>/dev/null";
    const std::string send_volume = "btrfs send -q -p " + pool_->snapshot_path("c1", "s1").string() + " " +
                                    copy.string() + " | btrfs receive -e " + (staging->path() / "1").string() +
                                    " 2>/dev/null";
    ASSERT_EQ(std::system(send_s1.c_str()), 0);
    ASSERT_EQ(std::system(send_volume.c_str()), 0);
    // A nested subvolume's stream: its content lands in the place its parent's stream left empty.
    const auto inner = staging->path() / "inner-src";
    ASSERT_EQ(std::system(("btrfs subvolume create " + inner.string() + " >/dev/null").c_str()), 0);
    fs::create_directories(inner / "d");
    write(inner / "d" / "g", "nested");
    ASSERT_EQ(::chown((inner / "d" / "g").c_str(), 1000123, 1000123), 0);
    fs::create_directories(staging->path() / "2");
    const std::string send_inner = "btrfs property set -ts " + inner.string() + " ro true && btrfs send -q " +
                                   inner.string() + " | btrfs receive -e " + (staging->path() / "2").string() +
                                   " 2>/dev/null";
    ASSERT_EQ(std::system(send_inner.c_str()), 0);
    ASSERT_TRUE(
        pool_->adopt_volume("c2", {staging->path() / "1" / "volume", {{"/inner", staging->path() / "2" / "inner-src"}}})
            .ok());
    ASSERT_TRUE(pool_->adopt_snapshot("c2", "s1", {staging->path() / "0" / "s1", {}}).ok());
    auto taken = pool_->adopt_snapshot("c2", "s1", {staging->path() / "0" / "s1", {}});
    ASSERT_FALSE(taken.ok());
    EXPECT_EQ(taken.error().kind, ErrorKind::conflict);

    const auto adopted_snap = pool_->subvolume_info(pool_->snapshot_path("c2", "s1"));
    ASSERT_TRUE(adopted_snap.ok()) << adopted_snap.error().message;
    EXPECT_TRUE(adopted_snap->readonly);
    EXPECT_EQ(adopted_snap->received_uuid, snap->uuid);  // what the next incremental stream names
    EXPECT_EQ(adopted_snap->identity(), snap->uuid);
    const auto adopted_volume = pool_->subvolume_info(pool_->volume_path("c2"));
    ASSERT_TRUE(adopted_volume.ok());
    EXPECT_FALSE(adopted_volume->readonly);
    EXPECT_TRUE(adopted_volume->received_uuid.empty());
    EXPECT_EQ(stat_of(pool_->volume_path("c2")).st_mode & 07777, 0711U);
    EXPECT_EQ(read(pool_->volume_path("c2") / "f"), "one");
    write(pool_->volume_path("c2") / "f", "two");  // writable
    EXPECT_EQ(read(pool_->snapshot_path("c2", "s1") / "f"), "one");
    const auto flat = pool_->volume_path("c2") / "inner";
    EXPECT_EQ(read(flat / "d" / "g"), "nested");
    EXPECT_EQ(stat_of(flat / "d" / "g").st_uid, 1000123U);
    EXPECT_NE(stat_of(flat).st_ino, 256U) << "a plain directory now, not a subvolume";
    nested = pool_->has_nested_subvolumes("c2");
    ASSERT_TRUE(nested.ok());
    EXPECT_FALSE(*nested);
    auto again = pool_->adopt_volume("c2", {copy, {}});
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().kind, ErrorKind::conflict);
  }
  pool_->wait_for_reaper();
  EXPECT_FALSE(fs::exists(*staged)) << "the staging directory goes with its handle";
  EXPECT_TRUE(entries_of(pool_->path() / "deleted").empty());

  // A subvolume inside the volume: it would be left out of a stream.
  const std::string inner2 = (pool_->volume_path("c1") / "inner2").string();
  ASSERT_EQ(std::system(("btrfs subvolume create " + inner2 + " >/dev/null").c_str()), 0);
  nested = pool_->has_nested_subvolumes("c1");
  ASSERT_TRUE(nested.ok());
  EXPECT_TRUE(*nested);
}

TEST_P(StoragePoolTest, WhatAMigrationLeftIsRemovedAtTheNextOpen) {
  const fs::path where = pool_->path();
  fs::create_directories(where / "migration" / "entry.x" / "0");
  write(where / "migration" / "entry.x" / "0" / "f", "left");
  pool_.reset();
  auto reopened = StoragePool::open("default", where);
  ASSERT_TRUE(reopened.ok());
  pool_ = std::move(*reopened);
  pool_->wait_for_reaper();
  EXPECT_TRUE(entries_of(where / "migration").empty());
  EXPECT_TRUE(entries_of(where / "deleted").empty());
}

INSTANTIATE_TEST_SUITE_P(Drivers, StoragePoolTest, ::testing::Values("dir", "btrfs"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace berth::daemon
