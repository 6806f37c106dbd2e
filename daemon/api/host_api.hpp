#pragma once
// What berthd says about its host and its containers' use of it: GET /1.0/resources (CPU, memory,
// storage, as LXD's api.Resources names them) and the text of GET /1.0/metrics (Prometheus, with
// LXD's metric names and labels; the route itself is the Api's, which decides who may read it).

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/api/router.hpp"
#include "daemon/instances/instances.hpp"

namespace berth::daemon::api {

// The host's resources read from `root` ("/" on a host; a test gives a tree of its own):
// proc/cpuinfo, proc/meminfo, sys/devices/system/cpu, sys/block.
[[nodiscard]] nlohmann::json host_resources(const std::filesystem::path& root, const std::string& architecture);

// Running containers' usage as LXD's /1.0/metrics writes it: lxd_cpu_seconds_total (per cpu and
// mode), lxd_memory_*_bytes, lxd_procs_total, each labelled name, project="default" and
// type="container".
[[nodiscard]] std::string metrics_text(const std::vector<std::pair<std::string, ContainerUsage>>& usage);

// GET /1.0/resources. The route holds `instances`: it must outlive the router.
void add_host_routes(Router& router, Instances& instances);

[[nodiscard]] const std::vector<std::string>& host_extensions();

}  // namespace berth::daemon::api
