#include "daemon/images/image_store.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <system_error>

#include "daemon/images/files.hpp"
#include "daemon/images/tarball.hpp"

namespace berth::daemon {

namespace fs = std::filesystem;
using lxd::ErrorKind;
using lxd::make_error;
using lxd::Result;

namespace {

constexpr std::string_view kRootfsSuffix = ".rootfs";

lxd::Error invalid(const std::string& message) {
  return make_error(ErrorKind::invalid_argument, message);
}

lxd::Error fs_error(const std::string& what, const fs::path& path, const std::error_code& ec) {
  return make_error(ErrorKind::io, what + " " + path.string() + ": " + ec.message());
}

// Removes the files it holds when it goes out of scope, unless dismissed: an import's inputs, so
// that a failed import leaves nothing behind.
class RemoveOnExit {
 public:
  explicit RemoveOnExit(std::vector<fs::path> paths) : paths_(std::move(paths)) {}
  ~RemoveOnExit() {
    std::error_code ec;
    for (const auto& path : paths_) fs::remove(path, ec);
  }
  RemoveOnExit(const RemoveOnExit&) = delete;
  RemoveOnExit& operator=(const RemoveOnExit&) = delete;
  void dismiss() { paths_.clear(); }

 private:
  std::vector<fs::path> paths_;
};

Result<void> check_expected(const std::string& fingerprint, const std::optional<std::string>& expected) {
  if (!expected || expected->empty() || *expected == fingerprint) return {};
  return invalid("fingerprints don't match: the upload's is " + fingerprint + ", X-LXD-fingerprint says " + *expected);
}

Result<void> check_fingerprint(const std::string& fingerprint) {
  if (is_fingerprint(fingerprint)) return {};
  return invalid("\"" + fingerprint + "\" is not an image fingerprint (64 lowercase hex digits)");
}

// What a crash can leave in the store: an upload in progress, or a split image's rootfs moved in
// without its metadata tarball (commit() moves the rootfs first).
bool is_leftover(const fs::path& path) {
  const auto name = path.filename().string();
  if (name.starts_with(images::kUploadPrefix)) return true;
  if (!name.ends_with(kRootfsSuffix)) return false;
  std::error_code ec;
  const auto fingerprint = name.substr(0, name.size() - kRootfsSuffix.size());
  return is_fingerprint(fingerprint) && !fs::exists(path.parent_path() / fingerprint, ec);
}

// Makes `dir` (parents as needed) with the last component mode 0700.
Result<void> make_private_dir(const fs::path& dir) {
  std::error_code ec;
  if (dir.has_parent_path()) fs::create_directories(dir.parent_path(), ec);
  if (ec) return fs_error("cannot create", dir.parent_path(), ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return images::io_error("cannot create", dir, errno);
  if (!fs::is_directory(dir, ec)) return make_error(ErrorKind::io, dir.string() + " is not a directory");
  return {};
}

// --- unpacking ---------------------------------------------------------------------------------

// An entry's name as a relative path with "." and empty components dropped; nullopt when it is
// absolute or has a ".." component (it would leave the target). "" is the archive's root.
std::optional<std::string> contained_path(std::string_view name) {
  if (name.starts_with('/')) return std::nullopt;
  std::string out;
  while (!name.empty()) {
    const auto slash = name.find('/');
    const auto part = name.substr(0, slash);
    name = slash == std::string_view::npos ? std::string_view{} : name.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    if (part == "..") return std::nullopt;
    if (!out.empty()) out += '/';
    out += part;
  }
  return out;
}

std::string join(std::string_view prefix, const std::string& rel) {
  if (prefix.empty()) return rel;
  return rel.empty() ? std::string{prefix} : std::string{prefix} + "/" + rel;
}

bool is_device_under_dev(archive_entry* entry, const std::string& rel) {
  const auto type = archive_entry_filetype(entry);
  return (type == AE_IFCHR || type == AE_IFBLK) && rel.starts_with("rootfs/dev/");
}

// One tarball of an image and where it goes inside the target: "" (metadata.yaml, templates/,
// and rootfs/ of a unified image) or "rootfs" (a split image's rootfs tarball).
struct UnpackSource {
  fs::path tarball;
  std::string_view prefix;
};

// Removes what unpack wrote unless dismissed: the target itself when unpack created it, else its
// contents (it was empty).
class TargetCleanup {
 public:
  TargetCleanup(fs::path target, bool created) : target_(std::move(target)), created_(created) {}
  ~TargetCleanup() {
    if (dismissed_) return;
    std::error_code ec;
    if (created_) {
      fs::remove_all(target_, ec);
      return;
    }
    for (const auto& child : fs::directory_iterator(target_, ec)) fs::remove_all(child.path(), ec);
  }
  TargetCleanup(const TargetCleanup&) = delete;
  TargetCleanup& operator=(const TargetCleanup&) = delete;
  void dismiss() { dismissed_ = true; }

 private:
  fs::path target_;
  bool created_;
  bool dismissed_ = false;
};

class Unpacker {
 public:
  Unpacker(fs::path root, std::string fingerprint, const ImageStore::IdShift& shift)
      : root_(std::move(root)), fingerprint_(std::move(fingerprint)), shift_(shift), writer_(archive_write_disk_new()) {
    if (!writer_) throw std::bad_alloc();
    // No ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS: every path handed to the writer is made absolute
    // here (root_ + a name contained_path() accepted), since a daemon cannot chdir into the target.
    // root_ is canonical, so SECURE_SYMLINKS only ever meets symlinks the image itself made.
    archive_write_disk_set_options(writer_.get(), ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                                                      ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                                      ARCHIVE_EXTRACT_SECURE_SYMLINKS);
  }

  Result<void> extract(const UnpackSource& source) {
    auto reader = images::TarReader::open(source.tarball, "image " + fingerprint_);
    if (!reader) return reader.error();
    for (;;) {
      auto entry = reader->next();
      if (!entry) return entry.error();
      if (*entry == nullptr) return {};
      auto written = write_entry(*reader, *entry, source.prefix);
      if (!written) return written;
    }
  }

  // Runs the writer's deferred fix-ups (directory modes and times).
  Result<void> finish() {
    if (archive_write_close(writer_.get()) != ARCHIVE_OK) {
      return make_error(ErrorKind::io, "image " + fingerprint_ + ": cannot finish unpacking into " + root_.string() +
                                           ": " + images::archive_error_text(writer_.get()));
    }
    return {};
  }

 private:
  Result<void> write_entry(images::TarReader& reader, archive_entry* entry, std::string_view prefix) {
    const std::string name = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
    auto rel = contained_path(name);
    if (!rel) return refused(name, "its path leaves the target");
    const std::string path = join(prefix, *rel);
    if (path.empty()) return {};  // the archive's root: the target, as the caller made it
    if (shift_.skip_devices && is_device_under_dev(entry, path)) return {};
    if (const char* link = archive_entry_hardlink(entry)) {
      auto link_rel = contained_path(link);
      if (!link_rel || link_rel->empty()) return refused(name, "it is a hard link to a path outside the target");
      archive_entry_copy_hardlink(entry, (root_ / join(prefix, *link_rel)).c_str());
    }
    auto owned = shift_owner(entry, path);
    if (!owned) return owned;
    archive_entry_copy_pathname(entry, (root_ / path).c_str());
    if (archive_write_header(writer_.get(), entry) < ARCHIVE_WARN) return write_failed(path);
    if (archive_entry_size(entry) > 0) {
      auto copied = copy_data(reader, path);
      if (!copied) return copied;
    }
    if (archive_write_finish_entry(writer_.get()) < ARCHIVE_WARN) return write_failed(path);
    return {};
  }

  Result<void> shift_owner(archive_entry* entry, const std::string& path) {
    const auto uid = shift_.uid(archive_entry_uid(entry));
    if (!uid) return outside_map(path, "uid", archive_entry_uid(entry));
    const auto gid = shift_.gid(archive_entry_gid(entry));
    if (!gid) return outside_map(path, "gid", archive_entry_gid(entry));
    archive_entry_set_uid(entry, *uid);
    archive_entry_set_gid(entry, *gid);
    return {};
  }

  Result<void> copy_data(images::TarReader& reader, const std::string& path) {
    for (;;) {
      const void* block = nullptr;
      std::size_t size = 0;
      la_int64_t offset = 0;
      const int r = archive_read_data_block(reader.get(), &block, &size, &offset);
      if (r == ARCHIVE_EOF) return {};
      if (r < ARCHIVE_WARN) return reader.error("cannot read " + path);
      if (archive_write_data_block(writer_.get(), block, size, offset) < ARCHIVE_WARN) return write_failed(path);
    }
  }

  lxd::Error refused(const std::string& name, const std::string& why) const {
    return invalid("image " + fingerprint_ + ": refusing entry \"" + name + "\": " + why);
  }
  lxd::Error outside_map(const std::string& path, const char* kind, la_int64_t id) const {
    return invalid("image " + fingerprint_ + ": " + path + " is owned by " + kind + " " + std::to_string(id) +
                   ", which the container's id map does not cover (widen the map or use a privileged container)");
  }
  lxd::Error write_failed(const std::string& path) const {
    return make_error(ErrorKind::io, "image " + fingerprint_ + ": cannot write " + path + " under " + root_.string() +
                                         ": " + images::archive_error_text(writer_.get()));
  }

  fs::path root_;
  std::string fingerprint_;
  const ImageStore::IdShift& shift_;
  images::ArchivePtr writer_;
};

// Creates `target` when missing; refuses one that is not an empty directory. Returns whether it
// was created.
Result<bool> prepare_target(const fs::path& target) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(target, ec))) {
    fs::create_directories(target, ec);
    if (ec) return fs_error("cannot create", target, ec);
    return true;
  }
  if (!fs::is_directory(fs::symlink_status(target, ec)) || !fs::is_empty(target, ec)) {
    return invalid("cannot unpack into " + target.string() + ": it is not an empty directory");
  }
  return false;
}

