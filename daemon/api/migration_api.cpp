#include "daemon/api/migration_api.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <optional>
#include <utility>

#include <spdlog/spdlog.h>

#include "daemon/api/response.hpp"
#include "daemon/migration/btrfs_header.hpp"
#include "daemon/migration/btrfs_transfer.hpp"
#include "daemon/migration/channel.hpp"
#include "daemon/migration/protocol.hpp"
#include "daemon/migration/transfer.hpp"
#include "engine/util/time.hpp"
#include "providers/lxd/certificate.hpp"
#include "providers/lxd/websocket.hpp"

namespace berth::daemon::api {

namespace mig = migration;
using lxd::ErrorKind;
using lxd::make_error;
using Clock = std::chrono::steady_clock;
using Kind = http::MessageChannel::Message::Kind;

// One migration's shared state: its channels (the source's, as the target connects them) and the
// flag that ends its transfer. Each channel is closed once however many steps close it
// (migration::closed_once): a second close handshake on a websocket would hang berthd's stop.
struct Migrations::Transfer {
  std::mutex mu;
  std::condition_variable connected;
  std::shared_ptr<http::MessageChannel> control;
  std::shared_ptr<http::MessageChannel> fs;
  std::atomic<bool> cancelled{false};
  std::string op_id;  // a target's task (known once it is queued)

