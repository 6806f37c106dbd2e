#pragma once
// berthd's storage pool: where instance root filesystems and their snapshots live, laid out as
// LXD lays out a pool:
//   POOL/containers/NAME                 an instance's volume (its rootfs is NAME/rootfs)
//   POOL/containers-snapshots/NAME/SNAP  its snapshots
// The driver is "btrfs" when POOL is on btrfs (volumes are subvolumes, snapshots read-only
// subvolume snapshots, copies are snapshots), else "dir" (plain directories; a snapshot or a copy
// is a full copy keeping owners, modes, xattrs, hardlinks, device nodes and times).
//
//   POOL/deleted/ENTRY                   what was deleted, until the pool's reaper removed it
//   POOL/migration/ENTRY                 what a btrfs migration sends or receives, while it runs
// A delete moves the volume and its snapshots aside in one rename each and returns: a thread of
// the pool's own removes them (a large volume takes seconds to remove, and nobody needs to wait
// for it); what a stop or a crash left there is removed after the next open.
//
// Thread and ownership contract: the pool owns the directory tree below POOL and keeps no state
// in memory but its path, its driver and the reaper, so concurrent calls are safe as long as no
// two of them touch the same instance; berthd serialises work per instance (one operation at a
// time). Failures are values saying what and where; a failed call leaves no half-made volume or
// snapshot behind.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "providers/lxd/result.hpp"

namespace berth::daemon {

using lxd::Result;

class StoragePool {
 public:
  // Opens the pool at `path`, creating it and its layout when missing, and starts its reaper.
  [[nodiscard]] static Result<std::unique_ptr<StoragePool>> open(std::string name, std::filesystem::path path);
  // Stops the reaper (a removal under way stops at its next file).
  ~StoragePool();
  StoragePool(const StoragePool&) = delete;
  StoragePool& operator=(const StoragePool&) = delete;

  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const std::string& driver() const { return driver_; }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

  [[nodiscard]] std::filesystem::path volume_path(const std::string& instance) const;
  [[nodiscard]] std::filesystem::path snapshot_path(const std::string& instance, const std::string& snap) const;

  // An empty volume, mode 0711 (so an unprivileged container's root can reach NAME/rootfs).
  // ErrorKind::conflict when it exists.
  [[nodiscard]] Result<void> create_volume(const std::string& instance);
  // The volume and all its snapshots, gone from their places when this returns (their space comes
  // back once the reaper removed them). ErrorKind::not_found when there is no volume.
  [[nodiscard]] Result<void> delete_volume(const std::string& instance);
  // Snapshots follow. ErrorKind::conflict when `to` exists.
  [[nodiscard]] Result<void> rename_volume(const std::string& from, const std::string& to);

  [[nodiscard]] Result<void> create_snapshot(const std::string& instance, const std::string& snap);
  [[nodiscard]] Result<void> delete_snapshot(const std::string& instance, const std::string& snap);
  [[nodiscard]] Result<void> rename_snapshot(const std::string& instance, const std::string& from,
                                             const std::string& to);
  // The volume's content becomes the snapshot's; the old content is gone once this succeeds and
  // untouched when it fails.
  [[nodiscard]] Result<void> restore_snapshot(const std::string& instance, const std::string& snap);
  // A new volume `to` with `from`'s content (no snapshots), in this pool.
  [[nodiscard]] Result<void> copy_volume(const std::string& from, const std::string& to);
  // A new volume `to` with the content of `instance`'s snapshot `snap`.
  [[nodiscard]] Result<void> copy_snapshot_to_volume(const std::string& instance, const std::string& snap,
                                                     const std::string& to);

  // `instance`'s snapshot `snap` as snapshot `snap` of volume `to` (which must exist): what a copy
  // of an instance with its snapshots makes. ErrorKind::conflict when that snapshot exists.
  [[nodiscard]] Result<void> copy_snapshot(const std::string& instance, const std::string& snap, const std::string& to);

  // ---- btrfs send/receive (migration; btrfs pools only) ----
  // A subvolume's identity: its UUID, the UUID of the stream it was received from (empty when it
  // was made here), and its read-only flag. What a peer knows it as is received_uuid when set
  // (btrfs send names it so), else uuid.
  struct SubvolumeInfo {
    std::string uuid;
    std::string received_uuid;
    std::uint64_t stransid = 0;
    bool readonly = false;
    [[nodiscard]] const std::string& identity() const { return received_uuid.empty() ? uuid : received_uuid; }
  };
  [[nodiscard]] Result<SubvolumeInfo> subvolume_info(const std::filesystem::path& subvolume) const;
  // Whether the volume holds subvolumes of its own, which btrfs send leaves out.
  [[nodiscard]] Result<bool> has_nested_subvolumes(const std::string& instance) const;
  // A directory of its own under POOL/migration/, for what a migration receives or sends; it and
  // what it holds are deleted when the handle goes (and after a crash, at the next open).
  class Staging {
   public:
    Staging(StoragePool& pool, std::filesystem::path path) : pool_(&pool), path_(std::move(path)) {}
    ~Staging();
    Staging(Staging&& other) noexcept : pool_(std::exchange(other.pool_, nullptr)), path_(std::move(other.path_)) {}
    Staging(const Staging&) = delete;
    Staging& operator=(const Staging&) = delete;
    Staging& operator=(Staging&&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }

