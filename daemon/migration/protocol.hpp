#pragma once
// The control channel of LXD 5.0.2's instance migration as data (lxd-protocol.md §4.3-§4.5): the
// MigrationHeader each side sends, what the two sides agree from it, the final MigrationControl,
// and the rsync command lines of the fs channel (§4.4 c). Pure: no I/O; the protobuf encoding
// (daemon/migration/migrate.proto) stays inside protocol.cpp.
//
// berthd moves containers with rsync, or with btrfs send/receive when both pools are btrfs
// (docs/migration.md), never live (no CRIU), and without the index header (it offers and
// answers version 0, which LXD honours in both directions).

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/instances/idmap.hpp"
#include "providers/lxd/result.hpp"

namespace berth::daemon::migration {

using lxd::Result;

// MigrationFSType, by LXD's numbers.
enum class FsType : int { rsync = 0, btrfs = 1, zfs = 2, rbd = 3, block_and_rsync = 4 };
// CRIUType, by LXD's numbers. A stopped container's offer has none; a running one moved without
// its memory (stateless) says `none`, and the source then syncs the volume a second time.
enum class Criu : int { rsync = 0, phaul = 1, none = 2 };

struct RsyncFeatures {
  bool xattrs = false;
  bool delete_files = false;  // --delete
  bool compress = false;
  bool bidirectional = false;  // no flag: marks a peer newer than LXD 3.7
  // berthd's extension (rsyncFeatures field 1000; LXD ignores it and never sends it): in an offer,
  // the source's rsync negotiates checksums and compression (3.2.0 and later); agreed, the
  // receiver runs with the capability string such an rsync client sends (".iLsfxCIv") instead of
  // the one LXD hard-wires (".iLsfx", which holds both ends to MD5 whole-file checksums).
  bool negotiation = false;

  friend bool operator==(const RsyncFeatures&, const RsyncFeatures&) = default;
};
// LXD 5.0.2's default: all four.
inline constexpr RsyncFeatures lxd_rsync_features{true, true, true, true, false};
// What berthd offers and accepts: LXD's without compress, as an LXD pool with
// rsync.compression=false (LXD peers agree to it: each side keeps what both have). rsync's zlib,
// which LXD's fixed receiver options leave it with, holds incompressible data to about 30 MB/s
// per core here (bench/migrate: LXD to LXD), slower than the link between two hosts.
// `negotiation` is set in an offer only when the local rsync can (OfferInput).
inline constexpr RsyncFeatures berthd_rsync_features{true, true, false, true, true};

// btrfsFeatures, as LXD names them: the source sends a JSON header of the subvolumes before the
// streams (migration_header); the volume's nested subvolumes travel too (header_subvolumes); the
// header carries each subvolume's UUID, which a refresh compares (header_subvolume_uuids).
struct BtrfsFeatures {
  bool migration_header = false;
  bool header_subvolumes = false;
  bool header_subvolume_uuids = false;

  friend bool operator==(const BtrfsFeatures&, const BtrfsFeatures&) = default;
};
// What berthd offers and accepts: all three. It takes nested subvolumes (LXD would refuse to send
// a volume that holds some otherwise, and not fall back to rsync), but never sends any: a volume
// that holds some goes by rsync.
inline constexpr BtrfsFeatures berthd_btrfs_features{true, true, true};

// One snapshot as the header carries it: its own (not expanded) config, devices and profiles.
struct SnapshotInfo {
  std::string name;
  std::map<std::string, std::string> config;
  std::map<std::string, std::map<std::string, std::string>> devices;
  std::vector<std::string> profiles;
  bool ephemeral = false;
  bool stateful = false;
  std::string architecture;  // "x86_64"; LXD's numeric id on the wire
  // Unix seconds; none travels as Go's zero time (-62135596800) and reads back as none.
  std::optional<std::int64_t> created;
  std::optional<std::int64_t> last_used;
  std::optional<std::int64_t> expires;

  friend bool operator==(const SnapshotInfo&, const SnapshotInfo&) = default;
};

// A MigrationHeader, the fields berthd reads or writes.
struct Header {
  FsType fs = FsType::rsync;
  std::optional<Criu> criu;
  Idmap idmap;  // how the files are owned on the source's disk; empty: privileged or unshifted
  // Oldest first. A header whose names and snapshots differ in number (an old LXD) carries the
  // names only: each snapshot then has just its name here.
  std::vector<SnapshotInfo> snapshots;
  std::optional<RsyncFeatures> rsync_features;
  std::optional<BtrfsFeatures> btrfs_features;
  bool predump = false;
  bool refresh = false;
  std::uint32_t index_header_version = 0;