  std::string operation() {
    const std::lock_guard lock(mu);
    return op_id;
  }
  void cancel() {
    cancelled = true;
    const std::lock_guard lock(mu);
    connected.notify_all();
  }
  void close_channels() {
    const std::lock_guard lock(mu);
    if (control) control->close();
    if (fs) fs->close();
  }
  // Ends the channels now (what is queued is dropped): a side blocked on a peer that stopped
  // reading returns.
  void abort_channels() {
    const std::lock_guard lock(mu);
    if (control) control->abort();
    if (fs) fs->abort();
  }
};

namespace {

constexpr auto connect_timeout = std::chrono::seconds{10};  // as LXD waits for its channels
constexpr auto answer_timeout = std::chrono::seconds{60};
// A btrfs migration header: a few hundred bytes per snapshot.
constexpr std::size_t header_limit = 16 * 1024 * 1024;
// The last word after the last byte: the target stores the instance before it answers.
constexpr auto outcome_timeout = std::chrono::minutes{10};
constexpr const char* live_refused =
    "Unable to perform container live migration. CRIU isn't installed on the source server "
    "(berthd moves containers stopped, or running with --stateless)";

nlohmann::json resources_of(const std::string& name) {
  return {{"instances", {"/1.0/instances/" + name}}, {"containers", {"/1.0/containers/" + name}}};
}

// The next control message, which must be binary (LXD: "Only binary messages allowed").
Result<std::string> receive_control(http::MessageChannel& control, Clock::duration timeout, const char* waiting_for) {
  auto m = control.receive(Clock::now() + timeout);
  switch (m.kind) {
    case Kind::binary: return std::move(m.data);
    case Kind::text:
      return make_error(ErrorKind::protocol,
                        std::string("the other side sent a text message while berthd waited for ") + waiting_for +
                            " (only binary messages are allowed)");
    case Kind::timeout: return make_error(ErrorKind::timeout, std::string("timed out waiting for ") + waiting_for);
    case Kind::closed: break;
  }
  return make_error(ErrorKind::connect,
                    std::string("the other side closed the connection while berthd waited for ") + waiting_for);
}

// A failure the other side explained on control before it closed, when there is one: it says
// more than the broken transfer it caused.
lxd::Error explained(http::MessageChannel& control, lxd::Error error) {
  auto m = control.receive(Clock::now() + std::chrono::seconds{1});
  if (m.kind != Kind::binary) return error;
  auto said = mig::decode_control(m.data);
  if (said && !said->success && !said->message.empty()) {
    error.message = "the other side failed: " + said->message;
  }
  return error;
}

std::optional<std::int64_t> unix_seconds(const nlohmann::json& doc, const char* key) {
  const auto text = doc.value(key, "");
  if (text.empty() || text.starts_with("0001-01-01")) return std::nullopt;
  const auto t = util::parse_rfc3339(text);
  if (!t) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count();
}

std::string time_text(const std::optional<std::int64_t>& seconds) {
  if (!seconds) return "0001-01-01T00:00:00Z";
  return util::rfc3339_utc(std::chrono::system_clock::time_point{std::chrono::seconds{*seconds}});
}

// A snapshot's stored document as the header carries it (lxd-protocol.md §4.3: local config and
// devices, times in Unix seconds).
mig::SnapshotInfo snapshot_info(const Outgoing::Snapshot& snap) {
  mig::SnapshotInfo info;
  info.name = snap.name;
  // Stored documents were checked when they were made: a part that does not read travels empty.
  if (auto config = read_string_map(snap.doc.value("config", nlohmann::json()), "config")) info.config = *config;
  if (auto devices = read_devices(snap.doc.value("devices", nlohmann::json()))) info.devices = *devices;
  if (auto profiles = read_string_list(snap.doc.value("profiles", nlohmann::json()), "profiles")) {
    info.profiles = *profiles;
  }
  info.ephemeral = snap.doc.value("ephemeral", false);
  info.stateful = snap.doc.value("stateful", false);
  info.architecture = snap.doc.value("architecture", "x86_64");
  info.created = unix_seconds(snap.doc, "created_at");
  info.last_used = unix_seconds(snap.doc, "last_used_at");
  info.expires = unix_seconds(snap.doc, "expires_at");
  return info;
}

// The document a snapshot that arrives is stored with; `instance` fills what an old source's
// header leaves out (a snapshot with its name only).
nlohmann::json snapshot_doc(const mig::SnapshotInfo& info, const CreateRequest& instance,
                            const std::string& architecture) {
  const bool bare = info.config.empty() && info.devices.empty() && info.profiles.empty();
  nlohmann::json config = bare ? nlohmann::json(instance.config) : nlohmann::json(info.config);
  if (!config.is_object()) config = nlohmann::json::object();
  return {{"architecture", info.architecture.empty() ? architecture : info.architecture},
          {"config", config},
          {"devices", bare ? nlohmann::json(instance.devices) : nlohmann::json(info.devices)},
          {"profiles", bare ? nlohmann::json(instance.profiles) : nlohmann::json(info.profiles)},
          {"ephemeral", info.ephemeral},
          {"stateful", false},
          {"description", ""},
          {"created_at", time_text(info.created)},
          {"last_used_at", time_text(info.last_used)},
          {"expires_at", time_text(info.expires)}};
}

// fs_progress, as LXD reports it: what has gone so far and the rate since the session began.
std::function<void(std::uint64_t)> progress_to(Operations& operations, std::function<std::string()> op_id,
                                               const std::string& name) {
  const auto began = Clock::now();
  return [&operations, op_id = std::move(op_id), name, began](std::uint64_t bytes) {
    const auto seconds = std::chrono::duration<double>(Clock::now() - began).count();
    const auto rate = seconds > 0 ? static_cast<std::uint64_t>(static_cast<double>(bytes) / seconds) : 0;
    operations.set_metadata(op_id(), "fs_progress", mig::progress_text(name, bytes, rate));
  };
}

}  // namespace

Migrations::Migrations(Instances& instances, StoragePool& pool, Operations& operations, OperationSockets& sockets,
                       std::filesystem::path netcat)
    : instances_(instances), pool_(pool), operations_(operations), sockets_(sockets), netcat_(std::move(netcat)) {}

std::shared_ptr<Migrations::Transfer> Migrations::track() {
  auto transfer = std::make_shared<Transfer>();
  const std::lock_guard lock(mu_);
  std::erase_if(transfers_, [](const std::weak_ptr<Transfer>& t) { return t.expired(); });
  transfers_.push_back(transfer);
  if (stopping_) transfer->cancelled = true;
  return transfer;
}

void Migrations::stop() {
  std::vector<std::thread> threads;
  {
    const std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& weak : transfers_) {
      if (auto t = weak.lock()) {
        t->cancel();
        t->abort_channels();
      }
    }
    for (auto& w : workers_) threads.push_back(std::move(w.thread));
    workers_.clear();
  }
  for (auto& t : threads) t.join();
}

