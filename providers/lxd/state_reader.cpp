#include "providers/lxd/state_reader.hpp"

#include "providers/lxd/url.hpp"

#include <chrono>
#include <map>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "providers/lxd/image_server.hpp"
#include "providers/lxd/live_parse.hpp"
#include "providers/lxd/remote_connection.hpp"
#include "providers/lxd/wire.hpp"

// How snapshots are read in bulk, and why (measured on LXD 5.0.2, dir pool, 20 containers of which
// 6 running, unix socket):
//
//  - `GET /1.0/instances?recursion=1` has no snapshots. `recursion=2` has them, but it also renders
//    every instance's state (processes, memory, network, disk usage): 0.14 s against 0.01 s for
//    recursion=1, growing with the number of running instances (0.83 s vs 0.04 s for 23 in
//    testbed.md). Planning would be dominated by state it never looks at.
//  - `GET /1.0/storage-pools/<pool>/volumes?recursion=1` costs about the same as recursion=1 and
//    lists every instance snapshot as a volume named "c1/snap0" (type "container"). It is one
//    request per pool, however many instances. But LXD 5.0.2 renders created_at as
//    0001-01-01T00:00:00Z for instance volumes and their snapshots and lists them sorted by name,
//    so neither creation time nor creation order is available from it.
//  - Per-instance `GET /1.0/instances/<n>/snapshots?recursion=1` has the times, at one request per
//    instance: what the plan must never do.
//
// So the plan reads names from the volume listings (the plan compares snapshot names only) and
// orders them by name; SnapshotRead::with_creation_times adds the per-instance reads for callers
// that need ages.
//
// Connections (same host, Release build, medians of 40 reads in one process, five interleaved
// runs): over HTTPS one kept-alive connection doing GET /1.0, pools, volumes and instances in
// sequence took 14-25 ms, two connections in parallel 18-27 ms, slower in every run: the second
// TLS 1.3 handshake (ECDSA P-384 on both sides) costs more than the overlap saves. Over the unix socket two connections
// took 6 ms, one 7.5 ms. A whole process doing one read over HTTPS took 29 ms against 26 ms for `curl` of recursion=1
// alone.

