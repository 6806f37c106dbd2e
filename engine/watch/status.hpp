#pragma once
// What `berth watch` shows about each declared container after a run (GET /status, the status
// page): whether the hosts match the fleet file (sync) and whether the container is as declared
// to run (health), in Argo CD's words. Pure: computed from the fleet, what was read and the plan.

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model/desired.hpp"
#include "engine/model/live.hpp"
#include "engine/plan/plan.hpp"

namespace berth::watch {

// Synced: the plan has nothing for it. OutOfSync: it has. Unknown: its remote could not be read,
// or it could not be planned.
enum class Sync { synced, out_of_sync, unknown };
// Healthy: exists and runs as declared. Degraded: exists in another power state. Missing: declared
// but not found on any remote that was read. Unknown: its remote could not be read.
enum class Health { healthy, degraded, missing, unknown };

[[nodiscard]] std::string_view to_string(Sync s);
[[nodiscard]] std::string_view to_string(Health h);

struct ContainerStatus {
  std::string address;  // as plans print it ("h1:web", "h1:p/web")
  Sync sync = Sync::unknown;
  Health health = Health::unknown;
  std::vector<std::string> drift;  // what differs: action kinds and change paths ("update config.limits.cpu")
  std::string why;                 // for Unknown: the remote's error or why it was not planned
};

// One entry per declared container, in the fleet's order (by name). `corrected`: ids of the plan's
// actions that were carried out successfully since `live` was read: what they did is no longer
// drift, and a container whose every action succeeded is Synced and Healthy.
[[nodiscard]] std::vector<ContainerStatus> container_status(const model::Fleet& fleet, const model::LiveState& live,
                                                            const plan::Plan& plan,
                                                            const std::set<std::string>& corrected = {});

// Drift items by remote and action kind (berth_drift_items{remote,kind}): every non-recovery action.
[[nodiscard]] std::map<std::pair<std::string, std::string>, int> drift_items(const plan::Plan& plan);

}  // namespace berth::watch
