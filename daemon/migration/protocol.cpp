#include "daemon/migration/protocol.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <utility>

#include "daemon/migration/migrate.pb.h"

namespace berth::daemon::migration {
namespace {

using lxd::ErrorKind;
using lxd::make_error;

lxd::Error invalid(std::string message) {
  return make_error(ErrorKind::invalid_argument, std::move(message));
}

// shared/osarch: the names and the aliases LXD reads, by number.
struct Architecture {
  int id;
  std::string_view name;
  std::array<std::string_view, 5> aliases;
};
constexpr std::array<Architecture, 14> architectures{{
    {1, "i686", {"i386", "i586", "386", "x86", "generic_32"}},
    {2, "x86_64", {"amd64", "generic_64"}},
    {3, "armv7l", {"armhf", "armhfp", "armv7a_hardfp", "armv7", "armv7a_vfpv3_hardfp"}},
    {4, "aarch64", {"arm64", "arm64_generic"}},
    {5, "ppc", {"powerpc"}},
    {6, "ppc64", {"powerpc64"}},
    {7, "ppc64le", {"ppc64el"}},
    {8, "s390x", {}},
    {9, "mips", {"mipsel"}},
    {10, "mips64", {"mips64el"}},
    {11, "riscv32", {}},
    {12, "riscv64", {}},
    {13, "armv6l", {"armel", "arm"}},
    {14, "armv8l", {}},
}};

// A time as LXD sends it: none as Go's zero time. Read back, LXD takes only 0 as "not set"; the
// zero time itself means the same (it is what an unset Go time.Time is).
std::int64_t wire_time(const std::optional<std::int64_t>& t) {
  return t ? *t : go_zero_time;
}
std::optional<std::int64_t> time_of(bool present, std::int64_t value) {
  if (!present || value == 0 || value == go_zero_time) return std::nullopt;
  return value;
}

void put_config(const std::map<std::string, std::string>& config,
                google::protobuf::RepeatedPtrField<wire::Config>* out) {
  for (const auto& [key, value] : config) {
    auto* c = out->Add();
    c->set_key(key);
    c->set_value(value);
  }
}

std::map<std::string, std::string> config_of(const google::protobuf::RepeatedPtrField<wire::Config>& in) {
  std::map<std::string, std::string> out;
  for (const auto& c : in) out[c.key()] = c.value();
  return out;
}

void put_features(const RsyncFeatures& f, wire::rsyncFeatures* out) {
  // All four set explicitly, as LXD does: an unset bidirectional reads as an LXD 3.7 peer.
  out->set_xattrs(f.xattrs);
  out->set_delete_(f.delete_files);
  out->set_compress(f.compress);
  if (f.negotiation) out->set_berthd_negotiation(true);
  out->set_bidirectional(f.bidirectional);
}

void put_btrfs_features(const BtrfsFeatures& f, wire::btrfsFeatures* out) {
  out->set_migration_header(f.migration_header);
  out->set_header_subvolumes(f.header_subvolumes);
  out->set_header_subvolume_uuids(f.header_subvolume_uuids);
}

// The btrfs features both sides have.
BtrfsFeatures common_btrfs(const BtrfsFeatures& theirs) {
  return {theirs.migration_header && berthd_btrfs_features.migration_header,
          theirs.header_subvolumes && berthd_btrfs_features.header_subvolumes,
          theirs.header_subvolume_uuids && berthd_btrfs_features.header_subvolume_uuids};
}

// The features a side goes by, from what the other side sent (MatchTypes): a peer without
// `bidirectional` is an LXD 3.7 one and gets xattrs, delete and compress whatever it said;
// otherwise what both sides have.
RsyncFeatures agreed_features(const RsyncFeatures& theirs) {
  if (!theirs.bidirectional) return {true, true, true, false, false};
  return {theirs.xattrs && berthd_rsync_features.xattrs, theirs.delete_files && berthd_rsync_features.delete_files,
          theirs.compress && berthd_rsync_features.compress, true,
          theirs.negotiation && berthd_rsync_features.negotiation};
}

std::string fs_name(FsType fs) {
  switch (fs) {
    case FsType::rsync: return "rsync";
    case FsType::btrfs: return "btrfs";
    case FsType::zfs: return "zfs";
    case FsType::rbd: return "rbd";
    case FsType::block_and_rsync: return "block_and_rsync";
  }
  return "unknown";
}

std::vector<std::string> feature_args(const RsyncFeatures& f, bool rsync_3_1_3) {
  std::vector<std::string> out;
  if (f.xattrs) {
    out.emplace_back("--xattrs");
    if (rsync_3_1_3) out.emplace_back("--filter=-x security.selinux");
  }
  if (f.delete_files) out.emplace_back("--delete");
  if (f.compress) {
    out.emplace_back("--compress");
    out.emplace_back("--compress-level=2");
  }
  return out;
}

// A volume directory as rsync names it: with the trailing slash, so that its content is what travels.
std::string with_slash(const std::filesystem::path& p) {
  std::string s = p.string();
  if (s.empty() || s.back() != '/') s += '/';
  return s;
}

}  // namespace

std::string encode_header(const Header& h) {
  wire::MigrationHeader m;
  m.set_fs(static_cast<wire::MigrationFSType>(h.fs));
  if (h.criu) m.set_criu(static_cast<wire::CRIUType>(*h.criu));
  for (const auto& e : h.idmap) {
    auto* entry = m.add_idmap();
    entry->set_isuid(e.isuid);
    entry->set_isgid(e.isgid);
    entry->set_hostid(static_cast<std::int32_t>(e.hostid));
    entry->set_nsid(static_cast<std::int32_t>(e.nsid));
    entry->set_maprange(static_cast<std::int32_t>(e.maprange));
  }
  for (const auto& s : h.snapshots) {
    m.add_snapshotnames(s.name);
    auto* snap = m.add_snapshots();
    snap->set_name(s.name);
    put_config(s.config, snap->mutable_localconfig());
    for (const auto& p : s.profiles) snap->add_profiles(p);
    snap->set_ephemeral(s.ephemeral);
    for (const auto& [name, device] : s.devices) {
      auto* d = snap->add_localdevices();
      d->set_name(name);
      put_config(device, d->mutable_config());
    }
    snap->set_architecture(architecture_id(s.architecture).value_or(0));
    snap->set_stateful(s.stateful);
    snap->set_creation_date(wire_time(s.created));
    snap->set_last_used_date(wire_time(s.last_used));
    snap->set_expiry_date(wire_time(s.expires));
  }
  if (h.predump) m.set_predump(true);
  if (h.rsync_features) put_features(*h.rsync_features, m.mutable_rsyncfeatures());
  if (h.btrfs_features) put_btrfs_features(*h.btrfs_features, m.mutable_btrfsfeatures());
  m.set_refresh(h.refresh);
  m.set_indexheaderversion(h.index_header_version);
  return m.SerializeAsString();
}

Result<Header> decode_header(std::string_view bytes) {
  wire::MigrationHeader m;
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      !m.ParsePartialFromArray(bytes.data(), static_cast<int>(bytes.size())) || !m.IsInitialized()) {
    return invalid("the migration header is not a MigrationHeader with all its required fields");
  }
  Header h;
  if (!wire::MigrationFSType_IsValid(m.fs())) return invalid("the migration header names an unknown transfer type");
  h.fs = static_cast<FsType>(m.fs());
  if (m.has_criu()) h.criu = static_cast<Criu>(m.criu());
  for (const auto& e : m.idmap()) {
    if (e.hostid() < 0 || e.nsid() < 0 || e.maprange() <= 0) {
      return invalid("the migration header's id map has an entry with a negative id or an empty range");
    }
    h.idmap.push_back({e.isuid(), e.isgid(), e.hostid(), e.nsid(), e.maprange()});
  }
  if (m.snapshots_size() == m.snapshotnames_size()) {
    for (const auto& s : m.snapshots()) {
      SnapshotInfo info;
      info.name = s.name();
      info.config = config_of(s.localconfig());
      for (const auto& d : s.localdevices()) info.devices[d.name()] = config_of(d.config());
      info.profiles.assign(s.profiles().begin(), s.profiles().end());
      info.ephemeral = s.ephemeral();
      info.stateful = s.stateful();
      // A number LXD does not know leaves it empty: the snapshot then has its instance's.
      info.architecture = architecture_name(s.architecture()).value_or("");
      info.created = time_of(s.has_creation_date(), s.creation_date());
      info.last_used = time_of(s.has_last_used_date(), s.last_used_date());
      info.expires = time_of(s.has_expiry_date(), s.expiry_date());
      h.snapshots.push_back(std::move(info));
    }
  } else {
    // An LXD older than the snapshot messages: names only (§4.5, the legacy case).
    for (const auto& name : m.snapshotnames()) {
      SnapshotInfo info;
      info.name = name;
      h.snapshots.push_back(std::move(info));
    }
  }
  if (m.has_rsyncfeatures()) {
    const auto& f = m.rsyncfeatures();
    h.rsync_features = RsyncFeatures{f.xattrs(), f.delete_(), f.compress(), f.bidirectional(), f.berthd_negotiation()};
  }
  if (m.has_btrfsfeatures()) {
    const auto& f = m.btrfsfeatures();
    h.btrfs_features = BtrfsFeatures{f.migration_header(), f.header_subvolumes(), f.header_subvolume_uuids()};
  }
  h.predump = m.predump();
  h.refresh = m.refresh();
  h.index_header_version = m.indexheaderversion();
  return h;
}

