#include "daemon/instances/rootfs_files.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "../lxd/temp_dir.hpp"

namespace berth::daemon {
namespace {

namespace fs = std::filesystem;

// Container ids N are host ids 100000+N, as an unprivileged container's map would have them.
IdMappings to_host() {
  return {[](std::int64_t id) { return std::optional<std::int64_t>{id + 100000}; },
          [](std::int64_t id) { return std::optional<std::int64_t>{id + 100000}; }};
}
IdMappings to_container() {
  const IdMapping back = [](std::int64_t id) {
    return id >= 100000 ? std::optional<std::int64_t>{id - 100000} : std::nullopt;
  };
  return {back, back};
}

class RootfsFiles : public ::testing::Test {
 protected:
  RootfsFiles() {
    fs::create_directories(root() / "etc");
    fs::create_directories(tmp_.path() / "outside");
    std::ofstream(tmp_.path() / "outside" / "secret") << "host secret";
    std::ofstream(root() / "etc" / "hostname") << "c1\n";
  }
  [[nodiscard]] fs::path root() const { return tmp_.path() / "rootfs"; }
  static std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  lxd::testing::TempDir tmp_;
};

TEST_F(RootfsFiles, WritesWithTheContainersOwnerAndReadsItBack) {
  RootfsWrite w;
  w.content = "hello\n";
  w.uid = 1000;
  w.gid = 1001;
  w.mode = 0640;
  ASSERT_TRUE(write_in_root(root(), "/etc/motd", w, to_host()));
  struct stat st {};
  ASSERT_EQ(::stat((root() / "etc/motd").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 101000u);
  EXPECT_EQ(st.st_gid, 101001u);
  EXPECT_EQ(st.st_mode & 07777, 0640u);

  auto e = read_in_root(root(), "etc/motd", to_container(), 1 << 20);  // relative: from /
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_EQ(e->type, "file");
  EXPECT_EQ(e->content, "hello\n");
  EXPECT_EQ(e->uid, 1000);
  EXPECT_EQ(e->gid, 1001);
  EXPECT_EQ(e->mode, 0640u);

  // An existing file keeps its owner and mode; append adds.
  RootfsWrite more;
  more.content = "again\n";
  more.write = "append";
  more.uid = 0;
  more.mode = 0600;
  ASSERT_TRUE(write_in_root(root(), "/etc/motd", more, to_host()));
  EXPECT_EQ(read(root() / "etc/motd"), "hello\nagain\n");
  ASSERT_EQ(::stat((root() / "etc/motd").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 101000u);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

TEST_F(RootfsFiles, NothingLeavesTheRoot) {
  fs::create_symlink("/../../outside/secret", root() / "etc" / "abs");
  fs::create_symlink("../../outside", root() / "etc" / "rel");
  // Reading through a symlink that points out resolves inside: nothing there.
  EXPECT_FALSE(read_in_root(root(), "/etc/rel/secret", to_container(), 1 << 20));
  EXPECT_FALSE(read_in_root(root(), "/../outside/secret", to_container(), 1 << 20));
  // A symlink itself is answered as a symlink, not followed.
  auto link = read_in_root(root(), "/etc/abs", to_container(), 1 << 20);
  ASSERT_TRUE(link);
  EXPECT_EQ(link->type, "symlink");
  EXPECT_EQ(link->content, "/../../outside/secret");
  // Writing or deleting through them never reaches outside the root.
  RootfsWrite w;
  w.content = "x";
  EXPECT_FALSE(write_in_root(root(), "/etc/rel/new", w, to_host())) << "no /outside in the root";
  EXPECT_FALSE(write_in_root(root(), "/etc/abs", w, to_host()));
  EXPECT_FALSE(remove_in_root(root(), "/../outside/secret"));
  EXPECT_FALSE(fs::exists(tmp_.path() / "outside" / "new"));
  EXPECT_EQ(read(tmp_.path() / "outside" / "secret"), "host secret");
  // With an /outside in the root, they resolve to it.
  fs::create_directories(root() / "outside");
  EXPECT_TRUE(write_in_root(root(), "/etc/abs", w, to_host()));
  EXPECT_EQ(read(root() / "outside" / "secret"), "x");
  EXPECT_TRUE(remove_in_root(root(), "/../outside/secret"));
  EXPECT_FALSE(fs::exists(root() / "outside" / "secret"));
  EXPECT_EQ(read(tmp_.path() / "outside" / "secret"), "host secret");
}

TEST_F(RootfsFiles, DirectoriesSymlinksAndDeletes) {
  RootfsWrite dir;
  dir.type = "directory";
  dir.uid = 5;
  ASSERT_TRUE(write_in_root(root(), "/srv/", dir, to_host())) << "a trailing / names the directory";
  ASSERT_TRUE(write_in_root(root(), "/srv/data", dir, to_host()));
  struct stat st {};
  ASSERT_EQ(::stat((root() / "srv/data").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750u) << "LXD's default for a directory";
  EXPECT_EQ(st.st_uid, 100005u);
  EXPECT_TRUE(write_in_root(root(), "/srv/data", dir, to_host())) << "an existing directory is fine";

  RootfsWrite link;
  link.type = "symlink";
  link.content = "../etc/hostname";
  ASSERT_TRUE(write_in_root(root(), "/srv/link", link, to_host()));
  EXPECT_EQ(fs::read_symlink(root() / "srv/link"), "../etc/hostname");
  EXPECT_TRUE(write_in_root(root(), "/srv/link", link, to_host())) << "the same symlink again is fine";

  auto listing = read_in_root(root(), "/srv", to_container(), 1 << 20);
  ASSERT_TRUE(listing);
  EXPECT_EQ(listing->type, "directory");
  EXPECT_EQ(listing->entries, (std::vector<std::string>{"data", "link"}));

  EXPECT_TRUE(remove_in_root(root(), "/srv/link"));
  EXPECT_TRUE(fs::exists(root() / "etc/hostname")) << "deleting a symlink leaves its target";
  EXPECT_TRUE(remove_in_root(root(), "/srv/data"));
  EXPECT_FALSE(fs::exists(root() / "srv/data"));
  auto missing = remove_in_root(root(), "/srv/data");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, lxd::ErrorKind::not_found);
  EXPECT_FALSE(remove_in_root(root(), "/"));
  EXPECT_FALSE(remove_in_root(root(), "/etc")) << "a directory that is not empty stays";
}

TEST_F(RootfsFiles, RefusesWhatCannotBeServed) {
  ASSERT_EQ(::mkfifo((root() / "etc/fifo").c_str(), 0600), 0);
  EXPECT_FALSE(read_in_root(root(), "/etc/fifo", to_container(), 1 << 20)) << "a fifo would block";
  RootfsWrite w;
  w.content = "x";
  EXPECT_FALSE(write_in_root(root(), "/etc/fifo", w, to_host())) << "writing a fifo would block";
  std::ofstream(root() / "etc/big") << std::string(2048, 'x');
  EXPECT_FALSE(read_in_root(root(), "/etc/big", to_container(), 1024));
  RootfsWrite bad;
  bad.write = "prepend";
  EXPECT_FALSE(write_in_root(root(), "/etc/x", bad, to_host()));
  bad.write = "overwrite";
  bad.type = "device";
  EXPECT_FALSE(write_in_root(root(), "/etc/x", bad, to_host()));
  RootfsWrite outside_map;
  outside_map.content = "x";
  outside_map.uid = 5;
  const IdMapping none = [](std::int64_t) { return std::optional<std::int64_t>{}; };
  EXPECT_FALSE(write_in_root(root(), "/etc/y", outside_map, {none, none}));
  EXPECT_FALSE(fs::exists(root() / "etc/y"));
  EXPECT_FALSE(read_in_root(root(), "", to_container(), 1024));
}

}  // namespace
}  // namespace berth::daemon
