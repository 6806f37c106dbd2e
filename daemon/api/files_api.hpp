#pragma once
// /1.0/instances/{name}/files?path=P: lxc file pull, push (files, directories, symlinks; owner and
// mode in X-LXD-* headers; overwrite or append) and delete, on the instance's root filesystem,
// running or not (daemon/instances/rootfs_files.hpp).

#include <cstddef>
#include <string>
#include <vector>

#include "daemon/api/router.hpp"
#include "daemon/instances/instances.hpp"

namespace berth::daemon::api {

// The largest file pushed or pulled (the body is held in memory).
constexpr std::size_t max_file_transfer = std::size_t{256} << 20;

// Whether a request is a file push, which may have a body up to max_file_transfer.
[[nodiscard]] bool is_file_push(const std::string& method, const std::string& target);

// The routes hold a reference to `instances`: it must outlive the router.
void add_file_routes(Router& router, Instances& instances);

// The API extensions these routes implement.
[[nodiscard]] const std::vector<std::string>& file_extensions();

}  // namespace berth::daemon::api
