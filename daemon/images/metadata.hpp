#pragma once
// An image's metadata.yaml (lxd-protocol.md §3.9; LXD's api.ImageMetadata) and the check that a
// tarball is an image: LXD's getImageMetadata rules, decided here only. A metadata tarball needs
// metadata.yaml with a known architecture and a creation date; a unified tarball also needs rootfs/.
//
// Pure functions of their input; any thread.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "providers/lxd/result.hpp"

namespace berth::daemon {

namespace images {
class Sha256;
}

struct ImageMetadata {
  std::string architecture;        // as written: LXD's name ("x86_64") or one of its aliases ("amd64")
  std::int64_t creation_date = 0;  // unix seconds
  std::optional<std::int64_t> expiry_date;
  std::map<std::string, std::string> properties;
  std::map<std::string, nlohmann::json> templates;  // kept as given, may be empty
};

// Parses metadata.yaml's text; invalid_argument saying what is wrong.
[[nodiscard]] lxd::Result<ImageMetadata> parse_image_metadata(const std::string& yaml);

// metadata.yaml for an image published from an instance, as LXD's instance Export writes it: the
// instance's own metadata.yaml (`existing`; nullopt when its volume has none) with its properties
// replaced by `properties` when the request gives some, or else a new one with `architecture`,
// creation date `now` (unix seconds) and `properties`. invalid_argument when `existing` is not YAML.
[[nodiscard]] lxd::Result<std::string> published_metadata(
    const std::optional<std::string>& existing, const std::string& architecture, std::int64_t now,
    const std::optional<std::map<std::string, std::string>>& properties);

enum class TarballRole { unified, split_metadata };

// How much of a tarball to read: all of it when importing (a truncated or corrupt one is refused
// then, not at the first launch), only up to what is looked for when re-reading a stored image.
enum class ReadExtent { whole_file, until_found };

// What reading an image file found.
struct ImageFile {
  ImageMetadata metadata;
  std::uint64_t size = 0;  // the file's bytes (ReadExtent::whole_file only)
};

// Reads the tarball's metadata.yaml (also "./metadata.yaml") and, for a unified one, checks that
// it holds rootfs/. invalid_argument when it is not an image of that kind. With `hash` (whole_file
// only), every byte of the file is fed to it on the way: the fingerprint costs no second read.
[[nodiscard]] lxd::Result<ImageFile> read_image_file(const std::filesystem::path& tarball, TarballRole role,
                                                     ReadExtent extent, images::Sha256* hash = nullptr);

}  // namespace berth::daemon
