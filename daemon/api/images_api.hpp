#pragma once
// The /1.0/images routes (lxd-protocol.md §3.9): import of unified and split tarballs (raw body or
// multipart/form-data, with LXD's X-LXD-* headers) as a task whose final metadata carries the
// fingerprint and size lxc reads; list (recursion, filter), get by fingerprint or prefix, update,
// delete, export, and aliases. The files are the ImageStore's; what LXD reports about an image
// (filename, public, properties, dates, profiles) is a database document under its fingerprint.

#include <cstddef>

#include "daemon/api/router.hpp"
#include "daemon/db/database.hpp"
#include "daemon/images/image_store.hpp"
#include "daemon/operations/operations.hpp"

namespace berth::daemon::api {

// Largest image upload accepted (the request body is held in memory while it is written out).
constexpr std::size_t max_image_upload = std::size_t{1} << 30;

// The routes hold references to all three: they must outlive the router.
void add_image_routes(Router& router, ImageStore& images, Operations& operations, Database& db);

// The API extensions these routes implement.
[[nodiscard]] const std::vector<std::string>& image_extensions();

}  // namespace berth::daemon::api
