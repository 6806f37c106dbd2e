// The image store against real tarballs made here (tar, and libarchive for entries tar cannot be
// told to make: foreign owners, device nodes, "../" names), checked with sha256sum and stat.

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "daemon/images/image_store.hpp"
#include "daemon/images/multipart.hpp"

namespace berth::daemon {
namespace {

namespace fs = std::filesystem;
using lxd::ErrorKind;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "berth-images-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void run(const std::string& command) {
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
}

std::string sha256sum(const std::string& files) {
  FILE* pipe = ::popen(("cat " + files + " | sha256sum").c_str(), "r");
  char out[65] = {};
  EXPECT_EQ(std::fread(out, 1, 64, pipe), 64u);
  ::pclose(pipe);
  return out;
}

void write_file(const fs::path& path, const std::string& data) {
  fs::create_directories(path.parent_path());
  std::ofstream{path, std::ios::binary} << data;
}

std::string read_file(const fs::path& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, {}};
}

std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(dir)) out.push_back(entry.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

const char* kMetadata =
    "architecture: x86_64\n"
    "creation_date: 1700000000\n"
    "properties: {os: busybox, release: \"1.35\", description: busybox test image}\n"
    "templates:\n"
    "  /etc/hostname:\n"
    "    when: [create, copy]\n"
    "    create_only: false\n"
    "    template: hostname.tpl\n";

// testbed.md's tiny image: metadata.yaml, templates/ and a rootfs with a binary and symlinks.
fs::path make_tree(const fs::path& dir, const std::string& metadata = kMetadata) {
  const fs::path tree = dir / "img";
  write_file(tree / "metadata.yaml", metadata);
  write_file(tree / "templates/hostname.tpl", "{{ container.name }}\n");
  write_file(tree / "rootfs/bin/busybox", std::string(100000, 'b'));
  for (const char* d : {"sbin", "etc", "proc", "sys", "dev", "tmp", "root"})
    fs::create_directories(tree / "rootfs" / d);
  fs::create_symlink("busybox", tree / "rootfs/bin/sh");
  fs::create_symlink("../bin/busybox", tree / "rootfs/sbin/init");
  return tree;
}

// A unified image as `tar -C img -czf` makes it; returns the tarball.
fs::path make_unified(const fs::path& dir, const std::string& metadata = kMetadata) {
  const auto tree = make_tree(dir, metadata);
  const auto tarball = dir / "bb.tar.gz";
  run("tar -C " + tree.string() + " -czf " + tarball.string() + " metadata.yaml templates rootfs");
  return tarball;
}

struct Split {
  fs::path metadata, rootfs;
};
Split make_split(const fs::path& dir) {
  const auto tree = make_tree(dir);
  Split out{dir / "meta.tar.xz", dir / "rootfs.tar.gz"};
  run("tar -C " + tree.string() + " -cJf " + out.metadata.string() + " metadata.yaml templates");
  run("tar -C " + (tree / "rootfs").string() + " -czf " + out.rootfs.string() + " .");
  return out;
}

// An entry libarchive writes for the tests that need what tar cannot be asked for.
struct Entry {
  std::string name;
  unsigned type = AE_IFREG;
  unsigned mode = 0644;
  std::int64_t uid = 0, gid = 0;
  std::string data;
  std::string link;  // symlink target, or hard link target when hardlink
  bool hardlink = false;
  std::int64_t mtime = 1600000000;
  std::string xattr_name, xattr_value;
};

Entry file(std::string name, std::string data, unsigned mode = 0644, std::int64_t owner = 0) {
  Entry e;
  e.name = std::move(name);
  e.data = std::move(data);
  e.mode = mode;
  e.uid = e.gid = owner;
  return e;
}
Entry dir(std::string name) {
  Entry e;
  e.name = std::move(name);
  e.type = AE_IFDIR;
  e.mode = 0755;
  return e;
}
Entry symlink(std::string name, std::string target) {
  Entry e;
  e.name = std::move(name);
  e.type = AE_IFLNK;
  e.mode = 0777;
  e.link = std::move(target);
  return e;
}
Entry hardlink(std::string name, std::string target, std::int64_t owner) {
  Entry e = file(std::move(name), "", 0644, owner);
  e.link = std::move(target);
  e.hardlink = true;
  return e;
}
Entry chardev(std::string name) {
  Entry e;
  e.name = std::move(name);
  e.type = AE_IFCHR;
  e.mode = 0666;
  return e;
}

void write_tar(const fs::path& path, const std::vector<Entry>& entries) {
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_add_filter_gzip(a);
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
  for (const auto& e : entries) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.name.c_str());
    archive_entry_set_filetype(entry, e.type);
    archive_entry_set_perm(entry, e.mode);
    archive_entry_set_uid(entry, e.uid);
    archive_entry_set_gid(entry, e.gid);
    archive_entry_set_mtime(entry, e.mtime, 0);
    if (e.type == AE_IFCHR) archive_entry_set_rdev(entry, makedev(1, 3));
    if (e.type == AE_IFLNK) archive_entry_set_symlink(entry, e.link.c_str());
    if (e.hardlink) archive_entry_set_hardlink(entry, e.link.c_str());
    if (!e.xattr_name.empty()) {
      archive_entry_xattr_add_entry(entry, e.xattr_name.c_str(), e.xattr_value.data(), e.xattr_value.size());
    }
    archive_entry_set_size(entry, e.hardlink ? 0 : static_cast<la_int64_t>(e.data.size()));
    EXPECT_EQ(archive_write_header(a, entry), ARCHIVE_OK) << e.name;
    if (!e.data.empty() && !e.hardlink) archive_write_data(a, e.data.data(), e.data.size());
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
}