// A split image's rootfs tarball need not hold its own root ("./"): rootfs/ is made beforehand,
// owned by the container's root, as the tarball's "./" entry (if any) then sets it.
Result<void> make_rootfs_dir(const fs::path& rootfs, const ImageStore::IdShift& shift) {
  const auto uid = shift.uid(0);
  const auto gid = shift.gid(0);
  if (!uid || !gid) return invalid("the container's id map does not cover root (uid/gid 0)");
  if (::mkdir(rootfs.c_str(), 0755) != 0 && errno != EEXIST) return images::io_error("cannot create", rootfs, errno);
  if (::chown(rootfs.c_str(), static_cast<uid_t>(*uid), static_cast<gid_t>(*gid)) != 0) {
    return images::io_error("cannot change the owner of", rootfs, errno);
  }
  return {};
}

}  // namespace

bool is_fingerprint(const std::string& text) {
  return text.size() == 64 &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string export_extension(const fs::path& file) {
  auto head = images::read_prefix(file, 262);
  if (!head) return "";
  const std::string_view h = *head;
  if (h.starts_with("BZh")) return ".tar.bz2";
  if (h.starts_with("\x1f\x8b")) return ".tar.gz";
  if (h.starts_with(std::string_view{"\xfd\x37\x7a\x58\x5a\x00", 6})) return ".tar.xz";
  if (h.starts_with(std::string_view{"\x5d\x00\x00", 3})) return ".tar.lzma";
  if (h.starts_with("\x28\xb5\x2f\xfd")) return ".tar.zst";
  if (h.size() >= 262 && h.substr(257, 5) == "ustar") return ".tar";
  return "";
}

Result<std::unique_ptr<ImageStore>> ImageStore::open(fs::path dir) {
  auto made = make_private_dir(dir);
  if (!made) return made.error();
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (is_leftover(entry.path())) fs::remove(entry.path(), ec);
  }
  if (ec) return fs_error("cannot list", dir, ec);
  return std::unique_ptr<ImageStore>(new ImageStore(std::move(dir)));
}

