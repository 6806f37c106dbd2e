#pragma once
// Small file helpers for the client config dir (internal to providers/lxd).
// Every write is atomic (temp file in the same dir, fsync, rename), so a crash or a concurrent
// reader never sees half a remotes.json or half a key.

#include <sys/types.h>
#include <filesystem>
#include <string>
#include <string_view>

#include "providers/lxd/result.hpp"

namespace berth::lxd::detail {

[[nodiscard]] Result<std::string> read_file(const std::filesystem::path& path);

// Writes `content` to `path` with permission `mode` (applied before any byte is written, so a
// private key is never readable by others, not even briefly).
[[nodiscard]] Result<void> write_file_atomic(const std::filesystem::path& path, std::string_view content, mode_t mode);

// Creates `dir` (and parents) if missing; a directory this creates gets mode 0700.
[[nodiscard]] Result<void> ensure_private_dir(const std::filesystem::path& dir);

}  // namespace berth::lxd::detail