std::vector<Entry> image_entries(std::vector<Entry> rootfs) {
  std::vector<Entry> out{file("metadata.yaml", kMetadata), dir("rootfs")};
  out.insert(out.end(), rootfs.begin(), rootfs.end());
  return out;
}

ImageStore::IdShift shift_by(std::int64_t base, std::int64_t range = 65536, bool skip_devices = true) {
  auto map = [base, range](std::int64_t id) -> std::optional<std::int64_t> {
    if (id < 0 || id >= range) return std::nullopt;
    return base + id;
  };
  return {map, map, skip_devices};
}

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = ImageStore::open(tmp.path() / "images");
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store = std::move(*opened);
  }
  // The file moved into the store as the API would: copied to a temp path first.
  fs::path upload(const fs::path& file) {
    auto path = store->temp_path();
    fs::copy_file(file, path);
    return path;
  }
  StoredImage import_entries(const std::vector<Entry>& entries) {
    write_tar(tmp.path() / "custom.tar.gz", entries);
    auto imported = store->import_unified(upload(tmp.path() / "custom.tar.gz"), std::nullopt);
    EXPECT_TRUE(imported.ok()) << imported.error().message;
    return imported.ok() ? *imported : StoredImage{};
  }
  void expect_invalid_and_empty(const fs::path& tarball, const std::string& says) {
    auto imported = store->import_unified(upload(tarball), std::nullopt);
    ASSERT_FALSE(imported.ok());
    EXPECT_EQ(imported.error().kind, ErrorKind::invalid_argument);
    EXPECT_NE(imported.error().message.find(says), std::string::npos) << imported.error().message;
    EXPECT_TRUE(listing(store->dir()).empty());
  }

  TempDir tmp;
  std::unique_ptr<ImageStore> store;
};

TEST_F(ImageStoreTest, UnifiedFingerprintIsSha256OfTheFile) {
  const auto tarball = make_unified(tmp.path());
  const auto uploaded = upload(tarball);
  auto image = store->import_unified(uploaded, std::nullopt);
  ASSERT_TRUE(image.ok()) << image.error().message;
  EXPECT_EQ(image->fingerprint, sha256sum(tarball.string()));
  EXPECT_EQ(image->size, fs::file_size(tarball));
  EXPECT_FALSE(image->split);
  EXPECT_EQ(image->metadata.architecture, "x86_64");
  EXPECT_EQ(image->metadata.creation_date, 1700000000);
  EXPECT_FALSE(image->metadata.expiry_date);
  EXPECT_EQ(image->metadata.properties.at("release"), "1.35");
  EXPECT_EQ(image->metadata.templates.at("/etc/hostname"),
            (nlohmann::json{{"when", {"create", "copy"}}, {"create_only", false}, {"template", "hostname.tpl"}}));
  EXPECT_FALSE(fs::exists(uploaded));
  EXPECT_EQ(store->fingerprints(), std::vector<std::string>{image->fingerprint});
  EXPECT_EQ(store->files(image->fingerprint), std::vector<fs::path>{store->dir() / image->fingerprint});
  EXPECT_EQ(read_file(store->dir() / image->fingerprint), read_file(tarball));
}

