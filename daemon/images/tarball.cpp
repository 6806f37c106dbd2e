#include "daemon/images/tarball.hpp"

#include <archive.h>
#include <archive_entry.h>

#include "daemon/images/files.hpp"

namespace berth::daemon::images {

void ArchiveFree::operator()(archive* a) const {
  archive_free(a);
}  // archive_free also works for writers

std::string archive_error_text(archive* a) {
  const char* text = archive_error_string(a);
  return text != nullptr ? text : "unknown error";
}

bool is_squashfs(const std::filesystem::path& path) {
  auto head = read_prefix(path, 4);
  return head.ok() && *head == "hsqs";
}

Result<TarReader> TarReader::open(const std::filesystem::path& path, const std::string& what) {
  if (is_squashfs(path)) {
    return lxd::make_error(lxd::ErrorKind::invalid_argument,
                           what + " " + path.filename().string() +
                               " is a squashfs filesystem; berthd takes tarballs only (convert it with sqfs2tar "
                               "or import a .tar.xz rootfs)");
  }
  ArchivePtr a{archive_read_new()};
  if (!a) throw std::bad_alloc();
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  TarReader reader{std::move(a), path, what};
  if (archive_read_open_filename(reader.get(), path.c_str(), 64 * 1024) != ARCHIVE_OK) {
    return reader.error("cannot open");
  }
  return reader;
}

lxd::Error TarReader::error(const std::string& doing) const {
  return lxd::make_error(lxd::ErrorKind::invalid_argument, what_ + " " + path_.filename().string() + ": " + doing +
                                                               ": " + archive_error_text(a_.get()) +
                                                               " (is it a tarball, complete and uncorrupted?)");
}

Result<archive_entry*> TarReader::next() {
  archive_entry* entry = nullptr;
  const int r = archive_read_next_header(a_.get(), &entry);
  if (r == ARCHIVE_EOF) return static_cast<archive_entry*>(nullptr);
  if (r < ARCHIVE_WARN) return error("cannot read the next entry");
  return entry;
}

Result<std::string> TarReader::read_data(std::size_t limit) {
  std::string out;
  char buffer[16 * 1024];
  for (;;) {
    const la_ssize_t n = archive_read_data(a_.get(), buffer, sizeof buffer);
    if (n < 0) return error("cannot read an entry's data");
    if (n == 0) return out;
    if (out.size() + static_cast<std::size_t>(n) > limit) {
      return lxd::make_error(lxd::ErrorKind::invalid_argument,
                             what_ + " " + path_.filename().string() + ": an entry is larger than " +
                                 std::to_string(limit) + " bytes where a small file was expected");
    }
    out.append(buffer, static_cast<std::size_t>(n));
  }
}

}  // namespace berth::daemon::images