  friend bool operator==(const Header&, const Header&) = default;
};

// The bytes of one control-channel message (one binary websocket frame), every required field set.
[[nodiscard]] std::string encode_header(const Header& header);
// A header from a peer; invalid_argument (naming what is wrong) when the bytes are not a
// MigrationHeader with its required fields, or its id map has a negative id or an empty range. A
// snapshot's architecture number LXD does not know reads as "" (the instance's then applies).
[[nodiscard]] Result<Header> decode_header(std::string_view bytes);

struct Control {
  bool success = false;
  std::string message;  // why, when not a success
};
[[nodiscard]] std::string encode_control(const Control& control);
[[nodiscard]] Result<Control> decode_control(std::string_view bytes);

// The source's offer for a container: btrfs when its volume can go so (the rsync features as the
// fallback), else rsync, with berthd's features and no index header; `criu` none when it runs
// (moved stateless: an rsync transfer then syncs the volume a second time), unset when stopped;
// no snapshots when the request was instance-only.
struct OfferInput {
  bool running = false;
  // The local rsync negotiates (rsync_negotiates): the offer says so.
  bool rsync_negotiates = false;
  // The volume and its snapshots are btrfs subvolumes without nested ones.
  bool btrfs = false;
  Idmap idmap;
  std::vector<SnapshotInfo> snapshots;
};
[[nodiscard]] Header make_offer(const OfferInput& input);

// What both sides go by once the sink has answered.
struct Agreement {
  FsType fs = FsType::rsync;  // rsync or btrfs
  RsyncFeatures features;
  BtrfsFeatures btrfs;  // when fs is btrfs
  // The snapshots that travel, in this order (one rsync session or btrfs stream each), before the
  // volume. A btrfs refresh narrows them once more by UUID (btrfs_header.hpp).
  std::vector<SnapshotInfo> snapshots;
  // The volume travels twice: the source ran while it was sent (the offer's and answer's criu are
  // none) and it goes by rsync (a btrfs stream is of a read-only snapshot: once is enough).
  bool final_sync = false;
  // The sink brings an instance it has up to date (lxc copy --refresh).
  bool refresh = false;
};

// What the sink knows of itself.
struct SinkInput {
  bool live = false;   // its request asks for a live migration
  bool btrfs = false;  // it can take btrfs streams (a btrfs pool; for a refresh, a stopped instance)
  // A refresh of an instance it has: that instance's snapshots, oldest first, with their
  // creation times (Unix seconds). nullopt: a new instance.
  struct Local {
    std::string name;
    std::optional<std::int64_t> created;
  };
  std::optional<std::vector<Local>> refresh;
};

// The sink's answer to an offer (`response`), what it agrees to, and for a refresh its own
// snapshots that go first (`drop`: the source has none of that name, or one made at another time;
// as LXD's CompareSnapshots). The snapshots then asked for are the source's that the sink lacks
// after the drop. An offer it cannot take is an error saying why: a live migration (criu other
// than none: berthd has no CRIU), a VM's block volume, no rsync features where rsync is the only
// way left.
struct SinkAnswer {
  Header response;
  Agreement agreement;
  std::vector<std::string> drop;
};
[[nodiscard]] Result<SinkAnswer> answer_offer(const Header& offer, const SinkInput& input);

// The source's reading of the sink's answer to its offer.
[[nodiscard]] Result<Agreement> read_answer(const Header& offer, const Header& response);

// rsync's arguments (without "rsync" itself), as LXD's rsync.Send and rsync.Recv build them, for
// a volume directory. The sender is the client end and reaches the receiver through
// `remote_shell` (rsync's -e: a command whose stdin and stdout are the fs channel); the receiver
// runs as rsync's server end on the fs channel itself, with LXD's capability string unless `f`
// has `negotiation` (the caller clears it when the local rsync cannot). `rsync_3_1_3` says the
// local rsync is at least 3.1.3 (it then leaves security.selinux out of the xattrs, as LXD does).
[[nodiscard]] std::vector<std::string> rsync_send_args(const std::filesystem::path& volume, const RsyncFeatures& f,
                                                       bool rsync_3_1_3, const std::string& remote_shell);
[[nodiscard]] std::vector<std::string> rsync_receive_args(const std::filesystem::path& volume, const RsyncFeatures& f,
                                                          bool rsync_3_1_3);
// Whether `rsync --version`'s first line names a version at least 3.1.3.
[[nodiscard]] bool rsync_at_least_3_1_3(std::string_view version_text);
// Whether it names a version that negotiates checksums and compression: at least 3.2.0.
[[nodiscard]] bool rsync_negotiates(std::string_view version_text);

// LXD's architecture numbers (shared/osarch): "x86_64" is 2. nullopt for a name or number LXD
// does not know.
[[nodiscard]] std::optional<int> architecture_id(std::string_view name);
[[nodiscard]] std::optional<std::string> architecture_name(int id);

// Go's zero time in Unix seconds: what LXD sends for a snapshot time that is not set.
inline constexpr std::int64_t go_zero_time = -62135596800;

}  // namespace berth::daemon::migration