TEST_F(ImageStoreTest, UncompressedTarWithTrailingBytesIsHashedWhole) {
  const auto tree = make_tree(tmp.path());
  const auto tarball = tmp.path() / "bb.tar";
  run("tar -C " + tree.string() + " -cf " + tarball.string() + " metadata.yaml templates rootfs");
  run("head -c 300000 /dev/zero >> " + tarball.string());  // past the end-of-archive marker
  auto image = store->import_unified(upload(tarball), std::nullopt);
  ASSERT_TRUE(image.ok()) << image.error().message;
  EXPECT_EQ(image->fingerprint, sha256sum(tarball.string()));
  EXPECT_EQ(image->size, fs::file_size(tarball));
}

TEST_F(ImageStoreTest, Bzip2XzAndZstdTarballsAreRead) {
  const auto tree = make_tree(tmp.path());
  for (const std::string flags : {"-cjf", "-cJf", "--zstd -cf"}) {
    if (flags.starts_with("--zstd") && std::system("command -v zstd >/dev/null") != 0) continue;
    const auto tarball = tmp.path() / "bb.tar.x";
    run("tar -C " + tree.string() + " " + flags + " " + tarball.string() + " metadata.yaml templates rootfs");
    auto image = store->import_unified(upload(tarball), std::nullopt);
    ASSERT_TRUE(image.ok()) << flags << ": " << image.error().message;
    EXPECT_EQ(image->fingerprint, sha256sum(tarball.string()));
    const auto target = tmp.path() / "c1";
    ASSERT_TRUE(store->unpack(image->fingerprint, target, shift_by(0)).ok()) << flags;
    EXPECT_EQ(fs::file_size(target / "rootfs/bin/busybox"), 100000u);
    fs::remove_all(target);
  }
}

TEST_F(ImageStoreTest, SplitFingerprintIsSha256OfMetadataThenRootfs) {
  const auto split = make_split(tmp.path());
  auto image = store->import_split(upload(split.metadata), upload(split.rootfs), std::nullopt);
  ASSERT_TRUE(image.ok()) << image.error().message;
  EXPECT_EQ(image->fingerprint, sha256sum(split.metadata.string() + " " + split.rootfs.string()));
  EXPECT_EQ(image->size, fs::file_size(split.metadata) + fs::file_size(split.rootfs));
  EXPECT_TRUE(image->split);
  const auto files = store->files(image->fingerprint);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(read_file(files[0]), read_file(split.metadata));
  EXPECT_EQ(read_file(files[1]), read_file(split.rootfs));
  EXPECT_EQ(files[1].filename(), image->fingerprint + ".rootfs");
}

TEST_F(ImageStoreTest, TheSameImageTwiceIsAConflictNamingItsFingerprint) {
  const auto tarball = make_unified(tmp.path());
  auto first = store->import_unified(upload(tarball), std::nullopt);
  ASSERT_TRUE(first.ok());
  const auto again = upload(tarball);
  auto second = store->import_unified(again, std::nullopt);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().kind, ErrorKind::conflict);
  EXPECT_NE(second.error().message.find(first->fingerprint), std::string::npos);
  EXPECT_FALSE(fs::exists(again));
  EXPECT_EQ(listing(store->dir()), std::vector<std::string>{first->fingerprint});
}

