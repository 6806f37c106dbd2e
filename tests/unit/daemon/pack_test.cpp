// ImageStore::publish (lxc publish): a volume packed into a new image, owners mapped back out of
// the container's map, links and modes kept; and the metadata.yaml it gets. Real files, run as
// root (the owners are chown'ed), as the other image store tests are.

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>

#include "../lxd/temp_dir.hpp"
#include "daemon/images/image_store.hpp"
#include "daemon/images/metadata.hpp"

namespace berth::daemon {
namespace {

namespace fs = std::filesystem;

void write_file(const fs::path& path, const std::string& data) {
  fs::create_directories(path.parent_path());
  std::ofstream{path, std::ios::binary} << data;
}

std::string read_file(const fs::path& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, {}};
}

struct stat stat_of(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st;
}

// The container's map: ids 0..65535 are host ids 1000000.. .
constexpr std::int64_t kBase = 1000000;
ImageStore::IdShift unshift_from_base() {
  ImageStore::IdShift s;
  s.uid = [](std::int64_t id) -> std::optional<std::int64_t> {
    if (id < kBase || id >= kBase + 65536) return std::nullopt;
    return id - kBase;
  };
  s.gid = s.uid;
  return s;
}
ImageStore::IdShift identity() {
  ImageStore::IdShift s;
  s.uid = [](std::int64_t id) { return std::optional<std::int64_t>{id}; };
  s.gid = s.uid;
  s.skip_devices = false;
  return s;
}

TEST(Publish, AVolumeBecomesAnImageWithItsOwnersMappedBackAndItsLinksKept) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to own files as the container's ids";
  lxd::testing::TempDir tmp;
  auto store = ImageStore::open(tmp.path() / "images");
  ASSERT_TRUE(store);
  const auto volume = tmp.path() / "volume";
  write_file(volume / "rootfs/bin/busybox", "busybox");
  ::chmod((volume / "rootfs/bin/busybox").c_str(), 0755);
  fs::create_symlink("busybox", volume / "rootfs/bin/sh");
  write_file(volume / "rootfs/home/user/notes", "mine");
  fs::create_hard_link(volume / "rootfs/home/user/notes", volume / "rootfs/home/user/notes.link");
  write_file(volume / "rootfs/stray", "owned by a host id outside the map");
  write_file(volume / "templates/hostname.tpl", "{{ container.name }}");
  ASSERT_EQ(::lchown((volume / "rootfs").c_str(), kBase, kBase), 0);
  ASSERT_EQ(::lchown((volume / "rootfs/bin/busybox").c_str(), kBase, kBase), 0);
  ASSERT_EQ(::lchown((volume / "rootfs/home/user/notes").c_str(), kBase + 1000, kBase + 1000), 0);
  ASSERT_EQ(::lchown((volume / "rootfs/stray").c_str(), 42, 42), 0);

  auto image = (*store)->publish(volume, "architecture: x86_64\ncreation_date: 1700000000\n", unshift_from_base());
  ASSERT_TRUE(image) << image.error().message;
  EXPECT_FALSE(image->split);
  EXPECT_EQ(image->metadata.architecture, "x86_64");
  EXPECT_EQ((*store)->fingerprints(), std::vector<std::string>{image->fingerprint});

  // Unpacked with host ids, the tarball's owners show: the image's ids, not the container's.
  const auto out = tmp.path() / "out";
  ASSERT_TRUE((*store)->unpack(image->fingerprint, out, identity()));
  EXPECT_EQ(read_file(out / "rootfs/bin/busybox"), "busybox");
  EXPECT_EQ(stat_of(out / "rootfs/bin/busybox").st_mode & 07777, 0755u);
  EXPECT_EQ(stat_of(out / "rootfs/bin/busybox").st_uid, 0u);
  EXPECT_EQ(stat_of(out / "rootfs/home/user/notes").st_uid, 1000u);
  EXPECT_EQ(stat_of(out / "rootfs/home/user/notes").st_gid, 1000u);
  EXPECT_EQ(stat_of(out / "rootfs/stray").st_uid, 65534u) << "outside the map: nobody, as the container saw it";
  EXPECT_EQ(fs::read_symlink(out / "rootfs/bin/sh"), "busybox");
  EXPECT_EQ(stat_of(out / "rootfs/home/user/notes").st_ino, stat_of(out / "rootfs/home/user/notes.link").st_ino)
      << "a hard link stays one";
  EXPECT_EQ(read_file(out / "templates/hostname.tpl"), "{{ container.name }}");
  EXPECT_EQ(read_file(out / "metadata.yaml"), "architecture: x86_64\ncreation_date: 1700000000\n");
}

