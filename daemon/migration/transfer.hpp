#pragma once
// One rsync session over a migration's fs channel (lxd-protocol.md §4.4 b, c): the local rsync,
// run with LXD's argument lists, talks to the peer's through the websocket. Whatever rsync writes
// goes out as binary frames and an empty text frame (the barrier) when it stops writing; what
// arrives is fed to rsync until the peer's barrier. A session ends when the local rsync exited
// and both barriers passed, so that the next session on the same channel starts clean.
//
// The sender is rsync's client end: it reaches the receiver through a remote shell, `HELPER
// netcat 3` (daemon/migration/netcat.hpp), which hands its stdin and stdout (the two sockets rsync
// made for it: rsync on Linux talks to its remote shell over socketpairs) to berthd over a socket
// berthd gave it as fd 3, and exits. The receiver is rsync's server end, with a socket as its
// stdin and stdout.
//
// Blocking; each call runs on the caller's thread plus two of its own while rsync runs.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "daemon/migration/protocol.hpp"
#include "http/channel.hpp"

namespace berth::daemon::migration {

struct Session {
  // The executable that answers "netcat FD" (berthd-helper, or berthd itself).
  std::filesystem::path netcat;
  // What the errors name: the volume, as LXD names it ("c1", "c1/snap0").
  std::string name;
  // Told the bytes that went from sender to receiver so far (the sender counts what it sent, the
  // receiver what it received), at most every few hundred milliseconds and once at the end.
  std::function<void(std::uint64_t bytes)> progress;
  // Set by another thread to end the session at once: rsync is killed, the call fails.
  const std::atomic<bool>* cancelled = nullptr;
  // Called once, when the local rsync's output has ended (it read all it sends) and before this
  // side's end-of-stream goes to the peer, which the peer waits for before it reports success: a
  // frozen source is thawed here, so that it runs again before the client hears the copy is done.
  std::function<void()> local_done;
};

// Sends the content of `dir` (a volume or snapshot directory, sent as "dir/").
[[nodiscard]] Result<void> send_tree(const std::filesystem::path& dir, const RsyncFeatures& features,
                                     http::MessageChannel& fs, const Session& session);
// Receives into `dir` (which exists).
[[nodiscard]] Result<void> receive_tree(const std::filesystem::path& dir, const RsyncFeatures& features,
                                        http::MessageChannel& fs, const Session& session);

// Whether this host's rsync is at least 3.1.3 (asked once: `rsync --version`).
[[nodiscard]] bool local_rsync_at_least_3_1_3();
// Whether it negotiates checksums and compression (3.2.0 and later): the offer says so, and a
// receiver agreed to negotiate uses it only then.
[[nodiscard]] bool local_rsync_negotiates();

// "c1: 12.34MB (1.23MB/s)", as LXD writes fs_progress (units of 1000, two decimals).
[[nodiscard]] std::string progress_text(const std::string& name, std::uint64_t bytes, std::uint64_t bytes_per_second);

}  // namespace berth::daemon::migration
