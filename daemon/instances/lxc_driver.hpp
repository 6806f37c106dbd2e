#pragma once
// berthd's container driver: turns an instance (name, rootfs, id map, config, devices) into a
// liblxc container and drives its life cycle: define, start, stop, freeze, live limits, state,
// rename, remove. The lxc.* keys it writes follow LXD 5.0.2's initLXC (driver_lxc.go) for the
// config keys berthd supports; validate_instance_config and validate_devices say which those are.
//
// Layout: LXCPATH/NAME/config (rewritten by define, so every start applies the current spec) and
// LXCPATH/NAME/NAME.log (liblxc's log, named in every start failure). Rootfs and its volume belong
// to the storage pool; the driver never deletes them (remove drops only LXCPATH/NAME).
//
// Thread and ownership contract: the driver holds LXCPATH, its options and (for statuses()) a
// handle per active container under a mutex; every other call opens its own lxc_container and puts
// it before returning, so any thread may call. Calls on the same
// container must be serialised by the caller (berthd runs one operation per instance at a time). A
// started container is daemonized (its monitor is re-parented to init, with our file descriptors
// closed): it keeps running when berthd exits and running() finds it again after a restart.
//
// How a start runs: liblxc's daemonized start forks the calling process and keeps running liblxc
// code in the child without exec, which is unsafe from a multithreaded process (the child inherits
// malloc's and other locks in whatever state other threads left them). So with a start helper
// configured (LxcDriverOptions::start_helper, berthd's own executable) start() spawns
// "HELPER forkstart LXCPATH NAME" (see forkstart_main) with posix_spawn: a fresh single-threaded
// process that does liblxc's start, with only PATH in its environment, stdin on /dev/null, stdout
// and stderr on a pipe for the failure message, and no other file descriptor. berthd hands over
// berthd-helper for this when it sits next to berthd, and its own executable otherwise (both answer
// forkstart and forkexec; DaemonOptions::start_helper, from /proc/self/exe). The container's monitor
// is a fork of the helper and keeps what it had touched: from berthd-helper (liblxc and libc only)
// a monitor is ~3 MB, from berthd ~4.5 MB.
//
// Without a helper (unit tests, tools) start() calls liblxc in the calling process, which is for
// single-threaded callers only. We keep that fallback rather than require the helper so the driver
// stays usable where there is no berthd executable; a multithreaded caller must set the helper.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "daemon/instances/idmap.hpp"

struct lxc_container;

namespace berth::daemon {

struct ContainerSpec {
  std::string name;
  std::filesystem::path rootfs;  // the volume's rootfs directory, owned by the map's root
  bool privileged = false;       // must agree with config["security.privileged"] when that is set
  Idmap idmap;                   // ignored when privileged; required otherwise
  std::map<std::string, std::string> config;
  std::map<std::string, std::map<std::string, std::string>> devices;
};

// Instance config berthd honours: limits.memory ("256MB", "1GiB", "50%"), limits.cpu ("2": that
// many cpus; "0-1,3": those cpus), limits.processes, security.privileged, security.nesting,
// boot.autostart (Instances::autostart), user.*, environment.*, image.*, volatile.*. Anything else, or a
// value of the wrong form, is ErrorKind::invalid_argument naming the key. An empty value is unset.
[[nodiscard]] Result<void> validate_instance_config(const std::map<std::string, std::string>& config);
// Devices: disk {path, source (unless path is "/"), readonly, pool} and nic {nictype: bridged,
// parent, name, hwaddr}; ErrorKind::invalid_argument naming the device and key otherwise.
[[nodiscard]] Result<void> validate_devices(const std::map<std::string, std::map<std::string, std::string>>& devices);
// LXD's rule for instance names (a hostname label): 1-63 of [A-Za-z0-9-], not starting with a
// digit or '-', not ending with '-'.
[[nodiscard]] Result<void> validate_instance_name(const std::string& name);

// LXD's truth values: true/1/yes/on (any case).
[[nodiscard]] bool config_true(const std::map<std::string, std::string>& config, const std::string& key);

// Live state; status and status_code as lxd-protocol.md §1.4 maps liblxc's states.
struct ContainerState {
  std::string status = "Stopped";
  int status_code = 102;
  std::int64_t pid = -1;
  std::int64_t processes = 0;
  std::int64_t memory_usage = 0;  // bytes
  std::int64_t cpu_usage_ns = 0;
};

// What a list of instances shows of the live state: ContainerState's status and status_code.
struct ContainerStatus {
  std::string status = "Stopped";
  int status_code = 102;
};

// What /1.0/metrics reports of a running container, from its cgroup, as LXD's Metrics reads it.
struct ContainerUsage {
  struct Cpu {
    int cpu = 0;  // cgroup v2 has no per-cpu figures: one entry, cpu 0
    std::int64_t user_ns = 0;
    std::int64_t system_ns = 0;
  };
  std::vector<Cpu> cpus;
  // memory.stat in LXD's names (Active_anon, Active_file, Active, Inactive_anon, Inactive_file,
  // Inactive, Unevictable, Writeback, Dirty, Mapped, RSS, Shmem, Cached), bytes.
  std::map<std::string, std::int64_t> memory;
  std::int64_t memory_usage = 0;
  std::int64_t memory_limit = 0;  // the limit, or the host's memory when there is none
  std::optional<std::int64_t> swap_usage;
  std::int64_t processes = 0;
};

// What the host offers that decides how limits are written; probed once per driver.
struct HostFacts {
  enum class CgroupVersion { v1, v2 };
  CgroupVersion memory = CgroupVersion::v2;
  CgroupVersion cpuset = CgroupVersion::v2;
  CgroupVersion pids = CgroupVersion::v2;
  CgroupVersion cpu = CgroupVersion::v2;  // cpu accounting: cpuacct (v1) or cpu.stat (v2)
  std::uint64_t memory_total = 0;         // bytes, for "N%" memory limits
  std::vector<int> online_cpus;           // for "N" cpu limits: the first N of these
  bool apparmor = false;

