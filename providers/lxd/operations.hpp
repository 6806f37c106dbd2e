#pragma once
// Waiting for LXD background operations (lxd-protocol.md §1.3), the way a client without an events
// websocket does it: `GET /1.0/operations/<id>/wait?timeout=N` in a loop. Between two waits the
// caller's cancel flag is checked and the operation's progress metadata is reported.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "providers/lxd/client.hpp"
#include "providers/lxd/result.hpp"
#include "providers/lxd/wire.hpp"

namespace berth::lxd {

using OperationStatus = wire::Operation;

// "/1.0/operations/<uuid>" (or a full URL ending so) -> "<uuid>".
[[nodiscard]] std::string operation_id(std::string_view operation_path);

// One progress reading, from metadata such as
//   fs_progress:  "c1: 123.45MB (12.34MB/s)"
//   download_progress / create_instance_from_image_unpack_progress: "rootfs: 45% (5.21MB/s)"
// Sizes use LXD's decimal units (shared/units GetByteSizeString: B, kB, MB, GB, ... of 1000).
struct ProgressReading {
  std::string text;  // "<key>: <value>", as LXD wrote it
  std::optional<std::uint64_t> bytes;
  std::optional<double> bytes_per_second;
  std::optional<int> percent;
};

// "12.34MB" -> 12340000; nullopt if it is not a size.
[[nodiscard]] std::optional<double> parse_byte_size(std::string_view text);
// One progress string, e.g. "c1: 123.45MB (12.34MB/s)".
[[nodiscard]] ProgressReading parse_progress_text(std::string_view text);
// The first progress key found in an operation's metadata, if any.
[[nodiscard]] std::optional<ProgressReading> progress_from_metadata(const nlohmann::json& metadata);

struct WaitOptions {
  std::string what;              // "creating c1": prefixes errors
  std::chrono::seconds poll{2};  // each /wait call's server-side timeout
  // Give up when the operation neither finishes nor reports new progress for this long: LXD 5.0
  // can leave a task Running forever (seen with concurrent snapshots of one running container).
  std::chrono::seconds stall_timeout{600};
  const std::atomic<bool>* cancel = nullptr;  // checked between waits
  std::function<void(const ProgressReading&)> on_progress;
  // Also called between waits (e.g. to read a migration source's progress); may be empty.
  std::function<void()> on_tick;
};

// Waits until the operation is final. Success -> its final state. A failed or cancelled operation
// becomes ErrorKind::server with "<what>: <err>". If cancel is set, returns a cancelled() error at
// once; the operation itself is left running (the caller decides whether to cancel it).
[[nodiscard]] Result<OperationStatus> wait_operation(Client& client, std::string_view operation_path,
                                                     const WaitOptions& options);

// The error wait_operation returns when the caller's cancel flag was set.
[[nodiscard]] Error cancelled_error(std::string_view what);
[[nodiscard]] bool is_cancelled(const Error& e);

}  // namespace berth::lxd