namespace berth::lxd {

namespace {

using Clock = std::chrono::steady_clock;

// What the second connection fetches: everything except the instance lists.
struct SideRead {
  std::optional<Error> error;  // fatal for the remote (connect, pin, trust)
  std::string auth;
  bool snapshots_known = false;
  std::string snapshots_problem;
  std::vector<std::pair<std::string, nlohmann::json>> volume_lists;  // (project, one pool's volumes)
  // A project whose volume listing answered 404: no matter if the project does not exist (the
  // instance list says so), else its snapshots are unknown.
  std::map<std::string, std::string> volumes_not_found;
  std::optional<model::ImageAliases> image_aliases;
  std::map<std::string, model::ImageAliases> project_image_aliases;
  std::string aliases_problem;
  std::optional<model::HostResources> resources;
  std::string resources_problem;
  // An LXD cluster: its members, and each online member's resources when asked for.
  std::optional<std::map<std::string, model::ClusterMember>> members;
  std::map<std::string, model::HostResources> member_resources;
};

bool is_forbidden(const Error& e) {
  return e.kind == ErrorKind::server && e.http_status == 403;
}

bool is_not_found(const Error& e) {
  return e.kind == ErrorKind::server && e.http_status == 404;
}

// The projects of one read: those that must exist first, then those that may not.
struct ProjectsToRead {
  std::vector<std::string> all;
  std::set<std::string> required;
};

ProjectsToRead projects_of(const providers::ReadStateRequest& request) {
  ProjectsToRead out;
  out.required = request.projects;
  if (out.required.empty()) out.required.insert(request.remote.project);
  out.all.assign(out.required.begin(), out.required.end());
  for (const auto& p : request.other_projects) {
    if (out.required.count(p) == 0) out.all.push_back(p);
  }
  return out;
}

void read_side(Client& client, const providers::ReadStateRequest& request, const std::vector<std::string>& projects,
               SideRead& out) {
  // GET /1.0 says whether the server trusts us, and whether it is an LXD cluster.
  auto info = client.get("/1.0");
  if (!info) {
    out.error = info.error();  // the connection failed: the remote is unknown
    return;
  }
  auto server = wire::parse_server(info->metadata);
  if (!server) {
    out.error = make_error(ErrorKind::protocol, "GET /1.0: " + server.error().message);
    return;
  }
  out.auth = server->auth;
  if (out.auth != "trusted") return;
  if (server->environment && server->environment->server_clustered) {
    // Every member, and (below) every instance with the member it lives on: one read each.
    auto listed = client.get("/1.0/cluster/members?recursion=1");
    auto members =
        listed ? parse_members(listed->metadata) : Result<std::map<std::string, model::ClusterMember>>{listed.error()};
    if (!members) {
      out.error = listed ? make_error(ErrorKind::protocol, "GET /1.0/cluster/members: " + members.error().message)
                         : listed.error();
      return;
    }
    out.members = std::move(*members);
  }

  // Instance snapshots live on the pool of their instance's root disk, so every pool is listed.
  auto pools = client.get("/1.0/storage-pools");
  if (!pools && (is_forbidden(pools.error()) || pools.error().kind != ErrorKind::server)) {
    out.error = pools.error();  // untrusted, or the connection failed: the remote is unknown
    return;
  }
  auto pool_names = pools ? wire::parse_names(pools->metadata) : Result<std::vector<std::string>>{pools.error()};
  if (!pool_names) {
    out.snapshots_problem = pools ? "GET /1.0/storage-pools: " + pool_names.error().message : pools.error().message;
  } else {
    out.snapshots_known = true;
    // Instance volumes are listed per project (one request per pool and project).
    for (const auto& pool : *pool_names) {
      for (const auto& project : projects) {
        auto vols =
            client.get(with_project("/1.0/storage-pools/" + path_segment(pool) + "/volumes?recursion=1", project));
        if (!vols && is_not_found(vols.error())) {
          out.volumes_not_found.emplace(project, vols.error().message);
          continue;
        }
        if (!vols) {
          out.snapshots_known = false;
          out.snapshots_problem = vols.error().message;
          break;
        }
        out.volume_lists.emplace_back(project, std::move(vols->metadata));
      }
      if (!out.snapshots_known) break;
    }
  }
  if (request.read_image_aliases) {
    auto aliases = client.get(with_project("/1.0/images/aliases?recursion=1", request.remote.project));
    auto names = aliases ? parse_image_aliases(aliases->metadata) : Result<model::ImageAliases>{aliases.error()};
    if (names) {
      out.image_aliases = std::move(*names);
    } else {
      out.aliases_problem = aliases ? "GET /1.0/images/aliases: " + names.error().message : names.error().message;
    }
  }
  for (const auto& project : request.alias_projects) {
    auto aliases = client.get(with_project("/1.0/images/aliases?recursion=1", project));
    auto names = aliases ? parse_image_aliases(aliases->metadata) : Result<model::ImageAliases>{aliases.error()};
    if (names) out.project_image_aliases.emplace(project, std::move(*names));
    // Else not checked in that project: the launch looks the alias up itself.
  }
  if (request.read_resources && out.members) {
    // A cluster's resources are its members': one read per online member (?target=).
    for (const auto& [name, member] : *out.members) {
      if (!member.online()) continue;
      auto resources = client.get("/1.0/resources?target=" + path_segment(name));
      auto host =
          resources ? parse_host_resources(resources->metadata) : Result<model::HostResources>{resources.error()};
      if (host) {
        out.member_resources.emplace(name, *host);
      } else if (out.resources_problem.empty()) {
        out.resources_problem =
            "GET /1.0/resources?target=" + name + ": " + (resources ? host.error().message : resources.error().message);
      }
    }
  } else if (request.read_resources) {
    // Host-wide, in no project. A failure leaves the remote readable: only placement onto it waits.
    auto resources = client.get("/1.0/resources");
    auto host = resources ? parse_host_resources(resources->metadata) : Result<model::HostResources>{resources.error()};
    if (host) {
      out.resources = *host;
    } else {
      out.resources_problem = resources ? "GET /1.0/resources: " + host.error().message : host.error().message;
    }
  }
}

}  // namespace

LxdStateReader::LxdStateReader(ClientConfig config, StateReaderOptions options)
    : config_(std::move(config)), options_(options) {}

providers::ReadStateResponse LxdStateReader::read_state(const providers::ReadStateRequest& request) {
  const auto started = Clock::now();
  const model::RemoteSpec& spec = request.remote;
  providers::ReadStateResponse response;
  model::LiveRemote& live = response.live;
  live.name = spec.name;
  live.status = model::RemoteStatus::unknown;
  const auto give_up = [&](const Error& e) {
    live.error = e.message;
    live.instances.clear();
    live.image_aliases.reset();
    spdlog::debug("read_state {}: unknown: {}", spec.name, e.message);
    return response;
  };

  // The first connection proves reachability and the pin before anything runs in parallel.
  auto main = connect_remote(config_, spec, options_.timeouts);
  if (!main) return give_up(main.error());

  bool two_connections = options_.connections == Connections::two;
  if (options_.connections == Connections::automatic) two_connections = spec.url.starts_with("unix:");
  const ProjectsToRead projects = projects_of(request);
  SideRead side;
  // One instance list per project, in projects.all's order.
  std::vector<Result<Response>> instances_responses;
  std::optional<Error> main_crash;
  const auto read_instances = [&](Client& client) {
    for (const auto& project : projects.all) {
      // LXD 5.0.2 lists no instances, without an error, for a project that does not exist: so a
      // project other than default is looked up first, and its 404 stands for the list's.
      if (project != model::default_project) {
        auto exists = client.get("/1.0/projects/" + path_segment(project));
        if (!exists) {
          instances_responses.emplace_back(exists.error());
          if (!is_not_found(exists.error())) break;
          continue;
        }
      }
      instances_responses.push_back(client.get(with_project("/1.0/instances?recursion=1", project)));
      const auto& last = instances_responses.back();
      if (!last && !is_not_found(last.error())) break;  // the remote fails as a whole
    }
  };
  if (two_connections) {
    std::thread side_thread([&] {
      try {
        auto second = connect_remote(config_, spec, options_.timeouts);
        if (!second) {
          side.error = second.error();
          return;
        }
        read_side(*second, request, projects.all, side);
      } catch (const std::exception& e) {
        // Nothing may leave a thread: std::terminate would end the process.
        side.error = make_error(ErrorKind::protocol, std::string{"internal error: "} + e.what());
      }
    });
    try {
      read_instances(*main);
    } catch (const std::exception& e) {
      main_crash = make_error(ErrorKind::protocol, std::string{"internal error: "} + e.what());
    }
    side_thread.join();  // before anything can leave this scope
  } else {
    read_side(*main, request, projects.all, side);
    if (!side.error && side.auth == "trusted") read_instances(*main);
  }

  if (side.error) {
    if (is_forbidden(*side.error)) return give_up(untrusted_error(config_, spec));
    // Messages from connect_remote already name the remote.
    return give_up(side.error->message.starts_with("remote ") ? *side.error : side.error->for_remote(spec.name));
  }
  if (side.auth != "trusted") return give_up(untrusted_error(config_, spec));
  if (main_crash) return give_up(main_crash->for_remote(spec.name));
  if (instances_responses.empty()) {
    return give_up(make_error(ErrorKind::protocol, "no instance list read").for_remote(spec.name));
  }
  // Each project's instances, keyed by name as parse_instances gives them.
  std::map<std::string, LiveInstances> by_project;
  for (std::size_t i = 0; i < instances_responses.size(); ++i) {
    auto& res = instances_responses[i];
    const std::string& project = projects.all[i];
    if (!res) {
      if (is_forbidden(res.error())) return give_up(untrusted_error(config_, spec));
      if (is_not_found(res.error())) {
        if (projects.required.count(project) == 0) continue;  // no such project: nothing of the fleet there
        return give_up(make_error(ErrorKind::not_found, "project '" + project + "' does not exist (" +
                                                            res.error().message + "); create it (lxc project create " +
                                                            spec.name + ":" + project +
                                                            ") or fix project: in the fleet file")
                           .for_remote(spec.name));
      }
      return give_up(res.error().for_remote(spec.name));
    }
    auto parsed = parse_instances(res->metadata);
    if (!parsed) return give_up(parsed.error().for_remote(spec.name));
    for (auto& [name, inst] : *parsed) inst.project = project;
    by_project.emplace(project, std::move(*parsed));
  }

  if (side.snapshots_known) {
    for (const auto& [project, problem] : side.volumes_not_found) {
      if (by_project.count(project) == 0) continue;  // the project does not exist here
      side.snapshots_known = false;
      side.snapshots_problem = problem;
    }
  }
  if (side.snapshots_known) {
    for (const auto& [project, list] : side.volume_lists) {
      const auto instances = by_project.find(project);
      if (instances == by_project.end()) continue;
      if (auto added = add_snapshot_volumes(list, instances->second, project); !added) {
        side.snapshots_known = false;
        side.snapshots_problem = "a storage volume listing: " + added.error().message;
        break;
      }
    }
  }
  if (side.snapshots_known && options_.snapshots == SnapshotRead::with_creation_times) {
    for (auto& [project, instances] : by_project) {
      for (auto& [name, inst] : instances) {
        if (inst.snapshots.empty() || inst.placeholder) continue;  // a placeholder's member cannot answer
        auto snaps =
            main->get(with_project("/1.0/instances/" + path_segment(name) + "/snapshots?recursion=1", project));
        if (!snaps || !set_instance_snapshots(snaps->metadata, inst).ok()) {
          const std::string key = model::instance_key(project, name);
          response.diagnostics.warning("could not read the snapshots' creation times of " + key, spec.name + ":" + key);
        }
      }
    }
  }
  LiveInstances all;
  for (auto& [project, instances] : by_project) {
    if (!side.snapshots_known) {
      for (auto& [name, inst] : instances) {
        inst.snapshots.clear();
        inst.snapshots_known = false;
      }
    }
    finish_instances(instances);
    for (auto& [name, inst] : instances) all.emplace(model::instance_key(project, name), std::move(inst));
  }
  if (!side.snapshots_known) {
    response.diagnostics.warning("snapshots could not be read: " + side.snapshots_problem, spec.name);
  }
  auto instances = &all;

  if (request.read_image_aliases) {
    if (side.image_aliases) {
      live.image_aliases = std::move(side.image_aliases);
    } else {
      response.diagnostics.warning("image aliases could not be read: " + side.aliases_problem, spec.name);
    }
  }
  live.instances = std::move(*instances);
  live.project_image_aliases = std::move(side.project_image_aliases);
  if (request.read_resources) {
    live.resources = side.resources;
    if (!side.resources && !side.resources_problem.empty()) {
      live.resources_error = "remote " + spec.name + ": " + side.resources_problem;
    }
  }
  if (!side.members) {
    // A standalone host: a location other than "none" means nothing (and must not name a member).
    for (auto& [key, inst] : live.instances) inst.location.clear();
  }
  live.members = std::move(side.members);
  live.member_resources = std::move(side.member_resources);
  live.status = model::RemoteStatus::ok;
  live.error.clear();
  spdlog::debug("read_state {}: {} instances in {} ms", spec.name, live.instances.size(),
                std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
  return response;
}

providers::ReadImageResponse LxdStateReader::read_image(const providers::ReadImageRequest& request) {
  return {read_server_image(request.query, options_.timeouts)};
}

std::unique_ptr<providers::StateReader> make_state_reader(ClientConfig config, StateReaderOptions options) {
  return std::make_unique<LxdStateReader>(std::move(config), options);
}

}  // namespace berth::lxd
