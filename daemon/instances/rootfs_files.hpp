#pragma once
// Files inside a container's root filesystem, as /1.0/instances/NAME/files reads and writes them
// (lxc file pull/push/delete). Every path is resolved with openat2(RESOLVE_IN_ROOT): "..", and
// absolute symlinks anywhere in it, stay inside the root, as they would inside the container.
// Owners are the container's ids; the caller's IdShift maps them to and from the host's.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "providers/lxd/result.hpp"

namespace berth::daemon {

// An id in the container to the host's (shift) or back (unshift); nullopt: outside the map.
using IdMapping = std::function<std::optional<std::int64_t>(std::int64_t)>;
struct IdMappings {
  IdMapping uid;
  IdMapping gid;
};

struct RootfsEntry {
  std::string type;      // "file", "directory" or "symlink"
  std::int64_t uid = 0;  // the container's ids (-1 when the host's id is outside the map)
  std::int64_t gid = 0;
  unsigned mode = 0;                 // permission bits
  std::int64_t modified = 0;         // unix seconds
  std::string content;               // a file's bytes, or a symlink's target
  std::vector<std::string> entries;  // a directory's names, sorted
};

// What to write: LXD's X-LXD-type (file, directory, symlink), X-LXD-write (overwrite, append),
// X-LXD-uid/gid/mode (-1: not given). Owner and mode apply to what is made, not to what exists.
struct RootfsWrite {
  std::string type = "file";
  std::string write = "overwrite";
  std::int64_t uid = -1;
  std::int64_t gid = -1;
  int mode = -1;
  std::string content;  // a file's bytes, or a symlink's target
};

// `path` is as seen inside the container; a relative one is from its / (lxc sends "root/f1"). A file larger than
// `max_size` is refused; so are devices, fifos and sockets. ErrorKind::not_found when there is nothing at `path`.
[[nodiscard]] lxd::Result<RootfsEntry> read_in_root(const std::filesystem::path& root, const std::string& path,
                                                    const IdMappings& unshift, std::uintmax_t max_size);
[[nodiscard]] lxd::Result<void> write_in_root(const std::filesystem::path& root, const std::string& path,
                                              const RootfsWrite& what, const IdMappings& shift);
// A file, a symlink or an empty directory.
[[nodiscard]] lxd::Result<void> remove_in_root(const std::filesystem::path& root, const std::string& path);

}  // namespace berth::daemon
