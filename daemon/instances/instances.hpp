#pragma once
// berthd's instances: what the /1.0/instances API does, over the database (what is declared),
// the storage pool (the volumes), the image store (what a volume is made from) and the liblxc
// driver (what runs). Each change is one multi-step job that undoes its earlier steps when a
// later one fails, so a failed create leaves no volume, config or record behind.
//
// The instance document (Database, DocumentKind::instance) holds LXD's stored fields:
// architecture, config (with volatile.*), devices, ephemeral, stateful, description, profiles,
// created_at, last_used_at. A snapshot's (key "NAME/SNAP") holds the same plus expires_at.
// Status is never stored: it is liblxc's, read when asked.
//
// Thread contract: any thread may call. Changes to one instance are serialised by a lock per
// name (they run as task operations, on workers); reads take no instance lock.

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/db/database.hpp"
#include "daemon/images/image_pull.hpp"
#include "daemon/images/image_store.hpp"
#include "daemon/instances/exec.hpp"
#include "daemon/instances/idmap.hpp"
#include "daemon/instances/lxc_driver.hpp"
#include "daemon/instances/rootfs_files.hpp"
#include "daemon/storage/pool.hpp"

namespace berth::daemon {

// The shapes an instance's or a profile's body holds, read as the API reads them: an object of
// strings (config, one device), the devices (an object of such objects), a list of strings
// (profiles). null is empty; a value of another type is an invalid_argument naming it (`what`).
lxd::Result<std::map<std::string, std::string>> read_string_map(const nlohmann::json& j, const std::string& what);
lxd::Result<std::map<std::string, std::map<std::string, std::string>>> read_devices(const nlohmann::json& j);
lxd::Result<std::vector<std::string>> read_string_list(const nlohmann::json& j, const std::string& what);

// What POST /1.0/instances asks for, checked (Instances::check_create) before the 202.
struct CreateRequest {
  std::string name;
  std::string description;
  bool ephemeral = false;
  std::vector<std::string> profiles;
  std::map<std::string, std::string> config;
  std::map<std::string, std::map<std::string, std::string>> devices;
  // From an image: its fingerprint, or (`pull`) the other server to fetch it from first, which
  // sets `image`. From a copy: the source instance and, for a snapshot, its name.
  std::string image;
  std::optional<PullSource> pull;
  std::string copy_of;
  std::string copy_snapshot;
  bool instance_only = false;
  // From a migration (source type "migration"). Mode "pull": this host dials the source's
  // operation with its channels' secrets, pinned to the certificate the source must present. Mode
  // "push" (`push`): the source, or a client relaying for it, connects to this host's operation
  // instead, and none of the three is given. `image` is then the base image (source.base-image),
  // which pre-fills the volume when this host holds it. `refresh`: an instance of that name that
  // exists here is brought up to date instead of created (lxc copy --refresh).
  struct Migration {
    bool push = false;
    std::string operation;  // https://HOST:PORT/1.0/operations/ID
    std::map<std::string, std::string> secrets;
    std::string certificate;  // PEM
    bool live = false;
    bool instance_only = false;
    bool refresh = false;
  };
  std::optional<Migration> migration;
};

// PUT /1.0/instances/NAME/state.
struct StateChange {
  std::string action;  // start, stop, restart, freeze, unfreeze
  int timeout = -1;    // seconds for a clean stop; -1: as long as it takes
  bool force = false;
};

// An instance as a migration sends it (Instances::send): its volume and snapshots as they are on
// disk, under the instance's lock for as long as the transfer runs.
struct Outgoing {
  struct Snapshot {
    std::string name;
    nlohmann::json doc;  // its stored document (config, devices, profiles, times, ...)
    std::filesystem::path path;
  };
  std::string architecture;
  std::filesystem::path volume;
  bool running = false;
  // How the files are owned on disk: volatile.last_state.idmap ("[]": as the container sees them).
  std::string disk_idmap;
  std::vector<Snapshot> snapshots;  // oldest first; none when instance_only
  // Freezes (true) or thaws a running container, for a consistent last pass.
  std::function<Result<void>(bool frozen)> freeze;
};

// An instance a migration brings here (Instances::receive).
struct Arrival {
  // name, config (the client's, volatile.* as it sent them), devices, profiles, description,
  // ephemeral; `image` the base image to pre-fill the volume from when this host holds it.
  CreateRequest request;
  std::string architecture;
  // How the files arrive owned (the source's disk map, as JSON); "[]": as the container sees them.
  std::string disk_idmap;
  // Oldest first, each with its document's fields (config, devices, profiles, ephemeral, stateful,
  // description, created_at, last_used_at, expires_at).
  std::vector<std::pair<std::string, nlohmann::json>> snapshots;
  // What btrfs receive made (StoragePool::Staging): one per snapshot, in order, then the volume.
  // Empty: the volume is written in place (`fill`).
  std::vector<StoragePool::Received> received;
};

class Instances {
 public:
  Instances(Database& db, StoragePool& pool, LxcDriver& driver, ImageStore& images, Idmap idmap,
            std::string architecture);

