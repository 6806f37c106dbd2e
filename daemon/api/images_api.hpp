#pragma once
// The /1.0/images routes (lxd-protocol.md §3.9): import of unified and split tarballs (raw body or
// multipart/form-data, with LXD's X-LXD-* headers) as a task whose final metadata carries the
// fingerprint and size lxc reads; list (recursion, filter), get by fingerprint or prefix, update,
// delete, export, and aliases. The files are the ImageStore's; what LXD reports about an image
// (filename, public, properties, dates, profiles) is a database document under its fingerprint.

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "daemon/api/router.hpp"
#include "daemon/db/database.hpp"
#include "daemon/images/image_pull.hpp"
#include "daemon/images/image_store.hpp"
#include "daemon/operations/operations.hpp"

namespace berth::daemon::api {

// Largest image upload accepted (the request body is held in memory while it is written out).
constexpr std::size_t max_image_upload = std::size_t{1} << 30;

// How an image copied from another server is recorded.
struct FetchOptions {
  bool cached = false;  // downloaded for an instance (LXD's "cached"), not copied on purpose
  bool is_public = false;
  std::map<std::string, std::string> properties;  // over the server's
  std::string filename;                           // empty: the server's
};

// The image `source` names on another server, downloaded into the store unless it is here
// already, and recorded; its fingerprint. Runs on a task's worker (it waits on the network).
[[nodiscard]] Result<std::string> fetch_image(ImageStore& images, Database& db, const PullSource& source,
                                              const FetchOptions& options);

// Packs an instance (snapshot "" ) or one of its snapshots into a new image in the store (lxc
// publish); `properties`, when given, replace the image's. Called on a task's worker.
using ImagePublisher =
    std::function<Result<StoredImage>(const std::string& instance, const std::string& snapshot,
                                      const std::optional<std::map<std::string, std::string>>& properties)>;

// The routes hold references to all three: they must outlive the router.
void add_image_routes(Router& router, ImageStore& images, Operations& operations, Database& db, ImagePublisher publish);

// The API extensions these routes implement.
[[nodiscard]] const std::vector<std::string>& image_extensions();

}  // namespace berth::daemon::api
