#pragma once
// Image servers (`images: {NAME: {server: URL, protocol: ...}}`), read-only: which image an alias
// names now. berth never downloads an image; the host does (`source.server` in the create request).
//
// simplestreams: GET <server>/streams/v1/index.json, then each products file it lists for
// `image-downloads`, and the alias resolved as LXD 5.0 resolves it (shared/simplestreams/
// products.go ToLXD, simplestreams.go applyAliases and GetAlias, sort.go), for containers:
//  - a product version counts only when its name starts with a date (YYYYMMDD);
//  - an image is an `lxd_combined.tar.gz` item (a unified tarball: its fingerprint is the item's
//    sha256), or an `lxd.tar.xz` item with a `squashfs` item beside it (fingerprint:
//    combined_squashfs_sha256) or a `root.tar.xz` item (combined_rootxz_sha256, else
//    combined_sha256); VM disk images are not containers and are left out;
//  - a product's `aliases` (comma-separated) name its images, and each alias also exists as
//    `ALIAS/ARCH` with the product's own arch name (`debian/12/amd64`);
//  - for one alias and architecture the first image wins in LXD's order: by os, release and variant
//    ascending, then the newest version (serial, descending), then squashfs before root.tar.xz;
//  - architectures are LXD's names (`amd64` in a product is `x86_64`).
// lxd: GET <server>/1.0/images/aliases/<alias> (a public image, no client certificate).
//
// The server is pinned by `certificate:` when given (only that certificate is accepted), else
// verified against the system's CAs. Every answer is bounded (Timeouts::max_response_bytes) and
// parsed without trusting its shape; errors name the server, never throw.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/model/live.hpp"
#include "providers/lxd/client.hpp"
#include "providers/lxd/result.hpp"

namespace berth::lxd {

// One container image of a simplestreams products file, as LXD lists it.
struct StreamImage {
  std::string fingerprint;
  std::string architecture;          // LXD's name: x86_64, aarch64, ...
  std::string product_architecture;  // the product's own: amd64, arm64, ...
  std::string os;
  std::string release;
  std::string variant;
  std::string serial;  // the version's name
  std::string type;    // squashfs | root.tar.xz | tar.gz (unified)
  std::vector<std::string> aliases;
};

// index.json -> the paths of the products files that list images (relative to the server URL).
[[nodiscard]] Result<std::vector<std::string>> parse_stream_index(const nlohmann::json& index);

// A products file (images.json) -> its container images. Products and versions LXD would skip
// (an unknown architecture, a version name that is not a date, an item without a fingerprint or a
// path) are skipped; a file that is not a products document at all is an error.
[[nodiscard]] Result<std::vector<StreamImage>> parse_stream_products(const nlohmann::json& products);

// The fingerprint `alias` names for each architecture among `images`. `server_url` matters for one
// LXD rule: on https://cloud-images.ubuntu.com a leading "ubuntu/" is dropped from aliases.
[[nodiscard]] std::map<std::string, std::string> resolve_stream_alias(const std::vector<StreamImage>& images,
                                                                      const std::string& alias,
                                                                      const std::string& server_url);

// The simplestreams name of an LXD architecture and back ("x86_64" <-> "amd64"); nullopt when unknown.
[[nodiscard]] std::optional<std::string> lxd_architecture(std::string_view name);

// Resolves an alias on its image server (reads over the network). Never throws; on failure the
// result's error says why and names the server and the alias.
[[nodiscard]] model::ServerImage read_server_image(const model::ServerImageQuery& query, const Timeouts& timeouts);

// Why `fingerprint` (a pinned image) cannot be fetched from the query's server now, or "" when the
// server lists it (simplestreams: among its container images; lxd: as a public image).
[[nodiscard]] std::string server_image_problem(const model::ServerImageQuery& query, const std::string& fingerprint,
                                               const Timeouts& timeouts);

}  // namespace berth::lxd