TEST_F(ImageStoreTest, ExpectedFingerprintMustMatch) {
  const auto tarball = make_unified(tmp.path());
  const std::string wrong(64, 'a');
  auto refused = store->import_unified(upload(tarball), wrong);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, ErrorKind::invalid_argument);
  EXPECT_NE(refused.error().message.find(wrong), std::string::npos);
  EXPECT_TRUE(listing(store->dir()).empty());

  const auto split = make_split(tmp.path() / "s");
  auto split_refused = store->import_split(upload(split.metadata), upload(split.rootfs), wrong);
  ASSERT_FALSE(split_refused.ok());
  EXPECT_TRUE(listing(store->dir()).empty());

  auto accepted = store->import_unified(upload(tarball), sha256sum(tarball.string()));
  EXPECT_TRUE(accepted.ok());
}

TEST_F(ImageStoreTest, TarballsThatAreNotImagesAreRefusedAndNothingIsLeft) {
  write_tar(tmp.path() / "nometa.tar.gz", {dir("rootfs")});
  expect_invalid_and_empty(tmp.path() / "nometa.tar.gz", "no metadata.yaml");

  write_tar(tmp.path() / "noarch.tar.gz", {file("metadata.yaml", "creation_date: 5\n"), dir("rootfs")});
  expect_invalid_and_empty(tmp.path() / "noarch.tar.gz", "no architecture");

  write_tar(tmp.path() / "badyaml.tar.gz", {file("metadata.yaml", "architecture: [x86_64\n"), dir("rootfs")});
  expect_invalid_and_empty(tmp.path() / "badyaml.tar.gz", "not valid YAML");

  write_tar(tmp.path() / "norootfs.tar.gz", {file("metadata.yaml", kMetadata)});
  expect_invalid_and_empty(tmp.path() / "norootfs.tar.gz", "no rootfs/");

  std::string garbage(5000, '\0');
  std::mt19937 random{42};
  for (auto& c : garbage) c = static_cast<char>(random());
  write_file(tmp.path() / "garbage", garbage);
  expect_invalid_and_empty(tmp.path() / "garbage", "is it a tarball");

  const auto good = make_unified(tmp.path());
  const auto bytes = read_file(good);
  write_file(tmp.path() / "truncated.tar.gz", bytes.substr(0, bytes.size() * 2 / 3));
  expect_invalid_and_empty(tmp.path() / "truncated.tar.gz", "image tarball");
  write_file(tmp.path() / "squash", "hsqs" + std::string(4096, '\0'));
  expect_invalid_and_empty(tmp.path() / "squash", "squashfs");
}

TEST_F(ImageStoreTest, ImagesSurviveReopeningTheStore) {
  const auto tarball = make_unified(tmp.path());
  auto image = store->import_unified(upload(tarball), std::nullopt);
  ASSERT_TRUE(image.ok());
  const auto leftover = store->temp_path();
  write_file(leftover, "half an upload");
  const auto orphan = store->dir() / (std::string(64, 'e') + ".rootfs");
  write_file(orphan, "a rootfs whose metadata never arrived");
  store.reset();

  auto reopened = ImageStore::open(tmp.path() / "images");
  ASSERT_TRUE(reopened.ok());
  EXPECT_FALSE(fs::exists(leftover));
  EXPECT_FALSE(fs::exists(orphan));
  EXPECT_TRUE(fs::exists((*reopened)->dir() / image->fingerprint));
  EXPECT_EQ((fs::status(tmp.path() / "images").permissions() & fs::perms::all), fs::perms::owner_all);
  auto read = (*reopened)->read(image->fingerprint);
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_EQ(read->fingerprint, image->fingerprint);
  EXPECT_EQ(read->size, image->size);
  EXPECT_EQ(read->metadata.properties, image->metadata.properties);
  EXPECT_EQ(read->metadata.templates, image->metadata.templates);
  EXPECT_EQ(read->metadata.creation_date, image->metadata.creation_date);

  ASSERT_TRUE((*reopened)->remove(image->fingerprint).ok());
  EXPECT_EQ((*reopened)->read(image->fingerprint).error().kind, ErrorKind::not_found);
  EXPECT_EQ((*reopened)->remove(image->fingerprint).error().kind, ErrorKind::not_found);
  EXPECT_EQ((*reopened)->read("../../etc/passwd").error().kind, ErrorKind::invalid_argument);
  EXPECT_TRUE((*reopened)->fingerprints().empty());
}

