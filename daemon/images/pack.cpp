// ImageStore::publish: an instance's volume packed into a new unified image (lxc publish), as
// LXD's instance Export writes it: metadata.yaml first, then rootfs/ and templates/, owners
// mapped back to the image's ids, gzip. libarchive writes the tar and reads each file's metadata
// (mode, times, symlink target, xattrs) from disk; hard links are written once and linked after.

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>
#include <system_error>
#include <tuple>
#include <vector>

#include "daemon/images/files.hpp"
#include "daemon/images/image_store.hpp"
#include "daemon/images/tarball.hpp"

namespace berth::daemon {

namespace fs = std::filesystem;
using lxd::ErrorKind;
using lxd::make_error;
using lxd::Result;

namespace {

// How a container sees a file whose owner is outside its map: the overflow id.
constexpr std::int64_t kNobody = 65534;

struct ResolverFree {
  void operator()(archive_entry_linkresolver* r) const { archive_entry_linkresolver_free(r); }
};
struct EntryFree {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};
using EntryPtr = std::unique_ptr<archive_entry, EntryFree>;

class Packer {
 public:
  Packer(const fs::path& out, images::Fd fd, const ImageStore::IdShift& unshift)
      : out_(out), fd_(std::move(fd)), unshift_(unshift) {}

  Result<void> open() {
    writer_.reset(archive_write_new());
    disk_.reset(archive_read_disk_new());
    links_.reset(archive_entry_linkresolver_new());
    if (!writer_ || !disk_ || !links_) return make_error(ErrorKind::io, "libarchive: out of memory");
    if (archive_write_set_format_pax_restricted(writer_.get()) != ARCHIVE_OK ||
        archive_write_add_filter_gzip(writer_.get()) != ARCHIVE_OK ||
        archive_write_open_fd(writer_.get(), fd_.get()) != ARCHIVE_OK) {
      return failed("cannot start");
    }
    archive_entry_linkresolver_set_strategy(links_.get(), archive_format(writer_.get()));
    archive_read_disk_set_symlink_physical(disk_.get());
    // ACLs name host ids; not carried into the image (LXD maps them back, berthd leaves them out).
    archive_read_disk_set_behavior(disk_.get(), ARCHIVE_READDISK_NO_ACL | ARCHIVE_READDISK_NO_FFLAGS);
    return {};
  }

  // A file that is not on disk (the generated metadata.yaml), owned by root.
  Result<void> add_text(const std::string& name, const std::string& text) {
    EntryPtr entry{archive_entry_new()};
    archive_entry_set_pathname(entry.get(), name.c_str());
    archive_entry_set_filetype(entry.get(), AE_IFREG);
    archive_entry_set_perm(entry.get(), 0644);
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(text.size()));
    archive_entry_set_mtime(
        entry.get(),
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count(),
        0);
    if (archive_write_header(writer_.get(), entry.get()) != ARCHIVE_OK) return failed("cannot write " + name);
    if (archive_write_data(writer_.get(), text.data(), text.size()) != static_cast<la_ssize_t>(text.size())) {
      return failed("cannot write " + name);
    }
    return {};
  }