fs::path ImageStore::temp_path() const {
  return images::unique_name(dir_, images::kUploadPrefix);
}

Result<StoredImage> ImageStore::import_unified(const fs::path& tarball,
                                               const std::optional<std::string>& expected_fingerprint) {
  RemoveOnExit inputs{{tarball}};
  images::Sha256 hash;
  auto file = read_image_file(tarball, TarballRole::unified, ReadExtent::whole_file, &hash);
  if (!file) return file.error();
  StoredImage image{hash.hex(), file->size, false, std::move(file->metadata)};
  auto expected = check_expected(image.fingerprint, expected_fingerprint);
  if (!expected) return expected.error();
  inputs.dismiss();
  return commit({tarball}, std::move(image));
}

Result<StoredImage> ImageStore::import_split(const fs::path& metadata_tarball, const fs::path& rootfs_tarball,
                                             const std::optional<std::string>& expected_fingerprint) {
  RemoveOnExit inputs{{metadata_tarball, rootfs_tarball}};
  images::Sha256 hash;
  auto file = read_image_file(metadata_tarball, TarballRole::split_metadata, ReadExtent::whole_file, &hash);
  if (!file) return file.error();
  // The rootfs is checked for its kind (its first entry) and hashed; it is read whole only when unpacked.
  auto rootfs = images::TarReader::open(rootfs_tarball, "rootfs tarball", &hash);
  if (!rootfs) return rootfs.error();
  if (auto first = rootfs->next(); !first) return first.error();
  auto rootfs_size = rootfs->drain();
  if (!rootfs_size) return rootfs_size.error();
  StoredImage image{hash.hex(), file->size + *rootfs_size, true, std::move(file->metadata)};
  auto expected = check_expected(image.fingerprint, expected_fingerprint);
  if (!expected) return expected.error();
  inputs.dismiss();
  return commit({metadata_tarball, rootfs_tarball}, std::move(image));
}