TEST_F(ImageStoreTest, UnpackMapsOwnersAndKeepsModesLinksAndTimes) {
  auto owned = file("rootfs/home/u", "mine", 0640, 1000);
  owned.mtime = 1234567890;
  const auto image = import_entries(image_entries({
      dir("rootfs/home"),
      owned,
      hardlink("rootfs/home/u2", "rootfs/home/u", 1000),
      dir("rootfs/bin"),
      symlink("rootfs/bin/sh", "/bin/busybox"),
      dir("rootfs/dev"),
      chardev("rootfs/dev/null"),
  }));
  const auto target = tmp.path() / "c1";
  auto unpacked = store->unpack(image.fingerprint, target, shift_by(1000000));
  ASSERT_TRUE(unpacked.ok()) << unpacked.error().message;

  EXPECT_EQ(read_file(target / "metadata.yaml"), kMetadata);
  struct stat st {};
  ASSERT_EQ(::lstat((target / "rootfs").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000000u);
  ASSERT_EQ(::lstat((target / "rootfs/home/u").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1001000u);
  EXPECT_EQ(st.st_gid, 1001000u);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_mtime, 1234567890);
  EXPECT_EQ(st.st_nlink, 2u);
  struct stat link {};
  ASSERT_EQ(::lstat((target / "rootfs/home/u2").c_str(), &link), 0);
  EXPECT_EQ(link.st_ino, st.st_ino);
  ASSERT_EQ(::lstat((target / "rootfs/bin/sh").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_uid, 1000000u);
  EXPECT_EQ(fs::read_symlink(target / "rootfs/bin/sh"), "/bin/busybox");
  EXPECT_TRUE(fs::is_directory(target / "rootfs/dev"));
  EXPECT_FALSE(fs::exists(fs::symlink_status(target / "rootfs/dev/null")));
}

TEST_F(ImageStoreTest, UnpackKeepsXattrs) {
  const auto probe = tmp.path() / "probe";
  write_file(probe, "");
  if (::setxattr(probe.c_str(), "user.berth", "1", 1, 0) != 0) GTEST_SKIP() << "no user xattrs on " << tmp.path();
  auto with_xattr = file("rootfs/f", "x");
  with_xattr.xattr_name = "user.berth";
  with_xattr.xattr_value = "kept";
  const auto image = import_entries(image_entries({with_xattr}));
  const auto target = tmp.path() / "c1";
  ASSERT_TRUE(store->unpack(image.fingerprint, target, shift_by(0)).ok());
  char value[16] = {};
  ASSERT_EQ(::getxattr((target / "rootfs/f").c_str(), "user.berth", value, sizeof value), 4);
  EXPECT_EQ(std::string(value, 4), "kept");
}

TEST_F(ImageStoreTest, UnpackRefusesAnOwnerOutsideTheMapAndRemovesWhatItWrote) {
  const auto image = import_entries(image_entries({
      file("rootfs/a", "fine"),
      file("rootfs/nobody", "x", 0644, 70000),
  }));
  const auto target = tmp.path() / "c1";
  auto unpacked = store->unpack(image.fingerprint, target, shift_by(1000000));
  ASSERT_FALSE(unpacked.ok());
  EXPECT_NE(unpacked.error().message.find("rootfs/nobody"), std::string::npos) << unpacked.error().message;
  EXPECT_NE(unpacked.error().message.find("70000"), std::string::npos);
  EXPECT_FALSE(fs::exists(target));
}

TEST_F(ImageStoreTest, UnpackRefusesDotDotAndLeavesTheTargetAsGiven) {
  const auto image = import_entries(image_entries({file("rootfs/ok", "x"), file("../evil", "x")}));
  const auto target = tmp.path() / "deep/c1";
  fs::create_directories(target);
  auto unpacked = store->unpack(image.fingerprint, target, shift_by(0));
  ASSERT_FALSE(unpacked.ok());
  EXPECT_NE(unpacked.error().message.find("../evil"), std::string::npos) << unpacked.error().message;
  EXPECT_FALSE(fs::exists(tmp.path() / "deep/evil"));
  EXPECT_TRUE(fs::is_directory(target));
  EXPECT_TRUE(fs::is_empty(target));
}

TEST_F(ImageStoreTest, UnpackRefusesWritingThroughASymlink) {
  const auto outside = tmp.path() / "outside";
  fs::create_directories(outside);
  const auto image = import_entries(image_entries({
      symlink("rootfs/escape", outside.string()),
      file("rootfs/escape/evil", "x"),
  }));
  const auto target = tmp.path() / "c1";
  auto unpacked = store->unpack(image.fingerprint, target, shift_by(0));
  ASSERT_FALSE(unpacked.ok());
  EXPECT_FALSE(fs::exists(outside / "evil"));
  EXPECT_FALSE(fs::exists(target));

  fs::create_directories(target / "x");
  EXPECT_EQ(store->unpack(image.fingerprint, target, shift_by(0)).error().kind, ErrorKind::invalid_argument);
  EXPECT_TRUE(fs::exists(target / "x"));  // not empty: refused, untouched
}

TEST_F(ImageStoreTest, UnpackRefusesAHardLinkThroughASymlink) {
  const auto outside = tmp.path() / "outside";
  write_file(outside / "secret", "host's");
  const auto image = import_entries(image_entries({
      symlink("rootfs/escape", outside.string()),
      hardlink("rootfs/grab", "rootfs/escape/secret", 0),
  }));
  auto unpacked = store->unpack(image.fingerprint, tmp.path() / "c1", shift_by(1000000));
  ASSERT_FALSE(unpacked.ok());
  EXPECT_NE(unpacked.error().message.find("rootfs/grab"), std::string::npos) << unpacked.error().message;
  struct stat st {};
  ASSERT_EQ(::stat((outside / "secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_FALSE(fs::exists(tmp.path() / "c1"));
}

TEST_F(ImageStoreTest, UnpackSplitImagePutsTheRootfsUnderRootfs) {
  const auto split = make_split(tmp.path());
  auto image = store->import_split(upload(split.metadata), upload(split.rootfs), std::nullopt);
  ASSERT_TRUE(image.ok());
  const auto target = tmp.path() / "c1";
  auto unpacked = store->unpack(image->fingerprint, target, shift_by(1000000));
  ASSERT_TRUE(unpacked.ok()) << unpacked.error().message;
  EXPECT_TRUE(fs::exists(target / "metadata.yaml"));
  EXPECT_TRUE(fs::exists(target / "templates/hostname.tpl"));
  EXPECT_EQ(fs::read_symlink(target / "rootfs/sbin/init"), "../bin/busybox");
  struct stat st {};
  ASSERT_EQ(::stat((target / "rootfs/bin/busybox").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000000u);
  ASSERT_EQ(::stat((target / "rootfs").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000000u);
}

// --- multipart ---------------------------------------------------------------------------------

const std::string kBoundary = "3f1c0e5e6f0b9d2a7c4e8b1d5a6f3c2e9b8d7a6c5b4e3d2c1f0e9d8c7b6a";

std::string part_header(const std::string& name, const std::string& filename) {
  return "Content-Disposition: form-data; name=\"" + name + "\"; filename=\"" + filename +
         "\"\r\nContent-Type: application/octet-stream\r\n\r\n";
}

// As Go's mime/multipart Writer lays out `lxc image import META ROOTFS`.
std::string go_body(const std::string& metadata, const std::string& rootfs, bool close = true) {
  std::string body = "--" + kBoundary + "\r\n" + part_header("metadata", "meta.tar.xz") + metadata;
  body += "\r\n--" + kBoundary + "\r\n" + part_header("rootfs", "rootfs.tar.xz") + rootfs;
  if (close) body += "\r\n--" + kBoundary + "--\r\n";
  return body;
}

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 random{seed};
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(random());
  // Near-misses of the delimiter inside the data, one straddling the reader's 1 MiB chunks.
  for (std::size_t at : {std::size_t{10}, (std::size_t{1} << 20) - 5, n - 70}) {
    if (at + 40 < n) out.replace(at, 40, ("\r\n--" + kBoundary).substr(0, 40));
  }
  return out;
}

TEST(MultipartTest, SplitsTheGoClientsBodyByteForByte) {
  TempDir tmp;
  const auto metadata = random_bytes(3000, 1) + "\r\n";
  const auto rootfs = random_bytes((std::size_t{3} << 20) + 17, 2);
  write_file(tmp.path() / "body", go_body(metadata, rootfs));
  auto split = split_multipart(tmp.path() / "body", "multipart/form-data; boundary=" + kBoundary, tmp.path());
  ASSERT_TRUE(split.ok()) << split.error().message;
  EXPECT_EQ(read_file(split->first), metadata);
  EXPECT_EQ(read_file(split->second), rootfs);
  EXPECT_TRUE(split->first.filename().string().starts_with("."));
}

TEST(MultipartTest, QuotedBoundaryAndAPreambleAreAccepted) {
  TempDir tmp;
  write_file(tmp.path() / "body", "preamble\r\n" + go_body("M", ""));
  auto split = split_multipart(tmp.path() / "body", "Multipart/Form-Data; boundary=\"" + kBoundary + "\"", tmp.path());
  ASSERT_TRUE(split.ok()) << split.error().message;
  EXPECT_EQ(read_file(split->first), "M");
  EXPECT_EQ(read_file(split->second), "");
}

TEST(MultipartTest, BadBodiesAreErrorsAndLeaveNoFiles) {
  TempDir tmp;
  const auto body = tmp.path() / "body";
  const std::string type = "multipart/form-data; boundary=" + kBoundary;
  auto expect_error = [&](const std::string& content_type, const std::string& says) {
    auto split = split_multipart(body, content_type, tmp.path());
    ASSERT_FALSE(split.ok()) << says;
    EXPECT_EQ(split.error().kind, ErrorKind::invalid_argument);
    EXPECT_NE(split.error().message.find(says), std::string::npos) << split.error().message;
    EXPECT_EQ(listing(tmp.path()), std::vector<std::string>{"body"});
  };
  write_file(body, go_body("meta", "rootfs", false));
  expect_error(type, "not closed by a boundary");
  write_file(body, go_body("meta", "rootfs", false) + "\r\n--" + kBoundary);
  expect_error(type, "closing boundary");  // ends right after the boundary: neither "--" nor a part
  write_file(body, go_body("meta", "rootfs"));
  expect_error("application/octet-stream", "not multipart/form-data");
  expect_error("multipart/form-data", "no usable boundary");
  std::string swapped = go_body("meta", "rootfs");
  swapped.replace(swapped.find("name=\"metadata\""), 15, "name=\"rootfs\"  ");
  write_file(body, swapped);
  expect_error(type, "expected a part named \"metadata\"");
  std::string vm = go_body("meta", "rootfs");
  vm.replace(vm.find("name=\"rootfs\""), 13, "name=\"rootfs.img\"");
  write_file(body, vm);
  expect_error(type, "virtual-machine");
}

TEST(MultipartTest, PropertiesHeaderDecodes) {
  auto props = parse_properties_header("os=Ubuntu&description=busybox%20test+image&empty=&release=22.04&os=Debian");
  ASSERT_TRUE(props.ok());
  EXPECT_EQ(*props, (std::map<std::string, std::string>{
                        {"os", "Ubuntu"}, {"description", "busybox test image"}, {"empty", ""}, {"release", "22.04"}}));
  EXPECT_TRUE(parse_properties_header("")->empty());
  EXPECT_EQ(parse_properties_header("&&a=%26%3d&")->at("a"), "&=");
  EXPECT_EQ(parse_properties_header("flag")->at("flag"), "");
  EXPECT_FALSE(parse_properties_header("a=%zz").ok());
  EXPECT_FALSE(parse_properties_header("a=%2").ok());
  EXPECT_FALSE(parse_properties_header("=v").ok());
  EXPECT_FALSE(parse_properties_header("a=1;b=2").ok());
}

}  // namespace
}  // namespace berth::daemon
