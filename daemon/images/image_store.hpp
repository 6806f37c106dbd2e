#pragma once
// berthd's image store: the image files under DIR/images, named as LXD names them — <fp> (a
// unified tarball, or a split image's metadata tarball) and <fp>.rootfs (a split image's rootfs
// tarball) — and the unpacking of an image into a container volume. Which images exist, their
// aliases and their properties as the API shows them belong to the database; this part only knows
// files.
//
// Ownership: files handed to import_* become the store's: on success they are renamed into place,
// on any failure they are removed, so nothing is left behind either way. They must be on the
// store's filesystem (write uploads to temp_path()).
//
// Thread contract: any thread. The step that decides whether an image exists and puts its files in
// place (or removes them) runs under the store's mutex; hashing and checking run outside it. The
// caller keeps an image from being removed while it is being unpacked or exported.
//
// Expected failures are values (lxd::Result): invalid_argument for input that is not an image,
// conflict when the image is already there, not_found, io.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/images/metadata.hpp"
#include "providers/lxd/result.hpp"

namespace berth::daemon {

struct StoredImage {
  // Lowercase sha256 hex, as LXD computes it: over the unified tarball's bytes, or over the
  // metadata tarball's bytes followed by the rootfs tarball's for a split image.
  std::string fingerprint;
  std::uint64_t size = 0;  // total bytes of the file(s)
  bool split = false;
  ImageMetadata metadata;
};

class ImageStore {
 public:
  // Opens the directory `dir` (DIR/images), creating it mode 0700, and removes what a previous
  // run left unfinished (uploads, a split image's rootfs without its metadata tarball).
  [[nodiscard]] static lxd::Result<std::unique_ptr<ImageStore>> open(std::filesystem::path dir);

  // Imports a unified tarball. `expected_fingerprint` (X-LXD-fingerprint) must match when given.
  // A conflict error's message names the fingerprint.
  [[nodiscard]] lxd::Result<StoredImage> import_unified(const std::filesystem::path& tarball,
                                                        const std::optional<std::string>& expected_fingerprint);
  // Imports a split image (a metadata tarball and a rootfs tarball).
  [[nodiscard]] lxd::Result<StoredImage> import_split(const std::filesystem::path& metadata_tarball,
                                                      const std::filesystem::path& rootfs_tarball,
                                                      const std::optional<std::string>& expected_fingerprint);

  // A fresh unique path inside the store's directory, for an upload; open() removes it if a
  // crash leaves it behind.
  [[nodiscard]] std::filesystem::path temp_path() const;

  // The image as its files say (metadata re-read, fingerprint taken from the name).
  [[nodiscard]] lxd::Result<StoredImage> read(const std::string& fingerprint) const;
  // The fingerprints of the images on disk, sorted.
  [[nodiscard]] std::vector<std::string> fingerprints() const;
  [[nodiscard]] lxd::Result<void> remove(const std::string& fingerprint);
  // The files for export: one (unified) or two (split: metadata, rootfs); empty when there is no
  // such image.
  [[nodiscard]] std::vector<std::filesystem::path> files(const std::string& fingerprint) const;

  // How owners map from the image into the container; nullopt for an id outside the map.
  struct IdShift {
    std::function<std::optional<std::int64_t>(std::int64_t)> uid, gid;
    bool skip_devices = true;  // unprivileged: device nodes under rootfs/dev/ are not created
  };
  // Unpacks the image into `target` as LXD lays out a container volume: metadata.yaml,
  // templates/..., rootfs/... `target` must be missing or an empty directory; on failure it is
  // left that way. Modes, symlinks, hard links, mtimes and xattrs are kept; an entry whose path
  // leaves `target` (absolute, "..", through a symlink) is refused.
  [[nodiscard]] lxd::Result<void> unpack(const std::string& fingerprint, const std::filesystem::path& target,
                                         const IdShift& shift) const;

  // Packs an instance's volume (`volume`: rootfs/ and templates/, as unpack lays them out) with
  // `metadata_yaml` into a new unified image (tar, gzip) and imports it, as `lxc publish` wants:
  // owners are mapped back through `unshift` (host id to the image's id; an id outside the map is
  // written as 65534, which is how the container sees it); modes, times, symlinks, hard links and
  // xattrs are kept. The volume must not change meanwhile (the instance is stopped, or a snapshot).
  [[nodiscard]] lxd::Result<StoredImage> publish(const std::filesystem::path& volume, const std::string& metadata_yaml,
                                                 const IdShift& unshift);

  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }

 private:
  explicit ImageStore(std::filesystem::path dir) : dir_(std::move(dir)) {}
  [[nodiscard]] lxd::Result<StoredImage> commit(const std::vector<std::filesystem::path>& inputs, StoredImage image);

  std::filesystem::path dir_;
  std::mutex mu_;  // over deciding existence and renaming/removing image files
};

// The extension LXD gives an image file it exports, from the file's first bytes (its
// DetectCompression): ".tar.gz", ".tar.xz", ".tar.bz2", ".tar.lzma", ".tar.zst", ".tar", or "".
[[nodiscard]] std::string export_extension(const std::filesystem::path& file);

// Whether `text` is a full fingerprint: 64 lowercase hex digits.
[[nodiscard]] bool is_fingerprint(const std::string& text);

}  // namespace berth::daemon
