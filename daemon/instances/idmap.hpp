#pragma once
// Container id maps as LXD 5.0.2 keeps them: the map a non-isolated unprivileged container gets,
// the JSON form stored in volatile.idmap.{base,current,next} and volatile.last_state.idmap, and the
// shift of one id through a map. Pure: no I/O (the caller reads /etc/subuid and /etc/subgid).
//
// An Idmap is an ordered list of entries; for a given id the first entry of the right kind whose
// range holds it decides (LXD's ShiftIntoNs/ShiftFromNs). An empty Idmap means "no map": a
// privileged container, or a host with no usable range.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "providers/lxd/result.hpp"

namespace berth::daemon {

using lxd::Result;

struct IdmapEntry {
  bool isuid = false;
  bool isgid = false;
  std::int64_t hostid = 0;  // the first id as seen on the host, e.g. 1000000
  std::int64_t nsid = 0;    // the first id as seen in the container, e.g. 0
  std::int64_t maprange = 0;

  friend bool operator==(const IdmapEntry&, const IdmapEntry&) = default;
};
using Idmap = std::vector<IdmapEntry>;

// LXD's default when neither file gives root a range: 1000000 ids from host 1000000 (uid and gid).
inline constexpr std::int64_t default_idmap_hostid = 1000000;
inline constexpr std::int64_t default_idmap_range = 1000000000;

// The map LXD 5.0.2 gives a non-isolated unprivileged container, from the text of /etc/subuid and
// /etc/subgid (DefaultIdmapSet for root): root's first range of at least 65536 ids in each file,
// uid entry first. When either file has no line for root (or the text is empty: files missing),
// the fixed default above. When root's ranges are all too small the result is empty: only
// privileged containers can run. (LXD running inside a user namespace derives a map from its own
// /proc/self/uid_map instead; berthd does not run nested.)
[[nodiscard]] Idmap default_idmap(std::string_view subuid_text, std::string_view subgid_text);

// The identity map of a privileged container over the full id space, as a map for shift_tree.
[[nodiscard]] Idmap identity_idmap();

// Go's encoding of []IdmapEntry, byte for byte: [{"Isuid":true,"Isgid":false,"Hostid":1000000,
// "Nsid":0,"Maprange":1000000000},...]; an empty map is "[]".
[[nodiscard]] std::string idmap_to_json(const Idmap& map);
// Parses that form (also "null" and "" as empty, as LXD reads them); ErrorKind::invalid_argument
// naming what is wrong otherwise.
[[nodiscard]] Result<Idmap> idmap_from_json(std::string_view json);

// The lxc.idmap values of a map: "u NSID HOSTID RANGE" / "g ...", one per kind an entry covers.
[[nodiscard]] std::vector<std::string> idmap_to_lxc(const Idmap& map);

// A container id as the host sees it (into the host), nullopt when the map does not cover it.
[[nodiscard]] std::optional<std::int64_t> shift_uid(const Idmap& map, std::int64_t ns_uid);
[[nodiscard]] std::optional<std::int64_t> shift_gid(const Idmap& map, std::int64_t ns_gid);
// A host id as the container sees it, nullopt when the map does not cover it.
[[nodiscard]] std::optional<std::int64_t> unshift_uid(const Idmap& map, std::int64_t host_uid);
[[nodiscard]] std::optional<std::int64_t> unshift_gid(const Idmap& map, std::int64_t host_gid);

}  // namespace berth::daemon
