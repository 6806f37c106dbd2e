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

// Puts a placed container on `remote` (and on an LXD cluster `member`), with an image that has
// no remote of its own.
void put_on(ContainerSpec& c, const std::string& remote, const std::string& member) {
  c.remote = remote;
  if (member.empty()) {
    c.target.reset();
  } else {
    c.target = member;
  }
  if (c.image && !c.image->server && c.image->remote.empty()) c.image->remote = remote;
}

// Where an instance of a readable remote is, as placement names hosts: the remote, or on an LXD
// cluster "REMOTE/MEMBER".
std::string site_of(const std::string& remote, const model::LiveInstance& inst) {
  return inst.location.empty() ? remote : remote + "/" + inst.location;
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

// One remote, or one member of a remote that is an LXD cluster, as placement sees it while it
// places containers one after another.
struct Host {
  std::string name;                         // the remote's name, or "REMOTE/MEMBER"
  std::string remote;                       // the remote's name
  std::string member;                       // on a cluster: the member; else empty
  const model::LiveRemote* live = nullptr;  // null: Unknown
  std::string unknown_why;
  // A member that is not online (or that lists only placeholders): nothing is placed on it, but
  // what lives there is known to exist (LXD lists it), so it is not Unknown.
  std::string offline_why;
  int listed = 0;        // instances the cluster lists on this member
  int placeholders = 0;  // of which listed without their state
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

  // What the fleet file leaves open of the capacity is what the host reports, if it was read.
  void fill_capacity(const std::optional<model::HostResources>& reported, const std::string& unread) {
    if (reported && !cpu_capacity) cpu_capacity = reported->cpu;
    if (reported && !memory_capacity) memory_capacity = reported->memory;
    if (!cpu_capacity) cpu_unknown_why = unread;
    if (!memory_capacity) memory_unknown_why = unread;
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
      if (spec.drain) out_.drain.push_back(name);
    }
    for (const auto& site : drain) {
      if (std::find(out_.drain.begin(), out_.drain.end(), site) == out_.drain.end()) out_.drain.push_back(site);
    }
    std::sort(out_.drain.begin(), out_.drain.end());
    make_hosts();
  }

  Placed run() {
    warn_pinned_on_draining();
    warn_unknown_drains();
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
      const auto* unreachable = lives.size() == 1 ? instance_on(c, lives.front()) : nullptr;
      if (unreachable != nullptr && unreachable->placeholder) {
        // It exists (on a member the cluster cannot reach, or listed without its state): nothing
        // else is known of it.
        not_placed(c, record(c),
                   "it lives on " + lives.front() +
                       (unreachable->location.empty()
                            ? std::string{", which lists it without its state: its state is unknown"}
                            : ", which the cluster cannot reach: its state is unknown until the member is back"));
      } else if (lives.size() > 1) {
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

  // Where the container lives (in its project) on readable remotes: each host's name.
  [[nodiscard]] std::vector<std::string> lives_on(const ContainerSpec& c) const {
    std::vector<std::string> out;
    const std::string key = key_of(c);
    for (const auto& [name, lr] : live_.remotes) {
      if (lr.status != RemoteStatus::ok) continue;
      if (const auto it = lr.instances.find(key); it != lr.instances.end()) out.push_back(site_of(name, it->second));
    }
    return out;
  }

  [[nodiscard]] const model::LiveInstance* instance_on(const ContainerSpec& c, const std::string& site) const {
    const auto r = live_.remotes.find(model::parse_site(site).remote);
    if (r == live_.remotes.end() || r->second.status != RemoteStatus::ok) return nullptr;
    const auto it = r->second.instances.find(key_of(c));
    return it == r->second.instances.end() ? nullptr : &it->second;
  }

  [[nodiscard]] Host* host(const std::string& site) {
    const auto it = hosts_.find(site);
    return it == hosts_.end() ? nullptr : &it->second;
  }

  // The host a container pinned with remote: counts on: its remote; on a cluster the member its
  // target: names (where it will be), else the one it lives on (a group, or no target: LXD
  // chooses, so none before it exists).
  [[nodiscard]] Host* pinned_host(const ContainerSpec& c) {
    if (Host* whole = host(c.remote)) return whole;
    if (c.target && !c.target->starts_with("@")) return host(c.remote + "/" + *c.target);
    if (const auto* inst = instance_on(c, c.remote)) return host(site_of(c.remote, *inst));
    return nullptr;
  }

  [[nodiscard]] bool draining(const std::string& remote, const std::string& site) const {
    return std::binary_search(out_.drain.begin(), out_.drain.end(), site) ||
           std::binary_search(out_.drain.begin(), out_.drain.end(), remote);
  }

  void make_hosts() {
    for (const auto& [name, spec] : fleet_.remotes) {
      Host h;
      h.name = name;
      h.remote = name;
      const auto lr = live_.remotes.find(name);
      if (lr == live_.remotes.end()) {
        h.unknown_why = "not read";
      } else if (lr->second.status != RemoteStatus::ok) {
        h.unknown_why = lr->second.error.empty() ? "could not be read" : lr->second.error;
      } else {
        h.live = &lr->second;
      }
      h.cpu_capacity = spec.capacity.cpu;
      h.memory_capacity = spec.capacity.memory;
      const std::string unread = h.live != nullptr && !h.live->resources_error.empty()
                                     ? "its resources could not be read (" + h.live->resources_error + ")"
                                     : "no capacity: declared, and its resources were not read";
      if (h.live != nullptr && h.live->members) {
        // An LXD cluster: one host per member, each with the remote's declared capacity, else its own.
        for (const auto& [member, m] : *h.live->members) {
          Host mh = h;
          mh.member = member;
          mh.name = name + "/" + member;
          if (!m.online()) mh.offline_why = "member " + member + " is " + (m.status.empty() ? "not online" : m.status);
          const auto res = h.live->member_resources.find(member);
          mh.fill_capacity(
              res == h.live->member_resources.end() ? std::nullopt : std::optional<model::HostResources>{res->second},
              unread);
          mh.draining = draining(name, mh.name);
          hosts_.emplace(mh.name, std::move(mh));
        }
        continue;
      }
      h.fill_capacity(h.live != nullptr ? h.live->resources : std::nullopt, unread);
      h.draining = draining(name, name);
      hosts_.emplace(name, std::move(h));
    }
    // What is on each host now, every instance by its limits; except a container pinned to the
    // host it is on, which counts as declared (below). A placed container is a resident of the
    // host it lives on: counted there until it is gone, or as declared once it stays.
    for (const auto& [rname, lr] : live_.remotes) {
      if (lr.status != RemoteStatus::ok) continue;
      for (const auto& [key, inst] : lr.instances) {
        Host* here = host(site_of(rname, inst));
        if (here == nullptr) continue;  // a member the member list did not name
        Host& h = *here;
        ++h.listed;
        if (inst.placeholder) ++h.placeholders;
        const auto spec = out_.fleet.containers.find(inst.name);
        const ContainerSpec* declared =
            spec != out_.fleet.containers.end() && spec->second.project == inst.project ? &spec->second : nullptr;
        // A pinned container is counted where it is declared (below); where it lives too while
        // that is elsewhere (a move between members that may be refused, or fail).
        if (declared != nullptr && !declared->placement && declared->state != DesiredState::absent &&
            declared->remote == rname && pinned_host(*declared) == here) {
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
    // A member that lists only placeholders is one the cluster cannot reach yet (LXD still calls
    // it Online until cluster.offline_threshold passes). One broken instance is not that.
    for (auto& [name, h] : hosts_) {
      if (!h.member.empty() && h.listed > 0 && h.placeholders == h.listed && h.offline_why.empty()) {
        h.offline_why = "member " + h.member + " cannot be reached (it lists its instances without their state)";
      }
    }
    // Containers pinned to a host, as declared, whether they exist yet or not.
    for (const auto& [name, c] : fleet_.containers) {
      if (c.placement || c.state == DesiredState::absent) continue;
      Host* h = pinned_host(c);
      if (h == nullptr) continue;
      h->add(declared_demand(c, instance_on(c, c.remote)));
      ++h->containers;
    }
  }

  void warn_pinned_on_draining() {
    for (const auto& [name, c] : fleet_.containers) {
      if (c.placement || c.state == DesiredState::absent) continue;
      const Host* h = pinned_host(c);
      if (h == nullptr || !h->draining) continue;
      const std::string by = h->member.empty() ? "remote:"
                             : c.target        ? "remote: and target:"
                                               : "remote: (LXD chose the member)";
      out_.diagnostics.warning("pinned to '" + h->name + "' by " + by + ", so it blocks the drain of '" + h->name + "'",
                               c.remote + ":" + key_of(c), c.where,
                               h->member.empty()
                                   ? "give it a placement: policy, or name another remote: for it, to move it off"
                                   : "give it a placement: policy (candidates: [" + h->remote +
                                         "/*]), or name another member with target:, to move it off");
    }
  }

  // A drained REMOTE/MEMBER the remote does not have (or a remote that is no cluster) drains nothing.
  void warn_unknown_drains() {
    for (const auto& site : out_.drain) {
      const model::SiteRef ref = model::parse_site(site);
      if (ref.member.empty() || host(site) != nullptr) continue;
      const Host* whole = host(ref.remote);
      if (whole != nullptr && whole->live == nullptr) continue;  // Unknown: whether it has the member is unknown
      out_.diagnostics.warning(whole != nullptr
                                   ? "drain " + site + ": remote " + ref.remote + " is not an LXD cluster"
                                   : "drain " + site + ": cluster " + ref.remote + " has no member " + ref.member,
                               site, std::nullopt, "drain a member it has (REMOTE/MEMBER), or the whole remote");
    }
  }

  // Whether the policy names this host: the remote, every member (REMOTE, REMOTE/*), or this member.
  [[nodiscard]] static bool is_candidate(const model::PlacementPolicy& policy, const Host& host) {
    return std::any_of(policy.candidates.begin(), policy.candidates.end(), [&](const std::string& text) {
      const model::SiteRef site = model::parse_site(text);
      if (site.remote != host.remote) return false;
      if (site.member.empty() || site.member == "*") return true;
      return site.member == host.member;
    });
  }

  // The hosts the policy's candidates name, in order, each once; a candidate that names no host
  // (a member the cluster does not have, a member of a remote that is no cluster) with why.
  struct Candidate {
    std::string name;
    Host* host = nullptr;
    std::string missing_why;
  };
  std::vector<Candidate> candidates_of(const model::PlacementPolicy& policy) {
    std::vector<Candidate> out;
    std::set<std::string> seen;
    const auto add = [&](Candidate c) {
      if (seen.insert(c.name).second) out.push_back(std::move(c));
    };
    for (const auto& text : policy.candidates) {
      const model::SiteRef site = model::parse_site(text);
      if (Host* whole = host(site.remote)) {
        // A standalone host (or an Unknown remote): the remote itself.
        if (site.member.empty() || site.member == "*" || whole->live == nullptr) {
          add({whole->name, whole, {}});
        } else {
          add({text, nullptr, "remote " + site.remote + " is not an LXD cluster"});
        }
        continue;
      }
      bool any = false;
      for (auto& [name, h] : hosts_) {
        if (h.remote != site.remote) continue;
        if (!site.member.empty() && site.member != "*" && site.member != h.member) continue;
        any = true;
        add({name, &h, {}});
      }
      if (!any) add({text, nullptr, "cluster " + site.remote + " has no member " + site.member});
    }
    std::sort(out.begin(), out.end(), [](const Candidate& a, const Candidate& b) { return a.name < b.name; });
    return out;
  }

  // Why `host` does not take the container now; nullopt when it does. `staying`: the container
  // is there already: only what this plan placed there counts against it (not other residents,
  // which are placed after it), and a capacity that is not known does not move it.
  [[nodiscard]] std::optional<std::string> refusal(const ContainerSpec& c, const Host& host, const Demand& demand,
                                                   bool staying) const {
    const auto& policy = *c.placement;
    if (host.live == nullptr) return "unknown (" + host.unknown_why + ")";
    if (!is_candidate(policy, host)) return std::string{"not a candidate"};
    if (!host.offline_why.empty()) return host.offline_why;
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
    put_on(c, host.remote, host.member);
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
    Host* found = host(name);
    if (found == nullptr) {
      stay_refusal_[c.name] = "not a member the cluster lists";
      return false;
    }
    Host& host = *found;
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
    p.remote = host.remote;
    p.member = host.member;
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
      const model::SiteRef site = model::parse_site(lives.front());
      c.remote = site.remote;
      p.remote = site.remote;
      p.member = site.member;
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
    const auto candidates = candidates_of(policy);
    for (const auto& candidate : candidates) {
      if (candidate.host == nullptr) {
        p.rejected.push_back(candidate.name + ": " + candidate.missing_why);
        continue;
      }
      const auto why = candidate.name == from ? from_refusal : refusal(c, *candidate.host, demand, false);
      if (why) {
        p.rejected.push_back(candidate.name + ": " + *why);
      } else {
        fits.push_back(candidate.host);
      }
    }

    std::string from_why = from;  // "h3 (draining)"
    if (from_refusal) from_why += " (" + *from_refusal + ")";
    if (fits.empty()) {
      std::string failed;
      for (const auto& r : p.rejected) failed += (failed.empty() ? "" : "; ") + r;
      if (!from.empty() && from_refusal == "draining" && host(from) != nullptr) {
        // Nowhere else to go: it stays, and the drain is not complete.
        Host& there = *host(from);
        there.remove(there.resident_demand.at(c.name));
        assign(c, there, demand);
        p.from.clear();
        p.remote = there.remote;
        p.member = there.member;
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
    const std::size_t count = candidates.size();
    std::string how = std::string{model::to_string(policy.strategy)} + ", " + std::to_string(fits.size()) + " of " +
                      std::to_string(count) + (count == 1 ? " candidate fits" : " candidates fit") + ", " +
                      (pack ? "most" : "fewest") + " containers (" + std::to_string(best->containers) + ")";
    p.remote = best->remote;
    p.member = best->member;
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
    if (it != out.containers.end() && it->second.placement) put_on(it->second, p.remote, p.member);
  }
  return out;
}

}  // namespace berth::plan