void Migrations::spawn(const std::string& op_id, std::function<Result<void>()> work) {
  const std::lock_guard lock(mu_);
  if (stopping_) {
    operations_.finish(op_id, make_error(ErrorKind::io, "berthd is stopping"));
    return;
  }
  // The threads of transfers that ended are joined here, so that a long-running berthd keeps none.
  std::erase_if(workers_, [](Worker& w) {
    if (!*w.done) return false;
    w.thread.join();
    return true;
  });
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread thread([this, op_id, work = std::move(work), done] {
    auto outcome = work();
    operations_.finish(op_id, outcome ? Result<nlohmann::json>(nlohmann::json::object()) : outcome.error());
    *done = true;
  });
  workers_.push_back({std::move(thread), std::move(done)});
}

nlohmann::json Migrations::accept_channels(const std::string& description, const std::string& name,
                                           const std::shared_ptr<Transfer>& transfer) {
  const std::string control_secret = random_secret();
  const std::string fs_secret = random_secret();
  auto op = operations_.add_websocket(description, resources_of(name), {{"control", control_secret}, {"fs", fs_secret}},
                                      /*may_cancel=*/true);
  const std::string id = op.value("id", "");
  {
    const std::lock_guard lock(transfer->mu);
    transfer->op_id = id;
  }
  const auto accept = [transfer](std::shared_ptr<http::MessageChannel> Transfer::*slot) {
    return [transfer, slot](std::shared_ptr<http::WebSocket> ws) {
      const std::lock_guard lock(transfer->mu);
      (*transfer).*slot = mig::closed_once(http::channel_of(ws));
      transfer->connected.notify_all();
    };
  };
  sockets_.add(id, {{control_secret, accept(&Transfer::control)}, {fs_secret, accept(&Transfer::fs)}});
  // A DELETE of the operation (the client gave up) ends the transfer at once; so does its own end.
  operations_.when_finished(
      id,
      [transfer](const nlohmann::json& finished) {
        transfer->cancel();
        if (finished.value("status_code", 0) == 401) transfer->abort_channels();  // Cancelled
      },
      /*internal=*/true);
  return op;
}

Result<void> Migrations::await_channels(const std::shared_ptr<Transfer>& transfer) {
  std::unique_lock lock(transfer->mu);
  const bool all = transfer->connected.wait_for(
      lock, connect_timeout, [&] { return transfer->cancelled || (transfer->control && transfer->fs); });
  if (all && !transfer->cancelled) return {};
  lock.unlock();
  transfer->close_channels();
  if (transfer->cancelled) return make_error(ErrorKind::io, "The migration was cancelled");
  return make_error(ErrorKind::timeout, "Timed out waiting for migration connections");
}

Result<void> Migrations::dial_channels(const MigrationTarget& peer, const std::shared_ptr<Transfer>& transfer) {
  lxd::TlsOptions tls;
  if (auto fp = lxd::fingerprint_of_pem(peer.certificate)) tls.pinned_fingerprint = *fp;
  lxd::Timeouts timeouts;
  timeouts.connect = connect_timeout;
  const auto dial = [&](const char* channel) -> Result<std::shared_ptr<http::MessageChannel>> {
    auto ws = lxd::dial_websocket(peer.operation + "/websocket?secret=" + peer.secrets.at(channel), tls, timeouts);
    if (!ws) {
      auto e = ws.error();
      e.message = std::string("cannot connect to the other host's ") + channel + " channel: " + e.message;
      return e;
    }
    return mig::closed_once(std::move(*ws));
  };
  // In LXD's order: control, then fs.
  auto control = dial("control");
  if (!control) return control.error();
  {
    const std::lock_guard lock(transfer->mu);
    transfer->control = *control;
  }
  auto fs = dial("fs");
  if (!fs) {
    (*control)->send(mig::encode_control({false, fs.error().message}), false);
    transfer->close_channels();
    return fs.error();
  }
  const std::lock_guard lock(transfer->mu);
  transfer->fs = *fs;
  return {};
}

