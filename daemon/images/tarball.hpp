#pragma once
// libarchive behind RAII (internal to daemon/images): a reader for image tarballs, plain or
// compressed with gzip, xz, bzip2, lzma or zstd. It reads the file itself, in order and without
// seeking, so it can feed every byte to a sha256 on the way: an import reads its upload once. Squashfs is not a tarball
// and is refused up front with a message saying so, since libarchive would only call it "unrecognized".
//
// Thread contract: one reader per thread; libarchive handles are not shared.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "daemon/images/files.hpp"

#include "providers/lxd/result.hpp"

struct archive;
struct archive_entry;

namespace berth::daemon::images {

using lxd::Result;

struct ArchiveFree {
  void operator()(archive* a) const;
};
using ArchivePtr = std::unique_ptr<archive, ArchiveFree>;

// libarchive's text for the last error on `a`, or "unknown error".
[[nodiscard]] std::string archive_error_text(archive* a);

// The file as libarchive's read callback sees it; at a fixed address, since the callback keeps it.
struct TarSource {
  Fd fd;
  Sha256* hash = nullptr;
  std::uint64_t size = 0;  // bytes read so far
  std::string buffer;
};

class TarReader {
 public:
  // Opens `path` (the message of a failure names `what`, e.g. "image tarball"). With `hash`,
  // every byte read from the file is fed to it, in order.
  [[nodiscard]] static Result<TarReader> open(const std::filesystem::path& path, const std::string& what,
                                              Sha256* hash = nullptr);

  // The next entry, nullptr at the end of the archive. The entry stays valid until the next call.
  [[nodiscard]] Result<archive_entry*> next();
  // The current entry's data, refused when longer than `limit` bytes.
  [[nodiscard]] Result<std::string> read_data(std::size_t limit);

  // Reads the rest of the file (past what the archive needed) into the hash; returns the file's
  // size. Call it once, after the last next() or read_data().
  [[nodiscard]] Result<std::uint64_t> drain();

  [[nodiscard]] archive* get() const { return a_.get(); }
  [[nodiscard]] lxd::Error error(const std::string& doing) const;

 private:
  TarReader(std::unique_ptr<TarSource> source, ArchivePtr a, std::filesystem::path path, std::string what)
      : source_(std::move(source)), a_(std::move(a)), path_(std::move(path)), what_(std::move(what)) {}
  std::unique_ptr<TarSource> source_;  // declared before a_: the archive, which uses it, goes first
  ArchivePtr a_;
  std::filesystem::path path_;
  std::string what_;
};

// Whether the file starts as a squashfs filesystem does ("hsqs").
[[nodiscard]] bool is_squashfs(const std::filesystem::path& path);

}  // namespace berth::daemon::images
