#pragma once
// What travels on the fs channel around btrfs streams (LXD 5.0.2, lxd/storage/drivers/
// driver_btrfs_volumes.go and driver_btrfs_utils.go), as data; pure, no I/O:
//
// - the header (btrfsFeatures.migration_header): before the streams, the source sends the JSON
//   {"subvolumes":[{"path":"/","snapshot":"s1","readonly":true,"uuid":"..."}, ...]}: each
//   snapshot's subvolume, oldest first, then the volume's (snapshot ""), as one stream;
// - in a refresh (header_subvolume_uuids), the sink answers with the same shape, keeping only the
//   subvolumes it lacks: those whose UUID is not the received UUID of its snapshot of that name
//   (LXD's sink; berthd's takes a refresh by rsync);
// - then one btrfs send stream per subvolume, in the header's order: each snapshot incremental
//   against the one before it, the volume against the last snapshot.
// A volume's nested subvolumes (header_subvolumes) are entries of its snapshot name with another
// path ("/var/lib/docker"), each with a stream of its own after the volume's. berthd takes them
// (their content becomes plain directories) but never sends them: a volume that holds some goes
// by rsync.

#include <string>
#include <string_view>
#include <vector>

#include "providers/lxd/result.hpp"

namespace berth::daemon::migration {

using lxd::Result;

struct BtrfsSubvolume {
  std::string path = "/";  // where in the volume: "/" is the volume itself
  std::string snapshot;    // the snapshot it belongs to; "" for the volume
  bool readonly = false;
  std::string uuid;  // the identity a sink compares with its received UUIDs

  friend bool operator==(const BtrfsSubvolume&, const BtrfsSubvolume&) = default;
};

[[nodiscard]] std::string encode_btrfs_header(const std::vector<BtrfsSubvolume>& subvolumes);
// invalid_argument (saying what) for anything but such a document, for a path that is not "/"
// or "/a/b" (no empty, "." or ".." part) and for a subvolume named twice.
[[nodiscard]] Result<std::vector<BtrfsSubvolume>> decode_btrfs_header(std::string_view json);

// One btrfs send of the source: `snapshot` ("" for the volume), incremental against the snapshot
// `parent` ("" for a whole stream).
struct BtrfsSendStep {
  std::string snapshot;
  std::string parent;

  friend bool operator==(const BtrfsSendStep&, const BtrfsSendStep&) = default;
};
// The source's streams: the snapshots `sent` (in this order, a subsequence of `all`, oldest
// first) and then the volume. The first snapshot sent is incremental against the one before it
// in `all` when the sink has that one (a refresh: it kept every snapshot it did not ask for);
// each next one against the one sent before it; the volume against the last snapshot sent or, in
// a refresh where none is, the newest the sink has.
[[nodiscard]] std::vector<BtrfsSendStep> btrfs_send_plan(const std::vector<std::string>& all,
                                                         const std::vector<std::string>& sent, bool refresh);

}  // namespace berth::daemon::migration
