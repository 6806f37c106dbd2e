#include "engine/apply/read_live.hpp"

#include <future>
#include <set>
#include <vector>

#include <spdlog/spdlog.h>

namespace berth::apply {

LiveRead read_live_state(const model::Fleet& fleet, providers::StateReader& reader) {
  std::set<std::string> image_remotes;
  for (const auto& [name, c] : fleet.containers) {
    if (c.image) image_remotes.insert(c.image->remote);
  }

  std::vector<std::pair<std::string, std::future<providers::ReadStateResponse>>> reads;
  for (const auto& [name, spec] : fleet.remotes) {
    providers::ReadStateRequest request{spec, image_remotes.count(name) != 0};
    reads.emplace_back(name, std::async(std::launch::async, [&reader, request] { return reader.read_state(request); }));
  }

  LiveRead result;
  auto& live = result.live;
  for (auto& [name, future] : reads) {
    auto response = future.get();
    result.diagnostics.append(response.diagnostics);
    response.live.name = name;
    if (response.live.status != model::RemoteStatus::ok) {
      spdlog::info("remote {} is unknown: {}", name, response.live.error);
    }
    live.remotes.emplace(name, std::move(response.live));
  }
  return result;
}

}  // namespace berth::apply