  [[nodiscard]] static HostFacts probe();
};

// One cgroup file setting, as liblxc's set_cgroup_item and lxc.cgroup[2].FILE take it.
struct CgroupSetting {
  std::string key;  // e.g. "memory.limit_in_bytes" (v1) or "memory.max" (v2)
  std::string value;
  HostFacts::CgroupVersion version = HostFacts::CgroupVersion::v2;
};
// The cgroup settings limits.* call for (the config must be valid). With `reset_unset`, keys that
// are unset come back as their "no limit" values, so a live change can lift a limit.
[[nodiscard]] std::vector<CgroupSetting> limit_settings(const std::map<std::string, std::string>& config,
                                                        const HostFacts& host, bool reset_unset);

// The liblxc config for a spec, in order (later keys override what the includes set).
[[nodiscard]] Result<std::vector<std::pair<std::string, std::string>>> lxc_config_items(
    const ContainerSpec& spec, const HostFacts& host, const std::filesystem::path& lxcpath);

struct LxcDriverOptions {
  // The executable start() runs as "start_helper forkstart LXCPATH NAME" (berthd sets
  // berthd-helper, or its own executable). Empty: start in the calling process (single-threaded callers only).
  std::filesystem::path start_helper;
  // How long the helper may take (liblxc's own wait for RUNNING is 30 s); then it is killed and
  // start() is ErrorKind::timeout.
  std::chrono::seconds start_helper_timeout{60};
};

// The start helper's body, for "berthd forkstart LXCPATH NAME": in a fresh process, loads
// LXCPATH/NAME/config, starts the container daemonized and returns once it is RUNNING. Returns the
// process exit status: 0 running; otherwise liblxc's reason is on stderr and the status is one of
// the forkstart_exit values. Touches nothing but LXCPATH/NAME (no berthd directory, database or
// socket); closes every inherited descriptor above stderr first.
[[nodiscard]] int forkstart_main(const std::string& lxcpath, const std::string& name);
namespace forkstart_exit {
inline constexpr int failed = 1;    // liblxc could not start it (its log says why)
inline constexpr int usage = 2;     // bad arguments, or not defined under LXCPATH
inline constexpr int timeout = 3;   // started but not RUNNING in time
inline constexpr int conflict = 4;  // already running
}  // namespace forkstart_exit

class LxcDriver {
 public:
  explicit LxcDriver(std::filesystem::path lxcpath);
  LxcDriver(std::filesystem::path lxcpath, HostFacts host);
  LxcDriver(std::filesystem::path lxcpath, LxcDriverOptions options);
  LxcDriver(std::filesystem::path lxcpath, HostFacts host, LxcDriverOptions options);

