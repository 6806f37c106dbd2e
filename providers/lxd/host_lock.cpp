#include "providers/lxd/host_lock.hpp"

#include <unistd.h>

#include <array>
#include <charconv>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "engine/util/time.hpp"
#include "providers/lxd/instance_api.hpp"
#include "providers/lxd/url.hpp"

namespace berth::lxd {

std::string lock_profile(const std::string& fleet) {
  return "berth-lock-" + fleet;
}

std::string moved_lock_profile(const std::string& fleet, const std::string& id) {
  return lock_profile(fleet) + "-was-" + id.substr(0, 16);
}

namespace {

constexpr const char* key_fleet = "user.berth.lock.fleet";
constexpr const char* key_id = "user.berth.lock.id";
constexpr const char* key_holder = "user.berth.lock.holder";
constexpr const char* key_since = "user.berth.lock.since";
constexpr const char* key_expires = "user.berth.lock.expires";
constexpr const char* key_machine = "user.berth.lock.machine";
constexpr const char* key_process = "user.berth.lock.process";

// Moved copies are kept this long after they expired: a run that read the expired lock and was
// slow to try the takeover is refused by the copy's name for as long as the copy exists.
constexpr std::int64_t moved_kept_seconds = 600;

// The first line of a small file, or "".
std::string first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// "host-name boot-id": two processes that see the same are on the same machine, in the same boot.
std::string this_machine() {
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
  return std::string{host.data()} + " " + first_line("/proc/sys/kernel/random/boot_id");
}

// A process's start time (clock ticks since boot, /proc/PID/stat field 22): with its pid, it
// names the process even after the pid is reused.
std::optional<std::string> start_time(const std::string& pid) {
  const std::string stat = first_line(("/proc/" + pid + "/stat").c_str());
  const auto close = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 22) return field;
  }
  return std::nullopt;
}

std::string this_process() {
  const std::string pid = std::to_string(::getpid());
  return pid + ":" + start_time(pid).value_or("?");
}

// "PID:START" no longer runs here: no such pid, or another process that reuses it.
bool process_gone(const std::string& process) {
  const auto colon = process.find(':');
  if (colon == std::string::npos || colon == 0) return false;  // unreadable: not known to be gone
  const std::string pid = process.substr(0, colon);
  if (pid.find_first_not_of("0123456789") != std::string::npos) return false;
  const auto started = start_time(pid);
  return !started || *started != process.substr(colon + 1);
}

std::string target_of(const std::string& profile) {
  return "/1.0/profiles/" + path_segment(profile);
}

struct Found {
  providers::HostLockInfo info;
  std::string etag;
};

std::optional<std::int64_t> parse_seconds(const std::string& text) {
  std::int64_t v = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc{} || ptr != end || text.empty()) return std::nullopt;
  return v;
}

providers::HostLockInfo info_of(const std::string& remote, const std::string& object, const nlohmann::json& profile,
                                const std::string& fleet) {
  providers::HostLockInfo info;
  info.remote = remote;
  info.object = object;
  info.taken_over = object != lock_profile(fleet);
  const auto config = profile.is_object() ? profile.value("config", nlohmann::json::object()) : nlohmann::json{};
  auto text = [&](const char* key) {
    const auto it = config.is_object() ? config.find(key) : config.end();
    return config.is_object() && it != config.end() && it->is_string() ? it->get<std::string>() : std::string{};
  };
  info.id = text(key_id);
  info.holder = text(key_holder).empty() ? "an unknown holder (the profile " + object + " has no berth lock keys)"
                                         : text(key_holder);
  info.since = text(key_since);
  info.expires = parse_seconds(text(key_expires));
  info.machine = text(key_machine);
  info.process = text(key_process);
  return info;
}

class LxdHostLocker final : public providers::HostLocker {
 public:
  LxdHostLocker(ClientConfig config, HostLockerOptions options)
      : config_(std::move(config)), options_(std::move(options)) {
    if (options_.machine.empty()) options_.machine = this_machine();
    if (options_.process.empty()) options_.process = this_process();
    if (!options_.gone) options_.gone = process_gone;
  }