http::Response Migrations::source(const std::string& name, const std::string& snapshot,
                                  const MigrationSourceRequest& request) {
  if (auto found = instances_.writable(name); !found) return error_response(found.error());
  if (!snapshot.empty()) {
    if (auto found = instances_.render_snapshot(name, snapshot); !found) return error_response(found.error());
  }
  // lxc asks for a live migration of every running container unless --stateless.
  if (request.live && snapshot.empty() && instances_.active(name)) return error_response(400, live_refused);
  auto transfer = track();
  if (request.target) {
    // Push: the target's channels are dialled before the answer, as LXD does (the client learns
    // at once that this host cannot reach the target, and tries the target's next address).
    if (auto dialled = dial_channels(*request.target, transfer); !dialled) return error_response(dialled.error());
    auto op = operations_.add_task("Migrating instance", resources_of(name),
                                   [this, name, snapshot, request, transfer]() -> Result<nlohmann::json> {
                                     if (auto sent = send_instance(name, snapshot, request, transfer); !sent) {
                                       return sent.error();
                                     }
                                     return nlohmann::json::object();
                                   });
    {
      const std::lock_guard lock(transfer->mu);
      transfer->op_id = op.value("id", "");
    }
    return async_response(op);
  }
  auto op = accept_channels("Migrating instance", name, transfer);
  spawn(op.value("id", ""), [this, name, snapshot, request, transfer]() -> Result<void> {
    if (auto connected = await_channels(transfer); !connected) return connected.error();
    return send_instance(name, snapshot, request, transfer);
  });
  return async_response(op);
}