  // ---- reads: the LXD objects (lxd-protocol.md §5.1, §3.4) ----
  [[nodiscard]] Result<std::vector<std::string>> names() const;
  // Instance, or InstanceFull (with state, snapshots, backups) when `full`.
  [[nodiscard]] Result<nlohmann::json> render(const std::string& name, bool full) const;
  // Every instance (by name) as render() makes it, for a list: one read of all the instances and
  // one of all the profiles, and without `full` one look at the statuses (LxcDriver::statuses).
  [[nodiscard]] Result<std::vector<std::pair<std::string, nlohmann::json>>> render_all(bool full) const;
  // render_all(false) as the JSON text of an array, for GET /1.0/instances?recursion=1: the
  // objects' text is kept while no document changes (Database::generation), and only the
  // statuses are looked at anew. Each object's "status" and "status_code" come first.
  [[nodiscard]] Result<std::string> render_all_text() const;
  // InstanceState; `disk_usage` walks the rootfs for disk.root.usage (one instance's state only).
  [[nodiscard]] Result<nlohmann::json> render_state(const std::string& name, bool disk_usage = true) const;
  [[nodiscard]] Result<std::vector<std::string>> snapshot_names(const std::string& name) const;
  [[nodiscard]] Result<nlohmann::json> render_snapshot(const std::string& name, const std::string& snap) const;
  // The instance's writable part as stored (for ETag and If-Match).
  [[nodiscard]] Result<nlohmann::json> writable(const std::string& name) const;

  // ---- checks made before an operation starts (so the client gets a 400/404/409 at once) ----
  // 409 when the instance exists, unless the body asks for a refresh (a migration source with
  // refresh: true, lxc copy --refresh).
  [[nodiscard]] Result<CreateRequest> check_create(const nlohmann::json& body) const;
  [[nodiscard]] Result<StateChange> check_state_change(const std::string& name, const nlohmann::json& body) const;

  // ---- changes: each runs on a worker, under the instance's lock ----
  [[nodiscard]] Result<void> create(const CreateRequest& request);
  [[nodiscard]] Result<void> change_state(const std::string& name, const StateChange& change);
  // PUT (whole writable part) or PATCH (merge); a running container's limits change live.
  [[nodiscard]] Result<void> update(const std::string& name, const nlohmann::json& body, bool patch);
  [[nodiscard]] Result<void> rename(const std::string& from, const std::string& to);
  [[nodiscard]] Result<void> remove(const std::string& name);
  // `expires`: when it is deleted (housekeep), as LXD prunes expired snapshots; none: never.
  [[nodiscard]] Result<void> create_snapshot(const std::string& name, const std::string& snap,
                                             std::optional<std::chrono::system_clock::time_point> expires = {});
  [[nodiscard]] Result<void> remove_snapshot(const std::string& name, const std::string& snap);
  [[nodiscard]] Result<void> rename_snapshot(const std::string& name, const std::string& from, const std::string& to);
  // The instance becomes the snapshot (volume, config, devices); a running one is stopped first
  // and started again after.
  [[nodiscard]] Result<void> restore(const std::string& name, const std::string& snap);

  // An image from the instance (which must be stopped) or from one of its snapshots, as `lxc
  // publish` makes it: its volume packed with the owners mapped back to the image's ids and a
  // metadata.yaml whose properties `properties` replaces when given (LXD's instance Export). The
  // image's files are in the store; its record is the caller's.
  [[nodiscard]] Result<StoredImage> publish(const std::string& name, const std::string& snapshot,
                                            const std::optional<std::map<std::string, std::string>>& properties);