  providers::HostLockResponse acquire(const model::RemoteSpec& remote, const providers::HostLockClaim& claim) override {
    providers::HostLockResponse out;
    auto r = open(remote);
    if (!r) return failed(r.error().message);
    const std::string name = lock_profile(claim.fleet);
    std::string refused;  // why the latest create was refused
    // A few rounds: each either ends, or saw the lock change under it (released, taken over).
    for (int round = 0; round < 4; ++round) {
      auto created = r->client.request(Method::post, "/1.0/profiles", profile_body(name, claim));
      if (created) {
        // Only what the host now holds counts: the lock must read back as ours.
        auto mine = read(*r, name, claim.fleet);
        if (mine && *mine && (*mine)->info.id == claim.id) {
          out.answer = providers::LockAnswer::acquired;
          forget_old_moved(*r, claim.fleet);
          return out;
        }
        refused = "the host answered that it created it, but it does not hold it";
        continue;
      }
      refused = r->error(created.error()).message;
      auto found = read(*r, name, claim.fleet);
      if (!found) return failed(found.error().message);
      if (!*found) continue;  // released meanwhile (or the create failed otherwise: it says so next round)
      const auto& lock = (*found)->info;
      if (lock.id == claim.id) {  // ours: the create went through and its answer was lost
        out.answer = providers::LockAnswer::acquired;
        return out;
      }
      const bool gone = !lock.machine.empty() && lock.machine == options_.machine && options_.gone(lock.process);
      if ((!lock.expires || options_.now() < *lock.expires) && !gone) {
        out.answer = providers::LockAnswer::held;
        out.holder = lock;
        return out;
      }
      // Expired (or its holder is gone): only one run can move it to the name its id gives.
      const std::string moved = moved_lock_profile(claim.fleet, lock.id);
      if (!r->client.request(Method::post, target_of(name), nlohmann::json{{"name", moved}})) continue;
      auto check = read(*r, moved, claim.fleet);
      if (!check || !*check || (*check)->info.id != lock.id) {
        // Not (known to be) the lock we saw expire: a fresh one may have taken its place before the
        // move. Put it back and look again.
        put_back(*r, moved, name);
        continue;
      }
      out.took_over = true;
      out.holder = lock;
      out.holder->process_gone = gone;
    }
    const auto last = read(*r, name, claim.fleet);
    if (last && *last) {
      out.answer = (*last)->info.id == claim.id ? providers::LockAnswer::acquired : providers::LockAnswer::held;
      if (out.answer == providers::LockAnswer::held) out.holder = (*last)->info;
      return out;
    }
    return failed("the lock profile " + name + " could not be created: " + (last ? refused : last.error().message));
  }

  providers::HostLockResponse renew(const model::RemoteSpec& remote, const providers::HostLockClaim& claim) override {
    providers::HostLockResponse out;
    auto r = open(remote);
    if (!r) return failed(r.error().message);
    const std::string name = lock_profile(claim.fleet);
    auto found = read(*r, name, claim.fleet);
    if (!found) return failed(found.error().message);
    if (!*found || (*found)->info.id != claim.id) {
      out.answer = providers::LockAnswer::held;
      if (*found) out.holder = (*found)->info;
      return out;
    }
    auto body = profile_body(name, claim);
    body.erase("name");
    auto put = r->client.request(Method::put, target_of(name), body, {{"If-Match", (*found)->etag}});
    if (!put) return failed(r->error(put.error()).message);
    out.answer = providers::LockAnswer::acquired;
    return out;
  }

  std::string release(const model::RemoteSpec& remote, const providers::HostLockClaim& claim) override {
    auto r = open(remote);
    if (!r) return not_released(remote, r.error().message);
    const std::string name = lock_profile(claim.fleet);
    const std::string moved = moved_lock_profile(claim.fleet, claim.id);
    auto current = read(*r, name, claim.fleet);
    if (!current) return not_released(remote, current.error().message);
    if (!*current || (*current)->info.id != claim.id) return {};  // not ours (any more): nothing to give back
    // Moved before it is deleted: should a run take it over in between (it had expired), the move
    // takes their fresh lock, which is then put back; a delete would have removed it.
    auto renamed = r->client.request(Method::post, target_of(name), nlohmann::json{{"name", moved}});
    auto copy = read(*r, moved, claim.fleet);
    if (!copy) {
      if (renamed) put_back(*r, moved, name);
      return not_released(remote, copy.error().message);
    }
    if (!*copy) {
      if (renamed) return {};  // removed by someone else since
      auto still = read(*r, name, claim.fleet);
      if (still && (!*still || (*still)->info.id != claim.id)) return {};
      return not_released(remote, r->error(renamed.error()).message);
    }
    if ((*copy)->info.id != claim.id) {
      put_back(*r, moved, name);
      return {};
    }
    // Kept while it could still look expired to a slow run (ours never expired if renewed in time).
    const auto& expires = (*copy)->info.expires;
    if (expires && *expires > options_.now() + 10) (void)r->client.request(Method::delete_, target_of(moved));
    return {};
  }

  std::vector<providers::HostLockInfo> list(const model::RemoteSpec& remote, const std::string& fleet,
                                            std::string& error) override {
    auto r = open(remote);
    if (!r) {
      error = r.error().message;
      return {};
    }
    return list_on(*r, fleet, error);
  }

