// Id maps as LXD 5.0.2 picks and stores them, and shift_tree re-owning a tree for another map.

#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <gtest/gtest.h>

#include "../lxd/temp_dir.hpp"
#include "daemon/instances/idmap.hpp"
#include "daemon/instances/shift.hpp"

namespace berth::daemon {
namespace {

using lxd::testing::TempDir;

TEST(Idmap, DefaultComesFromRootsSubordinateRanges) {
  const Idmap map = default_idmap("# comment\nlxd:5000000:65536\nroot:100000:10000001\n", "root:200000:65536\n");
  ASSERT_EQ(map.size(), 2U);
  EXPECT_EQ(map[0], (IdmapEntry{true, false, 100000, 0, 10000001}));
  EXPECT_EQ(map[1], (IdmapEntry{false, true, 200000, 0, 65536}));
}

TEST(Idmap, FirstRangeLargeEnoughWins) {
  const Idmap map = default_idmap("root:1000:100\nROOT:300000:70000\nroot:900000:80000\n", "root:300000:70000\n");
  ASSERT_EQ(map.size(), 2U);
  EXPECT_EQ(map[0].hostid, 300000);
  EXPECT_EQ(map[0].maprange, 70000);
}

TEST(Idmap, FallsBackToLxdsFixedRangeWithoutRootLines) {
  const Idmap expected = {{true, false, 1000000, 0, 1000000000}, {false, true, 1000000, 0, 1000000000}};
  EXPECT_EQ(default_idmap("", ""), expected);                                  // files missing
  EXPECT_EQ(default_idmap("alice:100000:65536\n", "root:1:70000"), expected);  // no uid line for root
  EXPECT_EQ(default_idmap("root:100000:65536\n", "alice:1:70000"), expected);  // no gid line for root
}

TEST(Idmap, RangesTooSmallLeaveNoMap) {
  EXPECT_TRUE(default_idmap("root:100000:1000\n", "root:100000:1000\n").empty());
}

TEST(Idmap, JsonIsGosEncodingByteForByte) {
  const Idmap map = {{true, false, 1000000, 0, 1000000000}, {false, true, 1000000, 0, 1000000000}};
  EXPECT_EQ(idmap_to_json(map), R"([{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":1000000000},)"
                                R"({"Isuid":false,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":1000000000}])");
  EXPECT_EQ(idmap_to_json({}), "[]");
  auto back = idmap_from_json(idmap_to_json(map));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, map);
}

TEST(Idmap, JsonParsingIsAsLenientAsGoAndNoMore) {
  auto lower = idmap_from_json(R"([{"isuid":true,"hostid":5,"nsid":0,"maprange":10,"extra":1}])");
  ASSERT_TRUE(lower.ok()) << lower.error().message;
  EXPECT_EQ(*lower, (Idmap{{true, false, 5, 0, 10}}));
  for (const char* empty : {"", "null", "[]"}) {
    auto r = idmap_from_json(empty);
    ASSERT_TRUE(r.ok()) << empty;
    EXPECT_TRUE(r->empty());
  }
  for (const char* bad :
       {"{", R"({"Isuid":true})", R"([{"Hostid":"5"}])", R"([{"Isuid":1}])", R"([{"Maprange":-1}])"}) {
    auto r = idmap_from_json(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().kind, lxd::ErrorKind::invalid_argument);
    EXPECT_NE(r.error().message.find("idmap"), std::string::npos);
  }
}

TEST(Idmap, ShiftsThroughTheFirstMatchingEntryOfItsKind) {
  const Idmap map = {{true, false, 100000, 0, 65536}, {false, true, 200000, 0, 65536}, {true, true, 500, 70000, 10}};
  EXPECT_EQ(shift_uid(map, 0), 100000);
  EXPECT_EQ(shift_uid(map, 65535), 165535);
  EXPECT_EQ(shift_uid(map, 65536), std::nullopt);
  EXPECT_EQ(shift_gid(map, 1000), 201000);
  EXPECT_EQ(shift_uid(map, 70005), 505);
  EXPECT_EQ(shift_gid(map, 70009), 509);
  EXPECT_EQ(unshift_uid(map, 100000), 0);
  EXPECT_EQ(unshift_gid(map, 100000), std::nullopt);
  EXPECT_EQ(unshift_gid(map, 505), 70005);
}

TEST(Idmap, LxcLinesOnePerKind) {
  const Idmap map = {{true, false, 100000, 0, 65536}, {true, true, 500, 70000, 10}};
  EXPECT_EQ(idmap_to_lxc(map), (std::vector<std::string>{"u 0 100000 65536", "u 70000 500 10", "g 70000 500 10"}));
}