Result<void> Migrations::send_instance(const std::string& name, const std::string& snapshot,
                                       const MigrationSourceRequest& request,
                                       const std::shared_ptr<Transfer>& transfer) {
  std::shared_ptr<http::MessageChannel> control;
  std::shared_ptr<http::MessageChannel> fs;
  {
    const std::lock_guard lock(transfer->mu);
    control = transfer->control;
    fs = transfer->fs;
  }
  spdlog::info("migration: sending {} (operation {})", name, transfer->operation());
  auto sent = instances_.send(name, snapshot, request.instance_only, [&](const Outgoing& out) -> Result<void> {
    auto disk_map = idmap_from_json(out.disk_idmap);
    if (!disk_map) return disk_map.error();
    mig::OfferInput input;
    input.running = out.running;
    input.rsync_negotiates = mig::local_rsync_negotiates();
    input.idmap = *disk_map;
    // btrfs send/receive when the volume is all in one subvolume (one that holds others goes by
    // rsync, which sees their files); a snapshot sent as an instance is one.
    if (pool_.driver() == "btrfs") {
      auto nested = snapshot.empty() ? pool_.has_nested_subvolumes(name) : Result<bool>(false);
      if (!nested) spdlog::warn("migration: {} goes by rsync: {}", name, nested.error().message);
      input.btrfs = nested && !*nested;
    }
    for (const auto& snap : out.snapshots) input.snapshots.push_back(snapshot_info(snap));
    const auto offer = mig::make_offer(input);
    if (!control->send(mig::encode_header(offer), false)) {
      return make_error(ErrorKind::connect, "the target closed the connection before the offer");
    }
    auto answer_bytes = receive_control(*control, answer_timeout, "the target's answer to the offer");
    if (!answer_bytes) return answer_bytes.error();
    auto answer = mig::decode_header(*answer_bytes);
    if (!answer) return answer.error();
    auto agreed = mig::read_answer(offer, *answer);
    if (!agreed) return agreed.error();
    spdlog::info("migration: {} goes by {}", name, agreed->fs == mig::FsType::btrfs ? "btrfs send/receive" : "rsync");

    const auto session = [&](const std::string& what) {
      mig::Session s;
      s.netcat = netcat_;
      s.name = what;
      s.progress = progress_to(
          operations_, [transfer] { return transfer->operation(); }, what);
      s.cancelled = &transfer->cancelled;
      return s;
    };
    if (agreed->fs == mig::FsType::btrfs) {
      if (auto streamed = send_btrfs(name, out, *agreed, *fs, session); !streamed) {
        return explained(*control, streamed.error());
      }
    }
    for (const auto& snap : agreed->fs == mig::FsType::btrfs ? std::vector<mig::SnapshotInfo>{} : agreed->snapshots) {
      const auto it = std::find_if(out.snapshots.begin(), out.snapshots.end(),
                                   [&](const Outgoing::Snapshot& s) { return s.name == snap.name; });
      if (it == out.snapshots.end()) {
        return make_error(ErrorKind::protocol,
                          "the target asked for snapshot " + snap.name + ", which " + name + " does not have");
      }
      if (auto done = mig::send_tree(it->path, agreed->features, *fs, session(name + "/" + snap.name)); !done) {
        return explained(*control, done.error());
      }
    }
    if (agreed->fs == mig::FsType::rsync) {
      if (auto done = mig::send_tree(out.volume, agreed->features, *fs, session(name)); !done) {
        return explained(*control, done.error());
      }
    }
    if (agreed->final_sync) {
      // The container ran during the first pass: the last one sees it frozen, so the target gets
      // one consistent state.
      // It is thawed as soon as rsync read it all, before the target can hear the stream ended
      // and report success: a client told the copy is done finds the source running.
      bool frozen = out.running && static_cast<bool>(out.freeze(true));
      const auto thaw = [&] {
        if (!std::exchange(frozen, false)) return;
        if (auto thawed = out.freeze(false); !thawed) {
          spdlog::error("migration: cannot thaw {}: {}", name, thawed.error().message);
        }
      };
      auto last = session(name);
      last.local_done = thaw;
      auto done = mig::send_tree(out.volume, agreed->features, *fs, last);
      thaw();  // if rsync never started
      if (!done) return explained(*control, done.error());
    }
    auto outcome_bytes = receive_control(*control, outcome_timeout, "the target's outcome");
    if (!outcome_bytes) return outcome_bytes.error();
    auto outcome = mig::decode_control(*outcome_bytes);
    if (!outcome) return outcome.error();
    if (!outcome->success) return make_error(ErrorKind::io, "the target failed: " + outcome->message);
    return {};
  });
  if (!sent && !transfer->cancelled) {
    // Told to the target (which fails with it), as LXD's sendControl does.
    control->send(mig::encode_control({false, sent.error().message}), false);
    spdlog::warn("migration: sending {} failed: {}", name, sent.error().message);
  } else if (sent) {
    spdlog::info("migration: {} sent", name);
  }
  transfer->close_channels();
  if (transfer->cancelled && !sent) return make_error(ErrorKind::io, "The migration was cancelled");
  return sent;
}

http::Response Migrations::target(CreateRequest request, const nlohmann::json& body) {
  const auto& migration = *request.migration;
  if (migration.live) {
    return error_response(400,
                          "Live migration needs CRIU, which berthd lacks: copy or move the instance stopped, or "
                          "running with --stateless");
  }
  std::string architecture = body.contains("architecture") && body["architecture"].is_string()
                                 ? body["architecture"].get<std::string>()
                                 : std::string{};
  if (!architecture.empty()) {
    const auto id = mig::architecture_id(architecture);
    if (!id) return error_response(400, "Unknown architecture: " + architecture);
    architecture = *mig::architecture_name(*id);
  }
  if (migration.refresh && instances_.writable(request.name)) {
    // Its files are rewritten as they arrive, owned as the source's: a running container would see
    // them under the wrong owners until it restarts.
    if (instances_.active(request.name)) {
      return error_response(400, "Instance \"" + request.name +
                                     "\" is running: stop it before refreshing it (lxc stop), then copy again");
    }
  } else if (auto ok = instances_.check_arrival(request.name, request.profiles); !ok) {
    return error_response(ok.error());
  }
  if (!migration.push) {
    if (auto fp = lxd::fingerprint_of_pem(migration.certificate); !fp) {
      return error_response(400, "source.certificate is not a certificate: " + fp.error().message);
    }
  }
  auto transfer = track();
  const auto name = request.name;
  if (migration.push) {
    // Push: the source, or a client relaying for it, connects to this operation's channels.
    auto op = accept_channels("Creating instance", name, transfer);
    spawn(op.value("id", ""), [this, request = std::move(request), architecture, transfer]() -> Result<void> {
      if (auto connected = await_channels(transfer); !connected) return connected.error();
      return receive_instance(request, architecture, transfer);
    });
    return async_response(op);
  }
  auto op = operations_.add_task(
      "Creating instance", resources_of(name),
      [this, request = std::move(request), architecture, transfer]() -> Result<nlohmann::json> {
        const auto& m = *request.migration;
        if (auto dialled = dial_channels({m.operation, m.secrets, m.certificate}, transfer); !dialled) {
          return dialled.error();
        }
        if (auto done = receive_instance(request, architecture, transfer); !done) {
          return done.error();
        }
        return nlohmann::json::object();
      });
  {
    const std::lock_guard lock(transfer->mu);
    transfer->op_id = op.value("id", "");
  }
  return async_response(op);
}

