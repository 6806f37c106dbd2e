#pragma once
// Re-owning a container's files for another id map: a copy or move between a privileged and an
// unprivileged container, or to a container with another map. Every entry under the root (the root
// included, symlinks themselves, never followed) gets its owner read through `from` (host id ->
// container id) and written through `to` (container id -> host id).
//
// Thread contract: none of its own; the caller makes sure nothing else writes the tree meanwhile
// (the container is stopped).

#include <cstdint>
#include <filesystem>

#include "daemon/instances/idmap.hpp"

namespace berth::daemon {

struct ShiftStats {
  std::uint64_t entries = 0;   // entries visited
  std::uint64_t unmapped = 0;  // entries left as they were: an owner `from` or `to` does not cover
};

// lchown of every entry; setuid/setgid bits survive (chown clears them, so they are put back);
// POSIX ACL xattrs (system.posix_acl_access/default) have their named users and groups shifted the
// same way, best effort (a filesystem without ACLs is fine). File capabilities are not rewritten.
// An empty map stands for the identity (a privileged container's view).
[[nodiscard]] Result<ShiftStats> shift_tree(const std::filesystem::path& root, const Idmap& from, const Idmap& to);

}  // namespace berth::daemon
