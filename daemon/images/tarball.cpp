#include "daemon/images/tarball.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "daemon/images/files.hpp"

namespace berth::daemon::images {

namespace {

constexpr std::size_t kReadChunk = 256 * 1024;

// One read(2) into the source's buffer, hashed; 0 at the end of the file, -1 (errno set) on error.
ssize_t read_chunk(TarSource& source) {
  source.buffer.resize(kReadChunk);
  ssize_t n = 0;
  do {
    n = ::read(source.fd.get(), source.buffer.data(), source.buffer.size());
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return n;
  if (source.hash != nullptr)
    source.hash->update(std::span<const char>{source.buffer.data(), static_cast<std::size_t>(n)});
  source.size += static_cast<std::uint64_t>(n);
  return n;
}

la_ssize_t read_callback(archive* a, void* client, const void** data) {
  auto& source = *static_cast<TarSource*>(client);
  const ssize_t n = read_chunk(source);
  if (n < 0) {
    archive_set_error(a, errno, "read failed");
    return -1;
  }
  *data = source.buffer.data();
  return n;
}

}  // namespace

// archive_free also frees writers.
void ArchiveFree::operator()(archive* a) const {
  archive_free(a);
}

std::string archive_error_text(archive* a) {
  const char* text = archive_error_string(a);
  return text != nullptr ? text : "unknown error";
}

bool is_squashfs(const std::filesystem::path& path) {
  auto head = read_prefix(path, 4);
  return head.ok() && *head == "hsqs";
}

Result<TarReader> TarReader::open(const std::filesystem::path& path, const std::string& what, Sha256* hash) {
  if (is_squashfs(path)) {
    return lxd::make_error(lxd::ErrorKind::invalid_argument,
                           "the " + what +
                               " is a squashfs filesystem; berthd takes tarballs only (convert it with sqfs2tar "
                               "or import a .tar.xz rootfs)");
  }
  ArchivePtr a{archive_read_new()};
  if (!a) throw std::bad_alloc();
  // Named filters only: filter_all would also run external programs (lrzip, lzop, ...).
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_xz(a.get());
  archive_read_support_filter_lzma(a.get());
  archive_read_support_filter_bzip2(a.get());
  archive_read_support_filter_zstd(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  auto source = std::make_unique<TarSource>();
  source->fd = Fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (!source->fd.valid()) return io_error("cannot open", path, errno);
  source->hash = hash;
  TarReader reader{std::move(source), std::move(a), path, what};
  // No skip or seek callback: libarchive reads every byte, in order, through read_callback.
  if (archive_read_open(reader.get(), reader.source_.get(), nullptr, read_callback, nullptr) != ARCHIVE_OK) {
    return reader.error("cannot open");
  }
  return reader;
}

lxd::Error TarReader::error(const std::string& doing) const {
  return lxd::make_error(lxd::ErrorKind::invalid_argument, "the " + what_ + ": " + doing + ": " +
                                                               archive_error_text(a_.get()) +
                                                               " (is it a tarball, complete and uncorrupted?)");
}

Result<std::uint64_t> TarReader::drain() {
  for (;;) {
    const ssize_t n = read_chunk(*source_);
    if (n < 0) return io_error("cannot read", path_, errno);
    if (n == 0) return source_->size;
  }
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
      return lxd::make_error(lxd::ErrorKind::invalid_argument, "the " + what_ + ": an entry is larger than " +
                                                                   std::to_string(limit) +
                                                                   " bytes where a small file was expected");
    }
    out.append(buffer, static_cast<std::size_t>(n));
  }
}

}  // namespace berth::daemon::images
