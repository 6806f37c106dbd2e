#pragma once
// The /1.0/instances, /1.0/profiles and /1.0/storage-pools routes (docs/berthd.md): reads answer
// at once; every change is checked first (so a bad request is a 4xx at once) and then runs as a
// task operation (202), as LXD answers them.

#include <functional>
#include <string>

#include "daemon/api/migration_api.hpp"
#include "daemon/api/router.hpp"
#include "daemon/db/database.hpp"
#include "daemon/instances/instances.hpp"
#include "daemon/operations/operations.hpp"
#include "daemon/storage/pool.hpp"

namespace berth::daemon::api {

// Brings an image from another server here (and records it); its fingerprint. Called on a task's
// worker for a launch from another remote's image.
using ImageFetcher = std::function<Result<std::string>(const PullSource&)>;

// The routes hold references to all of these: they must outlive the router. A POST that asks for
// a migration (either end) goes to `migrations`.
void add_instance_routes(Router& router, Instances& instances, Operations& operations, Database& db, StoragePool& pool,
                         ImageFetcher fetch, Migrations& migrations);

// The API extensions these routes implement (lxd-protocol.md §3.0).
[[nodiscard]] const std::vector<std::string>& instance_extensions();

// `filter` as lxc sends it ("name eq c1 and status eq Running"): whether the object matches. A
// field is a top-level key or "config.KEY" / "expanded_config.KEY"; operators eq and ne. nullopt
// (with `error`) when the filter cannot be read.
[[nodiscard]] std::optional<bool> filter_matches(const std::string& filter, const nlohmann::json& object,
                                                 std::string& error);

}  // namespace berth::daemon::api