std::string encode_control(const Control& c) {
  wire::MigrationControl m;
  m.set_success(c.success);
  m.set_message(c.message);
  return m.SerializeAsString();
}

Result<Control> decode_control(std::string_view bytes) {
  wire::MigrationControl m;
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      !m.ParsePartialFromArray(bytes.data(), static_cast<int>(bytes.size())) || !m.IsInitialized()) {
    return invalid("the migration control message is not a MigrationControl");
  }
  return Control{m.success(), m.message()};
}

Header make_offer(const OfferInput& input) {
  Header h;
  h.fs = input.btrfs ? FsType::btrfs : FsType::rsync;
  if (input.running) h.criu = Criu::none;
  h.idmap = input.idmap;
  h.snapshots = input.snapshots;
  h.rsync_features = berthd_rsync_features;
  h.rsync_features->negotiation = input.rsync_negotiates;
  if (input.btrfs) h.btrfs_features = berthd_btrfs_features;
  h.index_header_version = 0;
  return h;
}

Result<SinkAnswer> answer_offer(const Header& offer, const SinkInput& input) {
  if (input.live || (offer.criu && *offer.criu != Criu::none)) {
    return invalid(
        "live migration is not supported: berthd has no CRIU (move the container stopped, or with "
        "--stateless)");
  }
  if (offer.fs == FsType::block_and_rsync) {
    return invalid("the source offers a virtual machine's block volume; berthd runs containers only");
  }
  SinkAnswer out;
  Agreement& a = out.agreement;
  // btrfs when both have it (and, for a refresh, both compare UUIDs: LXD's MatchTypes skips it
  // otherwise); else rsync, every type's fallback for a container's filesystem volume (§4.3).
  if (offer.fs == FsType::btrfs && input.btrfs) {
    a.btrfs = common_btrfs(offer.btrfs_features.value_or(BtrfsFeatures{}));
    if (!input.refresh || a.btrfs.header_subvolume_uuids) a.fs = FsType::btrfs;
  }
  if (a.fs == FsType::rsync && !offer.rsync_features) {
    return invalid("no matching migration types found: the source offers " + fs_name(offer.fs) +
                   " without rsync, and berthd " + (input.btrfs ? "cannot take it" : "moves containers with rsync"));
  }
  a.features = agreed_features(offer.rsync_features.value_or(RsyncFeatures{}));
  a.final_sync = a.fs == FsType::rsync && offer.criu == Criu::none;
  a.refresh = input.refresh.has_value();
  a.snapshots = offer.snapshots;
  if (input.refresh) {
    // LXD's CompareSnapshots: a snapshot is the same on both sides when its name and creation
    // time are.
    const auto same = [](const std::optional<std::int64_t>& x, const std::optional<std::int64_t>& y) {
      return x.value_or(0) == y.value_or(0);
    };
    std::vector<SnapshotInfo> wanted;
    for (const auto& s : offer.snapshots) {
      const auto it = std::find_if(input.refresh->begin(), input.refresh->end(),
                                   [&](const SinkInput::Local& l) { return l.name == s.name; });
      if (it == input.refresh->end() || !same(it->created, s.created)) wanted.push_back(s);
    }
    for (const auto& l : *input.refresh) {
      const auto it = std::find_if(offer.snapshots.begin(), offer.snapshots.end(),
                                   [&](const SnapshotInfo& s) { return s.name == l.name; });
      if (it == offer.snapshots.end() || !same(it->created, l.created)) out.drop.push_back(l.name);
    }
    a.snapshots = std::move(wanted);
  }
  Header& r = out.response;
  r.fs = a.fs;
  r.criu = offer.criu;  // none when offered, else unset
  r.snapshots = a.snapshots;
  // The answer carries what this side has: all four, bidirectional saying it is no LXD 3.7.
  r.rsync_features = a.features;
  r.rsync_features->bidirectional = true;
  if (a.fs == FsType::btrfs) r.btrfs_features = a.btrfs;
  r.predump = offer.predump;
  r.refresh = a.refresh;
  r.index_header_version = 0;  // no index header (LXD honours 0 in both directions)
  return out;
}