   private:
    StoragePool* pool_;
    std::filesystem::path path_;
  };
  [[nodiscard]] Result<Staging> staging();
  // A read-only snapshot of the volume at `to` (in a staging directory): what btrfs send reads of
  // a volume that may be in use.
  [[nodiscard]] Result<void> readonly_copy(const std::string& instance, const std::filesystem::path& to) const;
  // What btrfs receive made for one volume or snapshot: its subvolume (read-only, as btrfs
  // receive leaves it) and those that were nested in it on the source, each with where it was
  // ("/var/lib/docker"), a parent before what it holds. berthd's volumes hold no nested
  // subvolume: their content is copied into the places btrfs send left empty, as plain
  // directories (what an rsync transfer would make of them).
  struct Received {
    std::filesystem::path subvolume;
    std::vector<std::pair<std::string, std::filesystem::path>> nested;
  };
  // It becomes `instance`'s snapshot `snap`, read-only and keeping its received UUID (what the
  // next incremental stream names as its parent); conflict when that snapshot exists.
  [[nodiscard]] Result<void> adopt_snapshot(const std::string& instance, const std::string& snap,
                                            const Received& received);
  // It becomes the volume (none may exist), writable and no longer marked received (it will change).
  [[nodiscard]] Result<void> adopt_volume(const std::string& instance, const Received& received);

  // At start: finishes or undoes a restore_snapshot that a crash cut short, so that each volume
  // holds either its old content or the snapshot's, never neither. Says what it did, one line each.
  [[nodiscard]] std::vector<std::string> recover_restores();

  // Waits until the reaper has removed everything deleted so far (tests; a stop does not wait).
  void wait_for_reaper() const;

  // Sorted names.
  [[nodiscard]] std::vector<std::string> volumes() const;
  [[nodiscard]] std::vector<std::string> snapshots(const std::string& instance) const;

  // Bytes the volume occupies on disk (allocated blocks, hardlinks counted once), best effort:
  // shared btrfs extents are counted for every volume that references them.
  [[nodiscard]] Result<std::uint64_t> usage(const std::string& instance) const;

 private:
  StoragePool(std::string name, std::filesystem::path path, std::string driver);
  [[nodiscard]] bool btrfs() const { return driver_ == "btrfs"; }
  [[nodiscard]] std::filesystem::path snapshots_dir(const std::string& instance) const;
  // `src` (a volume or snapshot) as `instance`'s snapshot `snap` (read-only on btrfs); conflict
  // when that snapshot exists.
  [[nodiscard]] Result<void> snapshot_into(const std::filesystem::path& src, const std::string& instance,
                                           const std::string& snap);
  // A writable copy of `src` (a volume or snapshot) at `dst`, which must not exist.
  [[nodiscard]] Result<void> clone(const std::filesystem::path& src, const std::filesystem::path& dst) const;
  // Removes a volume or snapshot (a subvolume on btrfs), or a tree holding them; when `stop` is
  // given and becomes true, stops at the next entry (an error saying so).
  [[nodiscard]] Result<void> remove(const std::filesystem::path& p, const std::atomic<bool>* stop = nullptr) const;
  // The same for the entry `name` of the directory `dir` (a descriptor, or AT_FDCWD with a path);
  // `shown` is its path, for errors and for btrfs.
  [[nodiscard]] Result<void> remove_at(int dir, const std::string& name, const std::filesystem::path& shown,
                                       const std::atomic<bool>* stop) const;
  // Moves the volumes or snapshot directories `paths` into one new entry under POOL/deleted (in
  // order, as "0", "1", ...) and wakes the reaper. On failure what moved stays moved (it is
  // deleted either way) and what did not stays in place.
  [[nodiscard]] Result<void> discard(const std::vector<std::filesystem::path>& paths);
  [[nodiscard]] std::string where(const std::string& what) const;
  // Copies each nested subvolume's content into its place under `root` (writable by now).
  [[nodiscard]] Result<void> flatten(const std::filesystem::path& root, const Received& received) const;

  class Reaper;

  std::string name_;
  std::filesystem::path path_;
  std::string driver_;
  std::unique_ptr<Reaper> reaper_;
};

// The dir driver's copy, exposed for tests and for other parts that copy trees (migration):
// `dst` must not exist; owners, modes (setuid included), xattrs (ACLs, file capabilities),
// hardlinks within the tree, symlinks, device nodes, fifos and times are kept.
[[nodiscard]] Result<void> copy_tree(const std::filesystem::path& src, const std::filesystem::path& dst);

}  // namespace berth::daemon