  // `root`/`name` and everything below it, as `name`/... in the tarball; symlinks are not followed.
  Result<void> add_tree(const fs::path& root, const std::string& name) {
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(root / name, ec))) return {};
    if (auto added = add_path(root / name, name); !added) return added;
    if (!fs::is_directory(fs::symlink_status(root / name, ec))) return {};
    fs::recursive_directory_iterator it(root / name, fs::directory_options::none, ec);
    if (ec) return make_error(ErrorKind::io, "cannot read " + (root / name).string() + ": " + ec.message());
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      const auto relative = it->path().lexically_relative(root).string();
      if (auto added = add_path(it->path(), relative); !added) return added;
    }
    if (ec) return make_error(ErrorKind::io, "cannot read " + (root / name).string() + ": " + ec.message());
    return {};
  }

  // Writes what the link resolver still holds (the last of a set of hard links) and closes.
  Result<void> finish() {
    archive_entry* entry = nullptr;
    archive_entry* sparse = nullptr;
    archive_entry_linkify(links_.get(), &entry, &sparse);
    while (entry != nullptr) {
      EntryPtr owned{entry};  // handed back to us to write and free
      if (auto written = write_entry(owned.get(), ""); !written) return written;
      entry = nullptr;
      archive_entry_linkify(links_.get(), &entry, &sparse);
    }
    if (archive_write_close(writer_.get()) != ARCHIVE_OK) return failed("cannot finish");
    writer_.reset();
    return {};
  }

 private:
  Result<void> add_path(const fs::path& path, const std::string& name) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return images::io_error("cannot read", path, errno);
    if (S_ISSOCK(st.st_mode)) return {};  // a socket is no file to ship (LXD leaves them out too)
    EntryPtr entry{archive_entry_new()};
    archive_entry_copy_sourcepath(entry.get(), path.c_str());
    archive_entry_copy_pathname(entry.get(), name.c_str());
    // ARCHIVE_WARN (an xattr it could not read) still gives the entry.
    if (archive_read_disk_entry_from_file(disk_.get(), entry.get(), -1, &st) < ARCHIVE_WARN) {
      return make_error(ErrorKind::io, "cannot read " + path.string() + ": " + images::archive_error_text(disk_.get()));
    }
    unshift_capabilities(entry.get());
    const auto uid = unshift_.uid(static_cast<std::int64_t>(st.st_uid));
    const auto gid = unshift_.gid(static_cast<std::int64_t>(st.st_gid));
    archive_entry_set_uid(entry.get(), uid.value_or(kNobody));
    archive_entry_set_gid(entry.get(), gid.value_or(kNobody));
    archive_entry_set_uname(entry.get(), nullptr);
    archive_entry_set_gname(entry.get(), nullptr);
    if (!S_ISREG(st.st_mode)) archive_entry_set_size(entry.get(), 0);
    // A regular file with several links: the resolver hands back the entry to write now (with its
    // data, or as a link to one written before) and keeps the rest for later.
    archive_entry* out = entry.release();
    archive_entry* sparse = nullptr;
    archive_entry_linkify(links_.get(), &out, &sparse);
    if (out == nullptr) return {};
    EntryPtr owned{out};
    return write_entry(owned.get(), path.string());
  }

  // A file capability of version 3 names the root id of the namespace it was set in (a host id
  // here): mapped back as the owners are, as LXD's export does; one outside the map is dropped.
  void unshift_capabilities(archive_entry* entry) const {
    constexpr std::string_view kName = "security.capability";
    constexpr std::uint32_t kRevision3 = 0x03000000;
    constexpr std::size_t kV3Size = 24;  // magic_etc, 2 x {permitted, inheritable}, rootid
    std::vector<std::tuple<std::string, std::string>> kept;
    bool changed = false;
    const char* xname = nullptr;
    const void* value = nullptr;
    std::size_t size = 0;
    archive_entry_xattr_reset(entry);
    while (archive_entry_xattr_next(entry, &xname, &value, &size) == ARCHIVE_OK) {
      std::string data(static_cast<const char*>(value), size);
      if (xname != nullptr && xname == kName && size == kV3Size) {
        std::uint32_t magic = 0;
        std::uint32_t rootid = 0;
        std::memcpy(&magic, data.data(), sizeof magic);  // little-endian on disk, as on this host
        std::memcpy(&rootid, data.data() + 20, sizeof rootid);
        if ((magic & 0xff000000U) == kRevision3) {
          changed = true;
          const auto mapped = unshift_.uid(static_cast<std::int64_t>(rootid));
          if (!mapped) continue;
          const auto id = static_cast<std::uint32_t>(*mapped);
          std::memcpy(data.data() + 20, &id, sizeof id);
        }
      }
      kept.emplace_back(xname != nullptr ? xname : "", std::move(data));
    }
    if (!changed) return;
    archive_entry_xattr_clear(entry);
    for (const auto& [n, d] : kept) archive_entry_xattr_add_entry(entry, n.c_str(), d.data(), d.size());
  }

  Result<void> write_entry(archive_entry* entry, std::string source) {
    if (source.empty() && archive_entry_sourcepath(entry) != nullptr) source = archive_entry_sourcepath(entry);
    if (archive_write_header(writer_.get(), entry) != ARCHIVE_OK) {
      return failed("cannot write " + std::string{archive_entry_pathname(entry)});
    }
    if (archive_entry_filetype(entry) != AE_IFREG || archive_entry_size(entry) <= 0) return {};
    images::Fd in{::open(source.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)};
    if (!in.valid()) return images::io_error("cannot read", source, errno);
    std::array<char, 1 << 16> buffer{};
    la_int64_t left = archive_entry_size(entry);
    while (left > 0) {
      const auto n = ::read(in.get(), buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return images::io_error("cannot read", source, errno);
      if (n == 0) return make_error(ErrorKind::io, source + " changed while it was packed (it became shorter)");
      const auto chunk = static_cast<std::size_t>(std::min<la_int64_t>(n, left));
      if (archive_write_data(writer_.get(), buffer.data(), chunk) != static_cast<la_ssize_t>(chunk)) {
        return failed("cannot write " + source);
      }
      left -= static_cast<la_int64_t>(chunk);
    }
    return {};
  }

  lxd::Error failed(const std::string& what) const {
    return make_error(ErrorKind::io, "image tarball " + out_.string() + ": " + what + ": " +
                                         images::archive_error_text(writer_.get()));
  }

  fs::path out_;
  images::Fd fd_;
  const ImageStore::IdShift& unshift_;
  images::ArchivePtr writer_;
  images::ArchivePtr disk_;
  std::unique_ptr<archive_entry_linkresolver, ResolverFree> links_;
};

}  // namespace

Result<StoredImage> ImageStore::publish(const fs::path& volume, const std::string& metadata_yaml,
                                        const IdShift& unshift) {
  if (!unshift.uid || !unshift.gid) return make_error(ErrorKind::invalid_argument, "publish needs both id mappings");
  auto file = images::create_unique_file(dir_, images::kUploadPrefix);
  if (!file) return file.error();
  const auto path = file->path;
  const auto packed = [&]() -> Result<void> {
    Packer packer{path, std::move(file->fd), unshift};
    if (auto opened = packer.open(); !opened) return opened;
    if (auto meta = packer.add_text("metadata.yaml", metadata_yaml); !meta) return meta;
    if (auto rootfs = packer.add_tree(volume, "rootfs"); !rootfs) return rootfs;
    if (auto templates = packer.add_tree(volume, "templates"); !templates) return templates;
    return packer.finish();
  }();
  if (!packed) {
    std::error_code ignored;
    fs::remove(path, ignored);
    return packed.error();
  }
  return import_unified(path, std::nullopt);
}

}  // namespace berth::daemon