  // ---- migration (daemon/api/migration_api.hpp) ----
  // Calls `transfer` with what the instance is made of, holding its lock throughout (no other
  // change to it runs meanwhile); `transfer`'s outcome. With `snapshot`, what goes is that
  // snapshot, as an instance of its own (stopped, without snapshots).
  [[nodiscard]] Result<void> send(const std::string& name, const std::string& snapshot, bool instance_only,
                                  const std::function<Result<void>(const Outgoing&)>& transfer);
  // Makes the instance `arrival` names from what `fill` writes: fill(volume, i) for each snapshot
  // i in order (the volume then becomes that snapshot), then fill(volume, snapshots.size()) for
  // the instance itself. It is journalled like a create: a failure, or a crash of berthd, leaves
  // no volume, snapshot, config or record behind.
  [[nodiscard]] Result<void> receive(
      const Arrival& arrival, const std::function<Result<void>(const std::filesystem::path&, std::size_t)>& fill);
  // Brings the existing instance `arrival` names up to date (lxc copy --refresh): `fill` writes
  // each arriving snapshot into the volume, which then becomes that snapshot, as receive() does,
  // then the volume; its files are then owned as arrival.disk_idmap says, which its config records. Its own config is
  // left to the client (lxc sends a PUT after). A failure removes the snapshots it made; the volume keeps what rsync
  // wrote (each file whole, old or new: a second refresh finishes it).
  [[nodiscard]] Result<void> refresh(
      const Arrival& arrival, const std::function<Result<void>(const std::filesystem::path&, std::size_t)>& fill);
  // Whether an instance of that name can arrive: 409 when one exists, 404 for an unknown profile.
  [[nodiscard]] Result<void> check_arrival(const std::string& name, const std::vector<std::string>& profiles) const;

  // ---- commands in a running container ----
  // Whether `name` can run a command now: 404 unknown, 400 not running or frozen (as LXD says).
  [[nodiscard]] Result<void> check_exec(const std::string& name) const;
  // Starts the command with LXD's default environment added (the instance's environment.*,
  // PATH, HOME, USER, LANG); an interactive one gets a pty owned by the container's root.
  [[nodiscard]] Result<std::unique_ptr<ExecProcess>> exec(const std::string& name, ExecRequest request) const;
  // Where the instance's logs are: liblxc's log (served as lxc.log) and recorded exec output.
  [[nodiscard]] std::filesystem::path log_dir(const std::string& name) const;
  [[nodiscard]] std::filesystem::path lxc_log(const std::string& name) const;

  // ---- files in the instance's root filesystem (lxc file pull/push/delete), running or not ----
  // Owners are the container's ids, mapped through the map its files are shifted to.
  [[nodiscard]] Result<RootfsEntry> read_file(const std::string& name, const std::string& path,
                                              std::uintmax_t max_size) const;
  [[nodiscard]] Result<void> write_file(const std::string& name, const std::string& path, const RootfsWrite& what);
  [[nodiscard]] Result<void> delete_file(const std::string& name, const std::string& path);

  // ---- what berthd does by itself ----
  // Once at start, before the API serves: what a crash left half-made goes (lxd-protocol.md has
  // no such thing; LXD leaves it). A create or snapshot whose journal entry (DocumentKind::pending)
  // is still there never stored its record: its volume, snapshot and liblxc config are removed.
  // An interrupted restore is finished or undone (StoragePool::recover_restores). A volume with
  // no record and a record with no volume are logged, not touched. Returns what it did, one line
  // per change, for the log.
  std::vector<std::string> recover();

  // (on the housekeeping thread)
  // Once at start: every stopped instance that should run is started, as LXD's instancesStart
  // decides: boot.autostart true, or unset and the last recorded power state RUNNING. A failure
  // is logged and the others are still started; a stop request ends it between two starts.
  void autostart(const std::stop_token& stop);
  // Called every few seconds: a container that stopped without berthd (poweroff inside it, or
  // lxc-stop) is recorded STOPPED, or deleted when ephemeral, once it has been seen so on two
  // calls in a row (a stop berthd is making is not mistaken for one); snapshots whose expires_at
  // is before `now` are deleted. Instances busy with a change are left for the next call.
  void housekeep(std::chrono::system_clock::time_point now);