// inputs: {tarball} or {metadata, rootfs}. Removes them on failure.
Result<StoredImage> ImageStore::commit(const std::vector<fs::path>& inputs, StoredImage image) {
  RemoveOnExit cleanup{inputs};
  const fs::path main = dir_ / image.fingerprint;
  const fs::path rootfs = dir_ / (image.fingerprint + std::string{kRootfsSuffix});
  std::lock_guard lock{mu_};
  std::error_code ec;
  if (fs::exists(main, ec) || fs::exists(rootfs, ec)) {
    return make_error(ErrorKind::conflict, "image " + image.fingerprint + " already exists");
  }
  if (inputs.size() == 2) {
    fs::rename(inputs[1], rootfs, ec);
    if (ec)
      return fs_error("cannot move the upload into the store (it must be inside the store's directory):", inputs[1],
                      ec);
  }
  fs::rename(inputs[0], main, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(rootfs, ignored);
    return fs_error("cannot move the upload into the store (it must be inside the store's directory):", inputs[0], ec);
  }
  cleanup.dismiss();
  return image;
}

Result<StoredImage> ImageStore::read(const std::string& fingerprint) const {
  auto valid = check_fingerprint(fingerprint);
  if (!valid) return valid.error();
  const auto paths = files(fingerprint);
  if (paths.empty()) return make_error(ErrorKind::not_found, "image " + fingerprint + " is not in the store");
  StoredImage image{fingerprint, 0, paths.size() == 2, {}};
  for (const auto& path : paths) {
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec) return fs_error("cannot read the size of", path, ec);
    image.size += size;
  }
  auto file = read_image_file(paths[0], image.split ? TarballRole::split_metadata : TarballRole::unified,
                              ReadExtent::until_found);
  if (!file) return file.error();
  image.metadata = std::move(file->metadata);
  return image;
}

std::vector<std::string> ImageStore::fingerprints() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    auto name = entry.path().filename().string();
    if (is_fingerprint(name)) out.push_back(std::move(name));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<fs::path> ImageStore::files(const std::string& fingerprint) const {
  if (!is_fingerprint(fingerprint)) return {};
  std::vector<fs::path> out;
  std::error_code ec;
  const fs::path main = dir_ / fingerprint;
  if (!fs::is_regular_file(main, ec)) return out;
  out.push_back(main);
  const fs::path rootfs = dir_ / (fingerprint + std::string{kRootfsSuffix});
  if (fs::is_regular_file(rootfs, ec)) out.push_back(rootfs);
  return out;
}

Result<void> ImageStore::remove(const std::string& fingerprint) {
  auto valid = check_fingerprint(fingerprint);
  if (!valid) return valid;
  std::lock_guard lock{mu_};
  std::error_code ec;
  const bool had_rootfs = fs::remove(dir_ / (fingerprint + std::string{kRootfsSuffix}), ec);
  if (ec) return fs_error("cannot remove", dir_ / (fingerprint + std::string{kRootfsSuffix}), ec);
  const bool had_main = fs::remove(dir_ / fingerprint, ec);
  if (ec) return fs_error("cannot remove", dir_ / fingerprint, ec);
  if (!had_main && !had_rootfs)
    return make_error(ErrorKind::not_found, "image " + fingerprint + " is not in the store");
  return {};
}

Result<void> ImageStore::unpack(const std::string& fingerprint, const fs::path& target, const IdShift& shift) const {
  if (!shift.uid || !shift.gid) return invalid("unpack needs both a uid and a gid mapping");
  const auto paths = files(fingerprint);
  if (paths.empty()) return make_error(ErrorKind::not_found, "image " + fingerprint + " is not in the store");
  auto created = prepare_target(target);
  if (!created) return created.error();
  TargetCleanup cleanup{target, *created};
  std::error_code ec;
  const fs::path root = fs::canonical(target, ec);
  if (ec) return fs_error("cannot resolve", target, ec);
  Unpacker unpacker{root, fingerprint, shift};
  auto first = unpacker.extract({paths[0], ""});
  if (!first) return first;
  if (paths.size() == 2) {
    auto made = make_rootfs_dir(root / "rootfs", shift);
    if (!made) return made;
    auto rootfs = unpacker.extract({paths[1], "rootfs"});
    if (!rootfs) return rootfs;
  }
  auto finished = unpacker.finish();
  if (!finished) return finished;
  cleanup.dismiss();
  return {};
}

}  // namespace berth::daemon
