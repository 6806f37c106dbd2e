#pragma once
// What the liblxc driver and exec share inside berthd_lxc: posix_spawn's
// attribute objects, liblxc container handles, waitpid. Not for use outside daemon/instances.

#include <lxc/lxccontainer.h>
#include <spawn.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "daemon/instances/unique_fd.hpp"
#include "providers/lxd/result.hpp"

namespace berth::daemon {

// posix_spawn's attribute objects, destroyed however the spawning function returns.
struct SpawnActions {
  posix_spawn_file_actions_t value{};
  SpawnActions() { posix_spawn_file_actions_init(&value); }
  ~SpawnActions() { posix_spawn_file_actions_destroy(&value); }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
};
struct SpawnAttr {
  posix_spawnattr_t value{};
  SpawnAttr() { posix_spawnattr_init(&value); }
  ~SpawnAttr() { posix_spawnattr_destroy(&value); }
  SpawnAttr(const SpawnAttr&) = delete;
  SpawnAttr& operator=(const SpawnAttr&) = delete;
};

// A helper's spawn attributes: a process group of its own, no signal blocked, every signal at
// its default. 0, or the posix_spawnattr error.
[[nodiscard]] int set_helper_attributes(SpawnAttr& attr);

struct ContainerPut {
  void operator()(lxc_container* c) const { lxc_container_put(c); }
};
using ContainerPtr = std::unique_ptr<lxc_container, ContainerPut>;

// The container as liblxc sees it (it need not be defined).
[[nodiscard]] lxd::Result<ContainerPtr> open_container(const std::filesystem::path& lxcpath, const std::string& name);
// The same, ErrorKind::not_found unless LXCPATH/NAME/config defines it (a valid name only).
[[nodiscard]] lxd::Result<ContainerPtr> open_defined(const std::filesystem::path& lxcpath, const std::string& name);

[[nodiscard]] std::string errno_text(int err);

// waitpid that survives signals; the status, or nullopt on an error other than EINTR.
[[nodiscard]] std::optional<int> wait_child(pid_t pid, int flags, bool& exited);

}  // namespace berth::daemon