Result<void> Migrations::receive_instance(const CreateRequest& request, const std::string& architecture,
                                          const std::shared_ptr<Transfer>& transfer) {
  const auto& migration = *request.migration;
  std::shared_ptr<http::MessageChannel> control;
  std::shared_ptr<http::MessageChannel> fs;
  {
    const std::lock_guard lock(transfer->mu);
    control = transfer->control;
    fs = transfer->fs;
  }
  const auto fail = [&](lxd::Error e, bool tell) -> Result<void> {
    if (tell) control->send(mig::encode_control({false, e.message}), false);
    transfer->close_channels();
    spdlog::warn("migration: receiving {} failed: {}", request.name, e.message);
    return e;
  };
  auto offer_bytes = receive_control(*control, answer_timeout, "the source's offer");
  if (!offer_bytes) return fail(offer_bytes.error(), false);
  auto offer = mig::decode_header(*offer_bytes);
  if (!offer) return fail(offer.error(), true);

  // A refresh of an instance this host has (else, as LXD, a plain copy).
  const bool refresh = migration.refresh && static_cast<bool>(instances_.writable(request.name));
  mig::SinkInput input;
  input.live = migration.live;
  // A refresh goes by rsync, which compares each file with what is here: only what changed since
  // the last copy crosses. A btrfs stream would be incremental against the newest snapshot both
  // have, and carry every change since that snapshot (all of the volume when there is none).
  input.btrfs = pool_.driver() == "btrfs" && !refresh;
  if (refresh) {
    auto local = local_snapshots(request.name);
    if (!local) return fail(local.error(), true);
    input.refresh = std::move(*local);
  }
  // An offer berthd cannot take closes the channels without a word, as LXD's sink does.
  auto answer = mig::answer_offer(*offer, input);
  if (!answer) return fail(answer.error(), false);
  for (const auto& snap : answer->drop) {
    if (auto dropped = instances_.remove_snapshot(request.name, snap); !dropped) return fail(dropped.error(), true);
  }
  if (!control->send(mig::encode_header(answer->response), false)) {
    return fail(make_error(ErrorKind::connect, "the source closed the connection before the answer"), false);
  }

  Arrival arrival;
  arrival.request = request;
  arrival.architecture = architecture;
  arrival.disk_idmap = idmap_to_json(offer->idmap);
  for (const auto& snap : answer->agreement.snapshots) {
    arrival.snapshots.emplace_back(snap.name, snapshot_doc(snap, request, architecture));
  }
  const auto& agreed = answer->agreement;
  const auto session = [&](const std::string& what) {
    mig::Session s;
    s.netcat = netcat_;
    s.name = what;
    s.progress = progress_to(
        operations_, [transfer] { return transfer->operation(); }, what);
    s.cancelled = &transfer->cancelled;
    return s;
  };
  spdlog::info("migration: {} {} ({}, by {})", refresh ? "refreshing" : "receiving", request.name,
               migration.push ? "pushed to operation " + transfer->operation() : "from " + migration.operation,
               agreed.fs == mig::FsType::btrfs ? "btrfs send/receive" : "rsync");
  std::optional<StoragePool::Staging> staging;
  if (agreed.fs == mig::FsType::btrfs) {
    auto made = pool_.staging();
    if (!made) return fail(made.error(), true);
    staging.emplace(std::move(*made));
    auto received = receive_btrfs(arrival, *offer, agreed, *staging, *fs, session);
    if (!received) return fail(explained(*control, received.error()), true);
    arrival.received = std::move(*received);
  }
  const auto fill = [&](const std::filesystem::path& volume, std::size_t i) -> Result<void> {
    const bool main = i == agreed.snapshots.size();
    const auto what = main ? request.name : request.name + "/" + agreed.snapshots[i].name;
    if (auto done = mig::receive_tree(volume, agreed.features, *fs, session(what)); !done) {
      return explained(*control, done.error());
    }
    if (main && agreed.final_sync) {
      if (auto done = mig::receive_tree(volume, agreed.features, *fs, session(what)); !done) {
        return explained(*control, done.error());
      }
    }
    return {};
  };
  auto received = refresh ? instances_.refresh(arrival, fill) : instances_.receive(arrival, fill);
  if (!received) return fail(received.error(), true);
  control->send(mig::encode_control({true, ""}), false);
  // The close frame follows the success message; its answer says both arrived.
  control->close();
  for (auto until = Clock::now() + std::chrono::seconds{5}; Clock::now() < until;) {
    const auto m = control->receive(until);
    if (m.kind == Kind::closed || m.kind == Kind::timeout) break;
  }
  transfer->close_channels();
  spdlog::info("migration: {} {}", request.name, refresh ? "refreshed" : "received");
  return {};
}