// ---- shift_tree (needs root to chown) ----

struct stat stat_of(const std::filesystem::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st;
}

TEST(Idmap, ShiftTreeReownsEveryEntryKeepingSetuid) {
  if (::geteuid() != 0) GTEST_SKIP() << "chown needs root";
  TempDir tmp;
  const auto root = tmp.path() / "rootfs";
  std::filesystem::create_directories(root / "home/alice");
  std::ofstream(root / "passwd-tool") << "x";
  std::ofstream(root / "home/alice/file") << "x";
  std::filesystem::create_symlink("/etc/passwd", root / "link");
  ASSERT_EQ(::chown((root / "home/alice").c_str(), 1000, 1000), 0);
  ASSERT_EQ(::chown((root / "home/alice/file").c_str(), 1000, 100), 0);
  ASSERT_EQ(::chmod((root / "passwd-tool").c_str(), 04755), 0);

  const Idmap map = {{true, false, 100000, 0, 65536}, {false, true, 300000, 0, 65536}};
  auto stats = shift_tree(root, {}, map);
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_EQ(stats->entries, 6U);
  EXPECT_EQ(stats->unmapped, 0U);
  EXPECT_EQ(stat_of(root).st_uid, 100000U);
  EXPECT_EQ(stat_of(root).st_gid, 300000U);
  EXPECT_EQ(stat_of(root / "home/alice/file").st_uid, 101000U);
  EXPECT_EQ(stat_of(root / "home/alice/file").st_gid, 300100U);
  EXPECT_EQ(stat_of(root / "passwd-tool").st_mode & 07777, 04755U);
  EXPECT_EQ(stat_of(root / "link").st_uid, 100000U);  // the link itself,
  EXPECT_EQ(stat_of("/etc/passwd").st_uid, 0U);       // never its target

  // And back: privileged again.
  auto back = shift_tree(root, map, {});
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(stat_of(root / "home/alice/file").st_uid, 1000U);
  EXPECT_EQ(stat_of(root / "home/alice/file").st_gid, 100U);
}

TEST(Idmap, ShiftTreeLeavesIdsOutsideTheMapAlone) {
  if (::geteuid() != 0) GTEST_SKIP() << "chown needs root";
  TempDir tmp;
  std::ofstream(tmp.path() / "f") << "x";
  ASSERT_EQ(::chown((tmp.path() / "f").c_str(), 70000, 70000), 0);
  auto stats = shift_tree(tmp.path(), {}, {{true, true, 100000, 0, 65536}});
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_EQ(stats->unmapped, 1U);
  EXPECT_EQ(stat_of(tmp.path() / "f").st_uid, 70000U);
}

TEST(Idmap, ShiftTreeShiftsNamedAclEntries) {
  if (::geteuid() != 0) GTEST_SKIP() << "chown needs root";
  TempDir tmp;
  const auto f = tmp.path() / "f";
  std::ofstream(f) << "x";
  // version 2; USER_OBJ rw, USER 1000 r, GROUP_OBJ r, GROUP 50 r, MASK r, OTHER none
  struct Entry {
    std::uint16_t tag, perm;
    std::uint32_t id;
  };
  const std::array<Entry, 6> entries = {{{0x01, 6, 0xffffffff},
                                         {0x02, 4, 1000},
                                         {0x04, 4, 0xffffffff},
                                         {0x08, 4, 50},
                                         {0x10, 4, 0xffffffff},
                                         {0x20, 0, 0xffffffff}}};
  std::array<unsigned char, 4 + 6 * 8> acl{};
  const std::uint32_t version = 2;
  std::memcpy(acl.data(), &version, 4);
  std::memcpy(acl.data() + 4, entries.data(), sizeof(entries));
  if (::setxattr(f.c_str(), "system.posix_acl_access", acl.data(), acl.size(), 0) != 0) {
    GTEST_SKIP() << "no POSIX ACLs on " << tmp.path() << ": " << std::strerror(errno);
  }
  auto stats = shift_tree(tmp.path(), {}, {{true, true, 100000, 0, 65536}});
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  std::array<unsigned char, 64> got{};
  const ssize_t n = ::getxattr(f.c_str(), "system.posix_acl_access", got.data(), got.size());
  ASSERT_EQ(n, static_cast<ssize_t>(acl.size()));
  std::array<Entry, 6> shifted{};
  std::memcpy(shifted.data(), got.data() + 4, sizeof(shifted));
  EXPECT_EQ(shifted[1].id, 101000U);
  EXPECT_EQ(shifted[3].id, 100050U);
}

}  // namespace
}  // namespace berth::daemon
