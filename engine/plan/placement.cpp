#include "engine/plan/placement.hpp"

#include <algorithm>
#include <limits>
#include <optional>

#include "engine/util/quantity.hpp"

namespace berth::plan {
namespace {

using model::ContainerSpec;
using model::DesiredState;
using model::RemoteStatus;

// What a container takes of its host: its limits.cpu and limits.memory, as written (a memory
// limit may be a share of the host's memory, so its bytes depend on the host).
struct Demand {
  std::optional<std::string> cpu;
  std::optional<std::string> memory;
  bool cpu_secret = false;  // declared sensitive: shown as (sensitive)
  bool memory_secret = false;

  [[nodiscard]] std::string cpu_shown() const { return cpu_secret ? std::string{sensitive_text} : cpu.value_or(""); }
  [[nodiscard]] std::string memory_shown() const {
    return memory_secret ? std::string{sensitive_text} : memory.value_or("");
  }
};

std::optional<std::string> value_of(const model::ConfigMap& map, const char* key) {
  const auto it = map.find(key);
  if (it == map.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

Demand demand_of(const model::ConfigMap& limits) {
  return {value_of(limits, "limits.cpu"), value_of(limits, "limits.memory")};
}

// A declared container's demand: what it declares, else (for a key it leaves alone) what the
// instance has now.
Demand declared_demand(const ContainerSpec& c, const model::LiveInstance* inst) {
  Demand d = demand_of(c.config);
  if (inst != nullptr) {
    const Demand live = demand_of(inst->limits);
    if (c.config.count("limits.cpu") == 0) d.cpu = live.cpu;
    if (c.config.count("limits.memory") == 0) d.memory = live.memory;
  }
  d.cpu_secret = c.sensitive.count("config.limits.cpu") != 0;
  d.memory_secret = c.sensitive.count("config.limits.memory") != 0;
  return d;
}

// The policy's own count per remote (max_per_remote): a named policy is shared, an inline one is
// its container's alone.
std::string policy_key(const ContainerSpec& c) {
  return c.placement->name.empty() ? "\n" + c.name : c.placement->name;
}

std::string policy_shown(const model::PlacementPolicy& p) {
  return p.name.empty() ? "placement" : "placement " + p.name;
}

std::string listed(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Puts a placed container on `remote`, with an image that has no remote of its own.
void put_on(ContainerSpec& c, const std::string& remote) {
  c.remote = remote;
  if (c.image && !c.image->server && c.image->remote.empty()) c.image->remote = remote;
}

// Any host's memory: for whether a limit is one placement can count at all ("50%" is).
constexpr std::uint64_t any_memory = std::uint64_t{1} << 40;

// Sums that saturate: limits come from daemons and files, and must not wrap into a fit.
std::int64_t plus(std::int64_t a, std::int64_t b) {
  std::int64_t out = 0;
  return __builtin_add_overflow(a, b, &out) ? std::numeric_limits<std::int64_t>::max() : out;
}
std::uint64_t plus(std::uint64_t a, std::uint64_t b) {
  std::uint64_t out = 0;
  return __builtin_add_overflow(a, b, &out) ? std::numeric_limits<std::uint64_t>::max() : out;
}

// One remote as placement sees it while it places containers one after another.
struct Host {
  std::string name;
  const model::LiveRemote* live = nullptr;  // null: Unknown
  std::string unknown_why;
  bool draining = false;
  std::optional<std::int64_t> cpu_capacity;
  std::optional<std::uint64_t> memory_capacity;
  std::string cpu_unknown_why;
  std::string memory_unknown_why;
  // What the instances on it take, and what the plan puts there. A placed container that lives
  // here and does not stay is counted until it is gone (its move may be refused, or fail).
  std::int64_t cpu_used = 0;
  std::uint64_t memory_used = 0;
  int containers = 0;  // this fleet's declared containers that will be here (spread, pack)
  std::map<std::string, const ContainerSpec*> placed;     // placed here by this plan (stays included)
  std::map<std::string, const ContainerSpec*> residents;  // placed containers that live here now
  std::map<std::string, Demand> resident_demand;          // by name: what each resident takes now

  [[nodiscard]] std::optional<std::int64_t> cpus(const Demand& d) const {
    return d.cpu ? util::parse_cpu_count(*d.cpu) : std::nullopt;
  }
  [[nodiscard]] std::optional<std::uint64_t> bytes(const Demand& d) const {
    return d.memory ? util::parse_memory_limit(*d.memory, memory_capacity) : std::nullopt;
  }

  void add(const Demand& d) {
    if (const auto c = cpus(d)) cpu_used = plus(cpu_used, *c);
    if (const auto m = bytes(d)) memory_used = plus(memory_used, *m);
  }
  void remove(const Demand& d) {
    if (const auto c = cpus(d)) cpu_used = cpu_used > *c ? cpu_used - *c : 0;
    if (const auto m = bytes(d)) memory_used = memory_used > *m ? memory_used - *m : 0;
  }
};

class Placer {
 public:
  Placer(const model::Fleet& fleet, const model::LiveState& live, const std::set<std::string>& drain)
      : fleet_(fleet), live_(live) {
    out_.fleet = fleet;
    for (const auto& [name, spec] : fleet.remotes) {
      if (spec.drain || drain.count(name) != 0) out_.drain.push_back(name);
    }
    make_hosts();
  }

  Placed run() {
    warn_pinned_on_draining();
    // Sticky first: every container that may stay where it is takes its place before any is
    // placed anew, so that a new one never pushes out one that was there.
    std::vector<std::string> pending;
    for (auto& [name, c] : out_.fleet.containers) {
      if (!c.placement) continue;
      if (c.state == DesiredState::absent) {
        place_absent(c);
        continue;
      }
      const auto lives = lives_on(c);
      if (lives.size() > 1) {
        // Which one is the container? Neither is moved, pruned or changed.
        not_placed(c, record(c),
                   "it lives on " + listed(lives) +
                       ": berth cannot tell which one is the container; delete the extra one by hand");
      } else if (!stay(c)) {
        pending.push_back(name);
      }
    }
    for (const auto& name : pending) place_anew(out_.fleet.containers.at(name));
    return std::move(out_);
  }

 private:
  [[nodiscard]] std::string key_of(const ContainerSpec& c) const { return model::instance_key(c.project, c.name); }

  // The readable remotes where the container lives (in its project), by name.
  [[nodiscard]] std::vector<std::string> lives_on(const ContainerSpec& c) const {
    std::vector<std::string> out;
    const std::string key = key_of(c);
    for (const auto& [name, lr] : live_.remotes) {
      if (lr.status == RemoteStatus::ok && lr.instances.count(key) != 0) out.push_back(name);
    }
    return out;
  }

  [[nodiscard]] const model::LiveInstance* instance_on(const ContainerSpec& c, const std::string& remote) const {
    const auto r = live_.remotes.find(remote);
    if (r == live_.remotes.end() || r->second.status != RemoteStatus::ok) return nullptr;
    const auto it = r->second.instances.find(key_of(c));
    return it == r->second.instances.end() ? nullptr : &it->second;
  }

  void make_hosts() {
    for (const auto& [name, spec] : fleet_.remotes) {
      Host h;
      h.name = name;
      h.draining = std::binary_search(out_.drain.begin(), out_.drain.end(), name);
      const auto lr = live_.remotes.find(name);
      if (lr == live_.remotes.end()) {
        h.unknown_why = "not read";
      } else if (lr->second.status != RemoteStatus::ok) {
        h.unknown_why = lr->second.error.empty() ? "could not be read" : lr->second.error;
      } else {
        h.live = &lr->second;
      }
      const std::string unread = h.live != nullptr && !h.live->resources_error.empty()
                                     ? "its resources could not be read (" + h.live->resources_error + ")"
                                     : "no capacity: declared, and its resources were not read";
      h.cpu_capacity = spec.capacity.cpu;
      h.memory_capacity = spec.capacity.memory;
      if (h.live != nullptr && h.live->resources) {
        if (!h.cpu_capacity) h.cpu_capacity = h.live->resources->cpu;
        if (!h.memory_capacity) h.memory_capacity = h.live->resources->memory;
      }
      if (!h.cpu_capacity) h.cpu_unknown_why = unread;
      if (!h.memory_capacity) h.memory_unknown_why = unread;
      hosts_.emplace(name, std::move(h));
    }
    // What is on each host now, every instance by its limits; except a container pinned to the
    // host it is on, which counts as declared (below). A placed container is a resident of the
    // host it lives on: counted there until it is gone, or as declared once it stays.
    for (auto& [name, h] : hosts_) {
      if (h.live == nullptr) continue;
      for (const auto& [key, inst] : h.live->instances) {
        const auto spec = out_.fleet.containers.find(inst.name);
        const ContainerSpec* declared =
            spec != out_.fleet.containers.end() && spec->second.project == inst.project ? &spec->second : nullptr;
        if (declared != nullptr && !declared->placement && declared->state != DesiredState::absent &&
            declared->remote == name) {
          continue;
        }
        const Demand now = demand_of(inst.limits);
        h.add(now);
        if (declared != nullptr && declared->placement && declared->state != DesiredState::absent) {
          h.residents.emplace(inst.name, declared);
          h.resident_demand.emplace(inst.name, now);
        }
      }
    }
    // Containers pinned to a host, as declared, whether they exist yet or not.
    for (const auto& [name, c] : fleet_.containers) {
      if (c.placement || c.state == DesiredState::absent) continue;
      const auto h = hosts_.find(c.remote);
      if (h == hosts_.end()) continue;
      h->second.add(declared_demand(c, instance_on(c, c.remote)));
      ++h->second.containers;
    }
  }

  void warn_pinned_on_draining() {
    for (const auto& [name, c] : fleet_.containers) {
      if (c.placement || c.state == DesiredState::absent) continue;
      const auto h = hosts_.find(c.remote);
      if (h == hosts_.end() || !h->second.draining) continue;
      out_.diagnostics.warning("pinned to '" + c.remote + "' by remote:, so it blocks the drain of '" + c.remote + "'",
                               c.remote + ":" + key_of(c), c.where,
                               "give it a placement: policy, or name another remote: for it, to move it off");
    }
  }

  // Why `host` does not take the container now; nullopt when it does. `staying`: the container
  // is there already: only what this plan placed there counts against it (not other residents,
  // which are placed after it), and a capacity that is not known does not move it.
  [[nodiscard]] std::optional<std::string> refusal(const ContainerSpec& c, const Host& host, const Demand& demand,
                                                   bool staying) const {
    const auto& policy = *c.placement;
    if (host.live == nullptr) return "unknown (" + host.unknown_why + ")";
    if (!std::binary_search(policy.candidates.begin(), policy.candidates.end(), host.name)) {
      return std::string{"not a candidate"};
    }
    if (host.draining) return std::string{"draining"};
    // The containers there that count: placed there, and (for a container coming in) those that
    // live there still.
    std::vector<const ContainerSpec*> there;
    for (const auto& [name, spec] : host.placed) {
      if (name != c.name) there.push_back(spec);
    }
    if (!staying) {
      for (const auto& [name, spec] : host.residents) {
        if (name != c.name && host.placed.count(name) == 0) there.push_back(spec);
      }
    }
    if (policy.max_per_remote) {
      const std::string key = policy_key(c);
      const auto n =
          std::count_if(there.begin(), there.end(), [&](const ContainerSpec* o) { return policy_key(*o) == key; });
      if (n >= *policy.max_per_remote) {
        return "holds " + std::to_string(n) + " of its containers already (max_per_remote " +
               std::to_string(*policy.max_per_remote) + ")";
      }
    }
    if (policy.anti_affinity) {
      std::vector<std::string> holders;
      for (const auto* o : there) {
        if (o->placement->anti_affinity == policy.anti_affinity) holders.push_back(o->name);
      }
      std::sort(holders.begin(), holders.end());
      if (!holders.empty()) return "holds " + holders.front() + " (anti_affinity " + *policy.anti_affinity + ")";
    }
    // A limit placement cannot count (check_demand warned) is left out of the fit.
    if (const auto need = host.cpus(demand)) {
      if (!host.cpu_capacity) {
        if (!staying) return "limits.cpu " + demand.cpu_shown() + ": CPU capacity unknown, " + host.cpu_unknown_why;
      } else {
        const std::int64_t free = std::max<std::int64_t>(*host.cpu_capacity - host.cpu_used, 0);
        if (*need > free) {
          return "limits.cpu " + demand.cpu_shown() + " does not fit: " + std::to_string(free) + " of " +
                 std::to_string(*host.cpu_capacity) + " CPUs free";
        }
      }
    }
    if (demand.memory && util::parse_memory_limit(*demand.memory, any_memory)) {
      const auto need = host.bytes(demand);
      if (!host.memory_capacity) {
        if (!staying) {
          return "limits.memory " + demand.memory_shown() + ": memory capacity unknown, " + host.memory_unknown_why;
        }
      } else if (need) {
        const std::uint64_t free =
            *host.memory_capacity > host.memory_used ? *host.memory_capacity - host.memory_used : 0;
        if (*need > free) {
          return "limits.memory " + demand.memory_shown() + " does not fit: " + util::format_bytes(free) + " of " +
                 util::format_bytes(*host.memory_capacity) + " free";
        }
      }
    }
    return std::nullopt;
  }

  void assign(ContainerSpec& c, Host& host, const Demand& demand) {
    host.add(demand);
    ++host.containers;
    host.placed.emplace(c.name, &c);
    put_on(c, host.name);
  }

  Placement record(const ContainerSpec& c) const {
    Placement p;
    p.container = c.name;
    p.project = c.project;
    p.policy = c.placement->name;
    return p;
  }

  // A limit the plan cannot count is left out of the fit, with a warning.
  void check_demand(const ContainerSpec& c, const Demand& d) {
    if (d.cpu && !util::parse_cpu_count(*d.cpu)) {
      out_.diagnostics.warning("limits.cpu '" + d.cpu_shown() +
                                   "' is neither a count of CPUs nor a set of them; placement does not count it",
                               key_of(c), c.where, "write a count (2) or a set of CPUs (0-3, 1,3)");
    }
    if (d.memory && !util::parse_memory_limit(*d.memory, any_memory)) {
      out_.diagnostics.warning("limits.memory '" + d.memory_shown() + "' is not a size; placement does not count it",
                               key_of(c), c.where, "write a size (512MiB, 2GiB) or a share of the host (50%)");
    }
  }

  // Stays where it lives while that remote satisfies the policy, counted there as declared
  // instead of as it is. False: placed anew afterwards, and `stay_refusal_` says why not.
  bool stay(ContainerSpec& c) {
    const auto lives = lives_on(c);
    if (lives.size() != 1) return false;
    const std::string& name = lives.front();
    Host& host = hosts_.at(name);
    const Demand now = host.resident_demand.at(c.name);
    const Demand demand = declared_demand(c, instance_on(c, name));
    host.remove(now);
    if (auto why = refusal(c, host, demand, true)) {
      host.add(now);
      stay_refusal_[c.name] = std::move(*why);
      return false;
    }
    check_demand(c, demand);
    assign(c, host, demand);
    Placement p = record(c);
    p.remote = name;
    p.explanation = "stays on " + name + ": it still satisfies " + policy_shown(*c.placement);
    out_.placements.push_back(std::move(p));
    return true;
  }

  // Declared absent: wherever it lives (the first readable remote by name); nowhere, when it does
  // not exist.
  void place_absent(ContainerSpec& c) {
    const auto lives = lives_on(c);
    Placement p = record(c);
    if (!lives.empty()) {
      c.remote = lives.front();
      p.remote = lives.front();
      p.explanation = "declared absent; lives on " + lives.front();
    } else {
      p.explanation = "declared absent; not found on any readable remote";
    }
    out_.placements.push_back(std::move(p));
  }

  void not_placed(ContainerSpec& c, Placement p, const std::string& why) {
    c.remote.clear();
    p.explanation = "not placed: " + why;
    // The plan shows it as not planned, and its placement line the reason for each candidate.
    out_.not_planned[key_of(c)] = p.explanation;
    out_.placements.push_back(std::move(p));
  }

  void place_anew(ContainerSpec& c) {
    const auto& policy = *c.placement;
    const auto lives = lives_on(c);
    const std::string from = lives.empty() ? std::string{} : lives.front();
    Placement p = record(c);
    p.from = from;

    if (from.empty()) {
      // It may live on a remote that could not be read (a candidate, or one that was): launching
      // it would make a second one, and pruning could then delete the first.
      std::vector<std::string> unknown;
      for (const auto& [name, host] : hosts_) {
        if (host.live == nullptr) unknown.push_back(name);
      }
      if (!unknown.empty()) {
        return not_placed(c, std::move(p),
                          "not found on any readable remote, and " +
                              std::string{unknown.size() == 1 ? "remote " : "remotes "} + listed(unknown) +
                              (unknown.size() == 1 ? " is" : " are") + " unknown: it may live there");
      }
    }

    const Demand demand = declared_demand(c, from.empty() ? nullptr : instance_on(c, from));
    check_demand(c, demand);
    std::optional<std::string> from_refusal;
    if (const auto it = stay_refusal_.find(c.name); !from.empty() && it != stay_refusal_.end()) {
      from_refusal = it->second;
    }
    std::vector<Host*> fits;
    for (const auto& name : policy.candidates) {
      Host& host = hosts_.at(name);
      const auto why = name == from ? from_refusal : refusal(c, host, demand, false);
      if (why) {
        p.rejected.push_back(name + ": " + *why);
      } else {
        fits.push_back(&host);
      }
    }

    std::string from_why = from;  // "h3 (draining)"
    if (from_refusal) from_why += " (" + *from_refusal + ")";
    if (fits.empty()) {
      std::string failed;
      for (const auto& r : p.rejected) failed += (failed.empty() ? "" : "; ") + r;
      if (!from.empty() && from_refusal == "draining") {
        // Nowhere else to go: it stays, and the drain is not complete.
        Host& host = hosts_.at(from);
        host.remove(host.resident_demand.at(c.name));
        assign(c, host, demand);
        p.from.clear();
        p.remote = from;
        p.explanation = "stays on " + from + ", which is draining: no other candidate fits";
        out_.diagnostics.warning("blocks the drain of '" + from + "': no other candidate of its " +
                                     policy_shown(policy) + " fits (" + failed + ")",
                                 from + ":" + key_of(c), policy.where,
                                 "add a candidate with room, or loosen the policy, then plan again");
        out_.placements.push_back(std::move(p));
        return;
      }
      return not_placed(c, std::move(p),
                        (from.empty() ? "" : "lives on " + from_why + ", and ") + "no candidate of its " +
                            policy_shown(policy) + " fits (" + failed + ")");
    }

    const bool pack = policy.strategy == model::Strategy::pack;
    Host* best = fits.front();
    for (Host* h : fits) {
      if (pack ? h->containers > best->containers : h->containers < best->containers) best = h;
    }
    const std::size_t candidates = policy.candidates.size();
    std::string how = std::string{model::to_string(policy.strategy)} + ", " + std::to_string(fits.size()) + " of " +
                      std::to_string(candidates) + (candidates == 1 ? " candidate fits" : " candidates fit") + ", " +
                      (pack ? "most" : "fewest") + " containers (" + std::to_string(best->containers) + ")";
    p.remote = best->name;
    p.explanation = from.empty() ? "placed on " + best->name + ": " + how
                                 : "moves off " + from_why + "; placed on " + best->name + ": " + how;
    // It stays a resident of `from` (counted there) until the move is done.
    assign(c, *best, demand);
    out_.placements.push_back(std::move(p));
  }

  const model::Fleet& fleet_;
  const model::LiveState& live_;
  Placed out_;
  std::map<std::string, Host> hosts_;
  std::map<std::string, std::string> stay_refusal_;  // container -> why it cannot stay where it lives
};

}  // namespace

bool has_placements(const model::Fleet& fleet) {
  return std::any_of(fleet.containers.begin(), fleet.containers.end(),
                     [](const auto& entry) { return entry.second.placement.has_value(); });
}

Placed place(const model::Fleet& fleet, const model::LiveState& live, const std::set<std::string>& drain) {
  Placed placed = Placer(fleet, live, drain).run();
  std::sort(placed.placements.begin(), placed.placements.end(),
            [](const Placement& a, const Placement& b) { return a.container < b.container; });
  return placed;
}

const model::Fleet& placed_fleet(const model::Fleet& fleet, const Plan& plan, std::optional<model::Fleet>& storage) {
  if (plan.placements.empty()) return fleet;
  return storage.emplace(placed_fleet(fleet, plan));
}

model::Fleet placed_fleet(const model::Fleet& fleet, const Plan& plan) {
  model::Fleet out = fleet;
  for (const auto& p : plan.placements) {
    const auto it = out.containers.find(p.container);
    if (it != out.containers.end() && it->second.placement) put_on(it->second, p.remote);
  }
  return out;
}

}  // namespace berth::plan
