#pragma once
// libarchive behind RAII (internal to daemon/images): a reader for image tarballs, plain or
// compressed with gzip, xz, bzip2, lzma or zstd. Squashfs is not a tarball and is refused up front
// with a message saying so, since libarchive would only call it "unrecognized".
//
// Thread contract: one reader per thread; libarchive handles are not shared.

#include <filesystem>
#include <memory>
#include <string>

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

class TarReader {
 public:
  // Opens `path` (the message of a failure names `what`, e.g. "image tarball").
  [[nodiscard]] static Result<TarReader> open(const std::filesystem::path& path, const std::string& what);

  // The next entry, nullptr at the end of the archive. The entry stays valid until the next call.
  [[nodiscard]] Result<archive_entry*> next();
  // The current entry's data, refused when longer than `limit` bytes.
  [[nodiscard]] Result<std::string> read_data(std::size_t limit);

  [[nodiscard]] archive* get() const { return a_.get(); }
  [[nodiscard]] lxd::Error error(const std::string& doing) const;

 private:
  TarReader(ArchivePtr a, std::filesystem::path path, std::string what)
      : a_(std::move(a)), path_(std::move(path)), what_(std::move(what)) {}
  ArchivePtr a_;
  std::filesystem::path path_;
  std::string what_;
};

// Whether the file starts as a squashfs filesystem does ("hsqs").
[[nodiscard]] bool is_squashfs(const std::filesystem::path& path);

}  // namespace berth::daemon::images