// The xattrs of `name` in the image's tarball.
std::map<std::string, std::string> xattrs_in(const fs::path& tarball, const std::string& name, bool& found) {
  std::map<std::string, std::string> out;
  found = false;
  archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_all(a);
  EXPECT_EQ(archive_read_open_filename(a, tarball.c_str(), 1 << 16), ARCHIVE_OK);
  archive_entry* entry = nullptr;
  while (archive_read_next_header(a, &entry) == ARCHIVE_OK) {
    if (name != archive_entry_pathname(entry)) continue;
    found = true;
    const char* key = nullptr;
    const void* value = nullptr;
    std::size_t size = 0;
    archive_entry_xattr_reset(entry);
    while (archive_entry_xattr_next(entry, &key, &value, &size) == ARCHIVE_OK) {
      out[key] = std::string(static_cast<const char*>(value), size);
    }
  }
  archive_read_free(a);
  return out;
}

TEST(Publish, FileCapabilitiesAreMappedBackAndSocketsLeftOut) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to set a file capability";
  lxd::testing::TempDir tmp;
  auto store = ImageStore::open(tmp.path() / "images");
  ASSERT_TRUE(store);
  const auto volume = tmp.path() / "volume";
  write_file(volume / "rootfs/bin/ping", "ping");
  // cap_net_raw, version 3, set inside the container: its root id is the map's base.
  std::array<std::uint32_t, 6> cap{0x03000000 | 0x1, 1U << 13, 0, 0, 0, static_cast<std::uint32_t>(kBase)};
  ASSERT_EQ(::setxattr((volume / "rootfs/bin/ping").c_str(), "security.capability", cap.data(), sizeof cap, 0), 0)
      << std::strerror(errno);
  const int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const auto sock_path = (volume / "rootfs/s").string();
  std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);

  auto image = (*store)->publish(volume, "architecture: x86_64\ncreation_date: 1\n", unshift_from_base());
  ::close(sock);
  ASSERT_TRUE(image) << image.error().message;
  const auto tarball = tmp.path() / "images" / image->fingerprint;
  bool found = false;
  const auto xattrs = xattrs_in(tarball, "rootfs/bin/ping", found);
  ASSERT_TRUE(found);
  ASSERT_EQ(xattrs.count("security.capability"), 1u);
  const auto& packed = xattrs.at("security.capability");
  ASSERT_EQ(packed.size(), sizeof cap);
  std::uint32_t rootid = 1;
  std::memcpy(&rootid, packed.data() + 20, sizeof rootid);
  EXPECT_EQ(rootid, 0u) << "the capability's root id is the image's root, not the host's id";
  xattrs_in(tarball, "rootfs/s", found);
  EXPECT_FALSE(found) << "a socket is not packed";
}

TEST(Publish, AVolumeWithoutRootfsIsNoImageAndLeavesNothing) {
  lxd::testing::TempDir tmp;
  auto store = ImageStore::open(tmp.path() / "images");
  ASSERT_TRUE(store);
  fs::create_directories(tmp.path() / "empty");
  auto image = (*store)->publish(tmp.path() / "empty", "architecture: x86_64\ncreation_date: 1\n", identity());
  ASSERT_FALSE(image);
  EXPECT_NE(image.error().message.find("rootfs"), std::string::npos) << image.error().message;
  EXPECT_TRUE(fs::is_empty(tmp.path() / "images"));
}

TEST(PublishedMetadata, TheInstancesOwnIsKeptWithPropertiesReplacedOnlyWhenGiven) {
  const std::string own = "architecture: x86_64\ncreation_date: 5\nproperties:\n  os: busybox\n  release: '1'\n";
  auto kept = published_metadata(own, "aarch64", 99, std::nullopt);
  ASSERT_TRUE(kept);
  auto parsed = parse_image_metadata(*kept);
  ASSERT_TRUE(parsed) << *kept;
  EXPECT_EQ(parsed->architecture, "x86_64");
  EXPECT_EQ(parsed->creation_date, 5);
  EXPECT_EQ(parsed->properties, (std::map<std::string, std::string>{{"os", "busybox"}, {"release", "1"}}));

  auto replaced = published_metadata(own, "aarch64", 99, std::map<std::string, std::string>{{"os", "mine"}});
  ASSERT_TRUE(replaced);
  EXPECT_EQ(parse_image_metadata(*replaced)->properties, (std::map<std::string, std::string>{{"os", "mine"}}));

  auto fresh = published_metadata(std::nullopt, "x86_64", 1700000000, std::map<std::string, std::string>{});
  ASSERT_TRUE(fresh);
  auto made = parse_image_metadata(*fresh);
  ASSERT_TRUE(made) << *fresh;
  EXPECT_EQ(made->architecture, "x86_64");
  EXPECT_EQ(made->creation_date, 1700000000);
  EXPECT_TRUE(made->properties.empty());

  auto broken = published_metadata(std::string{"a: [unclosed"}, "x86_64", 1, std::nullopt);
  ASSERT_FALSE(broken);
  EXPECT_NE(broken.error().message.find("metadata.yaml"), std::string::npos);
}

}  // namespace
}  // namespace berth::daemon