Result<Agreement> read_answer(const Header& offer, const Header& response) {
  if (response.fs != FsType::rsync && response.fs != offer.fs) {
    return invalid("the target answered with the " + fs_name(response.fs) + " transfer, which was not offered (" +
                   fs_name(offer.fs) + " and rsync were)");
  }
  if (response.criu && *response.criu != Criu::none) {
    return invalid("the target asks for a live migration; berthd has no CRIU");
  }
  Agreement a;
  a.fs = response.fs;
  a.features = agreed_features(response.rsync_features.value_or(RsyncFeatures{}));
  if (a.fs == FsType::btrfs) a.btrfs = common_btrfs(response.btrfs_features.value_or(BtrfsFeatures{}));
  // The snapshots the answer names, in its order, as the source holds them (a refresh asks for fewer).
  for (const auto& wanted : response.snapshots) {
    bool found = false;
    for (const auto& s : offer.snapshots) {
      if (s.name != wanted.name) continue;
      a.snapshots.push_back(s);
      found = true;
      break;
    }
    if (!found) return invalid("the target asks for snapshot " + wanted.name + ", which was not offered");
  }
  a.final_sync = a.fs == FsType::rsync && offer.criu == Criu::none && response.criu == Criu::none;
  a.refresh = response.refresh;
  if (a.fs == FsType::btrfs && a.refresh && (!a.btrfs.migration_header || !a.btrfs.header_subvolume_uuids)) {
    // Without the UUIDs the source cannot know which snapshots the target has to build on.
    return invalid("the target answered a refresh by btrfs without the header's subvolume UUIDs");
  }
  return a;
}

