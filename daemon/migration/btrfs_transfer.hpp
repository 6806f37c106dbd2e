#pragma once
// btrfs streams over a migration's fs channel (docs/migration.md; LXD 5.0.2's
// driver_btrfs_utils.go sendSubvolume and receiveSubVolume): `btrfs send`'s output goes out as
// binary frames and then an empty text frame (the barrier); on the other side what arrives until
// the barrier is `btrfs receive`'s input. Unlike an rsync session, nothing goes back. The JSON
// headers around the streams (btrfs_header.hpp) travel the same way.
//
// Blocking, on the caller's thread.

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>

#include "daemon/migration/transfer.hpp"
#include "http/channel.hpp"

namespace berth::daemon::migration {

// Sends the read-only subvolume `subvolume` as one stream, incremental against the read-only
// subvolume `parent` (which the receiver has) unless that is empty.
[[nodiscard]] Result<void> send_subvolume(const std::filesystem::path& subvolume, const std::filesystem::path& parent,
                                          http::MessageChannel& fs, const Session& session);
// Receives one stream into `dir` (an empty directory on the btrfs filesystem that holds the
// parent, if the stream has one); the subvolume it made there (read-only, as btrfs receive leaves
// it, with the stream's UUID as its received UUID).
[[nodiscard]] Result<std::filesystem::path> receive_subvolume(const std::filesystem::path& dir,
                                                              http::MessageChannel& fs, const Session& session);

// A document (a header) as one stream, and the other side's, of at most `limit` bytes, waited
// for at most `timeout`.
[[nodiscard]] Result<void> send_document(const std::string& text, http::MessageChannel& fs);
[[nodiscard]] Result<std::string> receive_document(http::MessageChannel& fs, std::size_t limit,
                                                   std::chrono::steady_clock::duration timeout);

}  // namespace berth::daemon::migration