  std::string remove(const model::RemoteSpec& remote, const providers::HostLockInfo& lock) override {
    auto r = open(remote);
    if (!r) return r.error().message;
    auto deleted = r->client.request(Method::delete_, target_of(lock.object));
    if (!deleted && !(deleted.error().kind == ErrorKind::server && deleted.error().http_status == 404)) {
      return r->error(deleted.error()).message;
    }
    auto after = r->client.get(target_of(lock.object));
    if (after) return "remote " + remote.name + ": the profile " + lock.object + " is still there after its removal";
    if (after.error().kind == ErrorKind::server && after.error().http_status == 404) return {};
    return "remote " + remote.name + ": whether " + lock.object + " was removed is not known (" +
           r->error(after.error()).message + ")";
  }

 private:
  static providers::HostLockResponse failed(std::string error) {
    providers::HostLockResponse out;
    out.answer = providers::LockAnswer::failed;
    out.error = std::move(error);
    return out;
  }

  static std::string not_released(const model::RemoteSpec& remote, const std::string& why) {
    return "the lock on " + remote.name + " may not have been released (" + why +
           "); it expires by itself, or: berth force-unlock --hosts";
  }

  // Gives a lock moved to `moved` its name back; tried twice, as another run's lock depends on it.
  static void put_back(RemoteHandle& r, const std::string& moved, const std::string& name) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto back = r.client.request(Method::post, target_of(moved), nlohmann::json{{"name", name}});
      if (back || (back.error().kind == ErrorKind::server && back.error().http_status == 404)) return;
    }
  }

  Result<RemoteHandle> open(const model::RemoteSpec& remote) const {
    auto r = open_remote(config_, remote, options_.timeouts);
    if (r) r->client.set_project(std::string{model::default_project});  // one lock per host, whatever the project
    return r;
  }

  nlohmann::json profile_body(const std::string& name, const providers::HostLockClaim& claim) const {
    const auto now = options_.now();
    const auto expires = now + claim.ttl.count();
    return {
        {"name", name},
        {"description", "berth: the lock of fleet " + claim.fleet + " on this host (" + claim.holder + ", until " +
                            util::rfc3339_utc(std::chrono::system_clock::time_point{std::chrono::seconds{expires}}) +
                            "); never use it for instances; `berth force-unlock --hosts` clears it"},
        {"config",
         {{key_fleet, claim.fleet},
          {key_id, claim.id},
          {key_holder, claim.holder},
          {key_since, util::rfc3339_utc(std::chrono::system_clock::time_point{std::chrono::seconds{now}})},
          {key_expires, std::to_string(expires)},
          {key_machine, options_.machine},
          {key_process, options_.process}}},
        {"devices", nlohmann::json::object()}};
  }

  // The profile `name`, or nullopt when there is none.
  static Result<std::optional<Found>> read(RemoteHandle& r, const std::string& name, const std::string& fleet) {
    auto got = r.client.get(target_of(name));
    if (!got) {
      if (got.error().kind == ErrorKind::server && got.error().http_status == 404) return std::optional<Found>{};
      return r.error(got.error());
    }
    return std::optional<Found>{Found{info_of(r.name(), name, got->metadata, fleet), got->etag()}};
  }

  // The fleet's lock and the copies takeovers moved aside, on the host r is connected to.
  static std::vector<providers::HostLockInfo> list_on(RemoteHandle& r, const std::string& fleet, std::string& error) {
    std::vector<providers::HostLockInfo> out;
    auto all = r.client.get("/1.0/profiles?recursion=1");
    if (!all) {
      error = r.error(all.error()).message;
      return out;
    }
    if (!all->metadata.is_array()) {
      error = "remote " + r.name() + ": GET /1.0/profiles?recursion=1 did not answer a list";
      return out;
    }
    for (const auto& p : all->metadata) {
      if (!p.is_object() || !p.contains("name") || !p["name"].is_string()) {
        error = "remote " + r.name() + ": GET /1.0/profiles?recursion=1 answered an entry that is not a profile";
        return {};
      }
      const auto profile_name = p["name"].get<std::string>();
      const auto config = p.value("config", nlohmann::json::object());
      const bool ours = config.is_object() && config.value(key_fleet, nlohmann::json{}) == fleet;
      if (ours || profile_name == lock_profile(fleet)) out.push_back(info_of(r.name(), profile_name, p, fleet));
    }
    return out;
  }

  // Copies moved aside by takeovers, ten minutes after they expired. Best effort: the lock is ours.
  void forget_old_moved(RemoteHandle& r, const std::string& fleet) {
    std::string error;
    for (const auto& lock : list_on(r, fleet, error)) {
      if (!lock.taken_over || !lock.expires || *lock.expires + moved_kept_seconds > options_.now()) continue;
      (void)r.client.request(Method::delete_, target_of(lock.object));
    }
  }

  ClientConfig config_;
  HostLockerOptions options_;
};

}  // namespace

std::unique_ptr<providers::HostLocker> make_host_locker(ClientConfig config, HostLockerOptions options) {
  return std::make_unique<LxdHostLocker>(std::move(config), std::move(options));
}

}  // namespace berth::lxd