std::vector<std::string> rsync_send_args(const std::filesystem::path& volume, const RsyncFeatures& f, bool rsync_3_1_3,
                                         const std::string& remote_shell) {
  std::vector<std::string> args{"-ar", "--devices", "--numeric-ids", "--partial", "--sparse"};
  for (auto& a : feature_args(f, rsync_3_1_3)) args.push_back(std::move(a));
  // The remote path is ignored: the receiver's own command line names its directory.
  for (std::string a : {with_slash(volume), std::string("localhost:/tmp/foo"), std::string("-e"), remote_shell}) {
    args.push_back(std::move(a));
  }
  return args;
}

std::vector<std::string> rsync_receive_args(const std::filesystem::path& volume, const RsyncFeatures& f,
                                            bool rsync_3_1_3) {
  // The compat string is the one LXD hard-wires (the receiving side decides the protocol options),
  // or, agreed with a sender that negotiates, the one such an rsync client sends itself.
  std::vector<std::string> args{"--server",      f.negotiation ? "-vlogDtpre.iLsfxCIv" : "-vlogDtpre.iLsfx",
                                "--numeric-ids", "--devices",
                                "--partial",     "--sparse"};
  for (auto& a : feature_args(f, rsync_3_1_3)) args.push_back(std::move(a));
  args.emplace_back(".");
  args.push_back(with_slash(volume));
  return args;
}

namespace {

// "rsync  version 3.2.7  protocol version 31": {3, 2, 7}; nullopt when there is no version.
std::optional<std::array<int, 3>> rsync_version(std::string_view text) {
  const auto at = text.find("version ");
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = text.substr(at + 8);
  std::array<int, 3> parts{0, 0, 0};
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), parts[i]);
    if (ec != std::errc{}) {
      if (i == 0) return std::nullopt;
      break;
    }
    rest.remove_prefix(static_cast<std::size_t>(end - rest.data()));
    if (rest.empty() || rest.front() != '.') break;
    rest.remove_prefix(1);
  }
  return parts;
}

}  // namespace

bool rsync_at_least_3_1_3(std::string_view text) {
  const auto v = rsync_version(text);
  return v && *v >= std::array<int, 3>{3, 1, 3};
}

bool rsync_negotiates(std::string_view text) {
  const auto v = rsync_version(text);
  return v && *v >= std::array<int, 3>{3, 2, 0};
}

std::optional<int> architecture_id(std::string_view name) {
  for (const auto& a : architectures) {
    if (a.name == name) return a.id;
    for (const auto alias : a.aliases) {
      if (!alias.empty() && alias == name) return a.id;
    }
  }
  return std::nullopt;
}

std::optional<std::string> architecture_name(int id) {
  for (const auto& a : architectures) {
    if (a.id == id) return std::string(a.name);
  }
  return std::nullopt;
}

}  // namespace berth::daemon::migration