Result<std::vector<mig::SinkInput::Local>> Migrations::local_snapshots(const std::string& name) const {
  auto names = instances_.snapshot_names(name);
  if (!names) return names.error();
  std::vector<mig::SinkInput::Local> out;
  for (const auto& snap : *names) {
    auto doc = instances_.render_snapshot(name, snap);
    if (!doc) return doc.error();
    out.push_back({snap, unix_seconds(*doc, "created_at")});
  }
  return out;
}

Result<void> Migrations::send_btrfs(const std::string& name, const Outgoing& out, const mig::Agreement& agreed,
                                    http::MessageChannel& fs,
                                    const std::function<mig::Session(const std::string&)>& session) {
  // The header: each snapshot by the identity the sink knows it by, then the volume.
  std::vector<mig::BtrfsSubvolume> header;
  std::vector<std::string> all;
  for (const auto& snap : out.snapshots) {
    auto info = pool_.subvolume_info(snap.path);
    if (!info) return info.error();
    header.push_back({"/", snap.name, true, info->identity()});
    all.push_back(snap.name);
  }
  auto volume_info = pool_.subvolume_info(out.volume);
  if (!volume_info) return volume_info.error();
  header.push_back({"/", "", false, volume_info->identity()});
  if (agreed.btrfs.migration_header) {
    if (auto sent = mig::send_document(mig::encode_btrfs_header(header), fs); !sent) return sent;
  }
  std::vector<std::string> sent_names;
  for (const auto& s : agreed.snapshots) sent_names.push_back(s.name);
  if (agreed.refresh && agreed.btrfs.header_subvolume_uuids) {
    // The sink names the subvolumes it lacks.
    auto text = mig::receive_document(fs, header_limit, answer_timeout);
    if (!text) return text.error();
    auto wanted = mig::decode_btrfs_header(*text);
    if (!wanted) return wanted.error();
    sent_names.clear();
    for (const auto& w : *wanted) {
      if (w.snapshot.empty()) continue;
      if (std::find(all.begin(), all.end(), w.snapshot) == all.end()) {
        return make_error(ErrorKind::protocol,
                          "the target asks for snapshot " + w.snapshot + ", which " + name + " does not have");
      }
      sent_names.push_back(w.snapshot);
    }
  }
  // btrfs send reads a read-only subvolume: the volume's, taken now (one sent as an instance is
  // a snapshot already).
  std::optional<StoragePool::Staging> staging;
  std::filesystem::path volume = out.volume;
  if (!volume_info->readonly) {
    auto made = pool_.staging();
    if (!made) return made.error();
    staging.emplace(std::move(*made));
    volume = staging->path() / "volume";
    if (auto copied = pool_.readonly_copy(name, volume); !copied) return copied;
  }
  const auto path_of = [&](const std::string& snap) -> std::filesystem::path {
    if (snap.empty()) return {};
    const auto it = std::find_if(out.snapshots.begin(), out.snapshots.end(),
                                 [&](const Outgoing::Snapshot& s) { return s.name == snap; });
    return it == out.snapshots.end() ? std::filesystem::path{} : it->path;
  };
  for (const auto& step : mig::btrfs_send_plan(all, sent_names, agreed.refresh)) {
    const auto what = step.snapshot.empty() ? name : name + "/" + step.snapshot;
    const auto source = step.snapshot.empty() ? volume : path_of(step.snapshot);
    if (auto sent = mig::send_subvolume(source, path_of(step.parent), fs, session(what)); !sent) return sent;
  }
  return {};
}