  [[nodiscard]] const std::filesystem::path& lxcpath() const { return lxcpath_; }
  // The helper executable (berthd-helper or berthd) that runs forkstart and forkexec ("" when none).
  [[nodiscard]] const std::filesystem::path& helper() const { return options_.start_helper; }
  [[nodiscard]] std::filesystem::path log_path(const std::string& name) const;

  // Writes LXCPATH/NAME/config from the spec (validated first).
  [[nodiscard]] Result<void> define(const ContainerSpec& spec);
  // define, then a daemonized start (through the start helper when one is configured); returns
  // once liblxc reports RUNNING. A failure quotes liblxc's last errors (and what the helper said)
  // and names the log. ErrorKind::conflict when it is already running; ErrorKind::timeout when it
  // is not RUNNING in time or the helper overran its timeout (then the helper is killed and the
  // container, if liblxc got it going, is killed too).
  [[nodiscard]] Result<void> start(const ContainerSpec& spec);
  // As LXD: with `force` or a zero timeout the container is killed at once; otherwise init gets
  // the halt signal (SIGPWR) and `timeout_seconds` to stop (-1: wait as long as it takes), and
  // ErrorKind::timeout when it does not (nothing is killed: the caller may retry with force).
  // ErrorKind::conflict when it is not running, not_found when it is not defined.
  [[nodiscard]] Result<void> stop(const std::string& name, int timeout_seconds, bool force);
  [[nodiscard]] Result<void> freeze(const std::string& name);
  [[nodiscard]] Result<void> unfreeze(const std::string& name);
  // Stopped (102) when not defined.
  [[nodiscard]] ContainerState state(const std::string& name) const;
  // state()'s status alone, without its cgroup reads.
  [[nodiscard]] ContainerStatus status(const std::string& name) const;
  // The status of each of `names`, for a list, cheaply: one look at which containers under LXCPATH
  // have a monitor (those without one are Stopped, as liblxc would say), then liblxc's state() for
  // those only, on a handle kept while the container is active (see handles_).
  [[nodiscard]] std::map<std::string, ContainerStatus> statuses(const std::vector<std::string>& names) const;
  // nullopt unless the container runs.
  [[nodiscard]] std::optional<ContainerUsage> usage(const std::string& name) const;
  // A descriptor of the running container's devpts mount, from its monitor (liblxc's devpts_fd),
  // for a pty of its own; -1 when there is none. The caller closes it.
  [[nodiscard]] int devpts_fd(const std::string& name) const;
  // Sets limits.* on a running container's cgroups; unset keys lift their limit.
  [[nodiscard]] Result<void> apply_limits(const std::string& name, const std::map<std::string, std::string>& config);
  // Drops LXCPATH/NAME; the container must be stopped. Not liblxc's destroy: that would delete the
  // rootfs, which belongs to the storage pool.
  [[nodiscard]] Result<void> remove(const std::string& name);
  // Moves LXCPATH/FROM to LXCPATH/TO (stopped only); the next define/start writes the new name
  // into the config.
  [[nodiscard]] Result<void> rename(const std::string& from, const std::string& to);
  // Names of the containers under LXCPATH that are running (liblxc's list_active_containers).
  [[nodiscard]] std::vector<std::string> running() const;

 private:
  [[nodiscard]] Result<void> start_in_process(const std::string& name, const std::filesystem::path& log);
  [[nodiscard]] Result<void> start_with_helper(const std::string& name, const std::filesystem::path& log);

  std::filesystem::path lxcpath_;
  HostFacts host_;
  LxcDriverOptions options_;
  std::string helper_path_env_;  // "PATH=..." for the helper, taken once at construction

  // A liblxc handle per active container, for statuses(): opening one parses the config (and
  // costs a few mmaps), which made a list of 50 instances take ~50 ms. state() asks the monitor by
  // name and LXCPATH only, so a handle whose config is older than the file still answers right;
  // define, remove and rename drop the name's handle all the same, and statuses() drops those of
  // containers no longer active. Guarded by handles_mu_; a handle is used outside the lock through
  // its own shared_ptr copy.
  void forget_handle(const std::string& name) const;
  mutable std::mutex handles_mu_;
  mutable std::map<std::string, std::shared_ptr<lxc_container>> handles_;
};

}  // namespace berth::daemon
