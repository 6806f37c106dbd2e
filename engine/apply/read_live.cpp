#include "engine/apply/read_live.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

namespace berth::apply {

LiveRead read_live_state(const model::Fleet& fleet, providers::StateReader& reader, int parallelism) {
  std::set<std::string> image_remotes;
  for (const auto& [name, c] : fleet.containers) {
    if (c.image && !c.image->server && !c.image->remote.empty()) image_remotes.insert(c.image->remote);
  }
  // A placed container may end up on any of its candidates: each is read as its remote could be.
  std::map<std::string, std::vector<const model::ContainerSpec*>> placed_on;  // remote -> containers
  for (const auto& [name, c] : fleet.containers) {
    if (!c.placement) continue;
    std::set<std::string> remotes;  // "prod/m1" and "prod/m2" are both read as prod
    for (const auto& candidate : c.placement->candidates) remotes.insert(model::parse_site(candidate).remote);
    for (const auto& remote : remotes) placed_on[remote].push_back(&c);
  }
  // Aliases on image servers, each asked once however many containers use it. A pinned image
  // needs no read: drift compares with its fingerprint.
  std::set<model::ServerImageQuery> queries;
  for (const auto& [name, c] : fleet.containers) {
    if (c.image && c.image->server && !c.image->fingerprint) queries.insert({*c.image->server, c.image->alias});
  }
  std::set<std::string> fleet_projects;
  for (const auto& [name, c] : fleet.containers) fleet_projects.insert(c.project);
  std::vector<providers::ReadStateRequest> requests;
  for (const auto& [name, spec] : fleet.remotes) {
    providers::ReadStateRequest request{spec, image_remotes.count(name) != 0, {spec.project}, {}, {}};
    for (const auto& [cname, c] : fleet.containers) {
      if (c.remote != name) continue;
      request.projects.insert(c.project);
      if (c.image && c.image->remote == name && c.project != spec.project) request.alias_projects.insert(c.project);
    }
    if (const auto placed = placed_on.find(name); placed != placed_on.end()) {
      // Placement counts what the host has where the fleet file does not say.
      request.read_resources = !spec.capacity.cpu || !spec.capacity.memory;
      for (const auto* c : placed->second) {
        // An image without a remote of its own lives on the remote the container is placed on, and
        // one on this remote is looked up in the container's project should it be placed here (as
        // for a declared container).
        if (!c->image || c->image->server) continue;
        if (c->image->remote.empty()) request.read_image_aliases = true;
        if ((c->image->remote.empty() || c->image->remote == name) && c->project != spec.project) {
          request.alias_projects.insert(c->project);
        }
      }
    }
    // The projects of containers declared elsewhere, and of placed ones: neither need exist here
    // (a candidate without a placed container's project is no reason to make the remote unknown).
    for (const auto& project : fleet_projects) {
      if (request.projects.count(project) == 0) request.other_projects.insert(project);
    }
    requests.push_back(std::move(request));
  }
  const std::vector<model::ServerImageQuery> image_requests(queries.begin(), queries.end());

  // Each worker takes the next read (the remotes, then the image servers) until none is left;
  // results land in their own slots.
  std::vector<providers::ReadStateResponse> responses(requests.size());
  std::vector<providers::ReadImageResponse> image_responses(image_requests.size());
  std::vector<double> seconds(requests.size(), 0.0);
  const std::size_t jobs = requests.size() + image_requests.size();
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i = next++; i < jobs; i = next++) {
      if (i >= requests.size()) {
        const std::size_t k = i - requests.size();
        try {
          image_responses[k] = reader.read_image({image_requests[k]});
        } catch (const std::exception& e) {
          image_responses[k] = {};
          image_responses[k].image.error =
              "image server " + image_requests[k].server.url + ": internal error: " + e.what();
        }
        continue;
      }
      const auto started = std::chrono::steady_clock::now();
      const auto took = [&] {
        seconds[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      };
      try {
        responses[i] = reader.read_state(requests[i]);
        took();
      } catch (const std::exception& e) {
        // A bug, or memory exhausted by an answer: that remote is unknown, the process lives on.
        responses[i] = {};
        responses[i].live.status = model::RemoteStatus::unknown;
        responses[i].live.error = "remote " + requests[i].remote.name + ": internal error: " + e.what();
        took();
      }
    }
  };
  const auto workers = std::min<std::size_t>(jobs, static_cast<std::size_t>(std::max(parallelism, 1)));
  std::vector<std::thread> pool;
  pool.reserve(workers);
  for (std::size_t w = 0; w < workers; ++w) pool.emplace_back(work);
  for (auto& t : pool) t.join();

  LiveRead result;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    auto& response = responses[i];
    const std::string& name = requests[i].remote.name;
    result.diagnostics.append(response.diagnostics);
    response.live.name = name;
    result.read_seconds[name] = seconds[i];
    if (response.live.status != model::RemoteStatus::ok) {
      spdlog::info("remote {} is unknown: {}", name, response.live.error);
    }
    result.live.remotes.emplace(name, std::move(response.live));
  }
  for (std::size_t k = 0; k < image_requests.size(); ++k) {
    if (!image_responses[k].image.error.empty()) {
      spdlog::info("image {} {} does not resolve: {}", image_requests[k].server.url, image_requests[k].alias,
                   image_responses[k].image.error);
    }
    result.live.server_images.emplace(image_requests[k], std::move(image_responses[k].image));
  }
  return result;
}

}  // namespace berth::apply