Result<std::vector<StoragePool::Received>> Migrations::receive_btrfs(
    Arrival& arrival, const mig::Header& offer, const mig::Agreement& agreed, const StoragePool::Staging& staging,
    http::MessageChannel& fs, const std::function<mig::Session(const std::string&)>& session) {
  const auto& name = arrival.request.name;
  std::vector<mig::BtrfsSubvolume> header;
  if (agreed.btrfs.migration_header) {
    auto text = mig::receive_document(fs, header_limit, answer_timeout);
    if (!text) return text.error();
    auto decoded = mig::decode_btrfs_header(*text);
    if (!decoded) return decoded.error();
    header = std::move(*decoded);
  } else {
    // An LXD without the header: each snapshot's subvolume, then the volume's.
    for (const auto& s : agreed.snapshots) header.push_back({"/", s.name, true, ""});
    header.push_back({"/", "", false, ""});
  }
  // The streams come in the agreed order of the snapshots (LXD's source sends them so; its header
  // lists them in subvolume order), then the volume; for each, its subvolume and then those nested
  // in it, in the header's order.
  std::vector<std::string> volumes;
  for (const auto& s : agreed.snapshots) volumes.push_back(s.name);
  volumes.emplace_back();
  std::vector<StoragePool::Received> received;
  std::size_t index = 0;
  for (const auto& volume : volumes) {
    const auto what = volume.empty() ? name : name + "/" + volume;
    std::vector<const mig::BtrfsSubvolume*> parts;
    for (const auto& h : header) {
      if (h.snapshot == volume) parts.push_back(&h);
    }
    if (parts.empty() || parts.front()->path != "/") {
      return make_error(ErrorKind::protocol, "the source's btrfs header has no subvolume for " + what);
    }
    StoragePool::Received r;
    for (const auto* part : parts) {
      const auto dir = staging.path() / std::to_string(index++);
      if (::mkdir(dir.c_str(), 0700) != 0) {
        return make_error(ErrorKind::io, "cannot create " + dir.string() + ": " + std::strerror(errno));
      }
      const bool nested = part->path != "/";
      auto subvolume = mig::receive_subvolume(dir, fs, session(nested ? what + ":" + part->path : what));
      if (!subvolume) return subvolume.error();
      if (nested) {
        r.nested.emplace_back(part->path, std::move(*subvolume));
      } else {
        r.subvolume = std::move(*subvolume);
      }
    }
    received.push_back(std::move(r));
  }
  // Their documents, from the offer.
  arrival.snapshots.clear();
  for (const auto& snap : agreed.snapshots) {
    const auto it = std::find_if(offer.snapshots.begin(), offer.snapshots.end(),
                                 [&](const mig::SnapshotInfo& s) { return s.name == snap.name; });
    if (it == offer.snapshots.end()) {
      return make_error(ErrorKind::protocol, "the answer names snapshot " + snap.name + ", which was not offered");
    }
    arrival.snapshots.emplace_back(snap.name, snapshot_doc(*it, arrival.request, arrival.architecture));
  }
  return received;
}

}  // namespace berth::daemon::api