  // A running container's cgroup figures for /1.0/metrics; nullopt unless it runs.
  [[nodiscard]] std::optional<ContainerUsage> usage(const std::string& name) const { return driver_.usage(name); }
  [[nodiscard]] const std::string& architecture() const { return architecture_; }

  // Running or frozen, as liblxc says.
  [[nodiscard]] bool active(const std::string& name) const;

  // The next free "snapN" for a snapshot without a name.
  [[nodiscard]] Result<std::string> next_snapshot_name(const std::string& name) const;

 private:
  // The arriving snapshots (written by `fill` and snapshotted, or adopted from what btrfs
  // received) and, for `fill`, the volume; their documents are added to `changes`.
  [[nodiscard]] Result<void> arrive_snapshots(
      const Arrival& arrival, const std::function<Result<void>(const std::filesystem::path&, std::size_t)>& fill,
      std::vector<DocumentChange>& changes);
  [[nodiscard]] Result<nlohmann::json> load(const std::string& name) const;
  [[nodiscard]] nlohmann::json writable_of(const nlohmann::json& doc) const;
  using Profiles = std::map<std::string, nlohmann::json>;  // profile name -> its stored document
  // The stored profiles `doc` names.
  [[nodiscard]] Result<Profiles> profiles_of(const nlohmann::json& doc) const;
  [[nodiscard]] Result<nlohmann::json> expanded(const nlohmann::json& doc, const char* field) const;
  // render's Instance from a loaded document, its profiles and its status.
  [[nodiscard]] nlohmann::json render_loaded(const std::string& name, const nlohmann::json& doc,
                                             const Profiles& profiles, const ContainerStatus& status) const;
  // What InstanceFull adds: state (without disk usage), snapshots, backups.
  [[nodiscard]] Result<void> add_full_parts(const std::string& name, const ContainerState& state,
                                            nlohmann::json& out) const;
  [[nodiscard]] Result<ContainerSpec> spec_of(const std::string& name, const nlohmann::json& doc) const;
  // The last steps of a create: liblxc's config from `doc`, then `changes` stored (the record);
  // the config goes again when storing fails.
  [[nodiscard]] Result<void> define_and_store(const std::string& name, const nlohmann::json& doc,
                                              const std::vector<DocumentChange>& changes);
  [[nodiscard]] Result<void> start_locked(const std::string& name);
  [[nodiscard]] Result<void> stop_locked(const std::string& name, int timeout, bool force);
  [[nodiscard]] Result<void> set_config_key(const std::string& name, const std::string& key, const std::string& value);
  [[nodiscard]] Result<std::string> resolve_image(const std::string& ref) const;
  // The rootfs and the id mappings (container to host, and back) its files are owned by now.
  struct RootfsView {
    std::filesystem::path root;
    IdMappings shift;
    IdMappings unshift;
  };
  [[nodiscard]] Result<RootfsView> rootfs_view(const std::string& name) const;
  [[nodiscard]] Result<void> remove_snapshot_locked(const std::string& name, const std::string& snap);
  // The journal entry recover() reads: `key` (an instance or "INSTANCE/SNAPSHOT") is being made.
  [[nodiscard]] Result<void> note_pending(const std::string& key, const std::string& action);
  [[nodiscard]] std::shared_ptr<std::mutex> mutex_of(const std::string& name);
  [[nodiscard]] std::unique_lock<std::mutex> lock(const std::string& name);
  [[nodiscard]] std::unique_lock<std::mutex> try_lock(const std::string& name);

  Database& db_;
  StoragePool& pool_;
  LxcDriver& driver_;
  ImageStore& images_;
  Idmap idmap_;
  std::string architecture_;

  std::mutex locks_mu_;
  std::map<std::string, std::shared_ptr<std::mutex>> locks_;

  std::set<std::string> seen_stopped_;  // housekeep's: stopped without berthd at its last call

  // render_all_text's: each instance's rendered text without its status, as of `generation`.
  struct RenderedList {
    std::uint64_t generation = 0;
    std::vector<std::string> names;
    std::vector<std::string> members;  // an object's text after its "{": `"architecture":...}`
  };
  mutable std::mutex rendered_mu_;
  mutable std::shared_ptr<const RenderedList> rendered_;
};

}  // namespace berth::daemon
