#include "daemon/instances/idmap.hpp"

#include <charconv>
#include <cstddef>
#include <limits>

#include <nlohmann/json.hpp>

namespace berth::daemon {
namespace {

using lxd::ErrorKind;
using lxd::make_error;

// LXD ignores ranges smaller than this: a container needs at least the 16-bit id space.
constexpr std::int64_t min_usable_range = 65536;

struct Range {
  std::int64_t start = 0;
  std::int64_t size = 0;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::optional<std::int64_t> parse_u32(std::string_view s) {
  s = trim(s);
  std::uint32_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return static_cast<std::int64_t>(v);
}

// root's ranges in a subuid/subgid file, in file order (getFromShadow: comments after '#', lines
// with unparsable numbers skipped, the user name compared without case).
std::vector<Range> root_ranges(std::string_view text) {
  std::vector<Range> out;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    line = line.substr(0, line.find('#'));
    const std::size_t c1 = line.find(':');
    if (c1 == std::string_view::npos) continue;
    const std::size_t c2 = line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    const std::string_view user = line.substr(0, c1);
    if (user.size() != 4) continue;
    bool is_root = true;
    for (std::size_t i = 0; i < 4; ++i) {
      const char ch = static_cast<char>(user[i] | 0x20);
      if (ch != "root"[i]) is_root = false;
    }
    if (!is_root) continue;
    const std::string_view size_field = line.substr(c2 + 1, line.find(':', c2 + 1) - (c2 + 1));
    const auto start = parse_u32(line.substr(c1 + 1, c2 - c1 - 1));
    const auto size = parse_u32(size_field);
    if (start && size) out.push_back({*start, *size});
  }
  return out;
}

Idmap fixed_default() {
  return {{true, false, default_idmap_hostid, 0, default_idmap_range},
          {false, true, default_idmap_hostid, 0, default_idmap_range}};
}

template <bool Uid, bool Into>
std::optional<std::int64_t> shift(const Idmap& map, std::int64_t id) {
  for (const IdmapEntry& e : map) {
    if (Uid ? !e.isuid : !e.isgid) continue;
    const std::int64_t from = Into ? e.nsid : e.hostid;
    const std::int64_t to = Into ? e.hostid : e.nsid;
    if (id >= from && id - from < e.maprange) return id - from + to;
  }
  return std::nullopt;
}

}  // namespace

Idmap default_idmap(std::string_view subuid_text, std::string_view subgid_text) {
  const std::vector<Range> uids = root_ranges(subuid_text);
  const std::vector<Range> gids = root_ranges(subgid_text);
  if (uids.empty() || gids.empty()) return fixed_default();
  Idmap map;
  for (const Range& r : uids) {
    if (r.size < min_usable_range) continue;
    map.push_back({true, false, r.start, 0, r.size});
    break;  // LXD 5.0.2 uses one range per kind
  }
  for (const Range& r : gids) {
    if (r.size < min_usable_range) continue;
    map.push_back({false, true, r.start, 0, r.size});
    break;
  }
  return map;
}

Idmap identity_idmap() {
  // 0..4294967294: every valid id (4294967295 is (uid_t)-1, "no change" to chown).
  constexpr std::int64_t all = std::numeric_limits<std::uint32_t>::max();
  return {{true, true, 0, 0, all}};
}

std::string idmap_to_json(const Idmap& map) {
  std::string out = "[";
  for (const IdmapEntry& e : map) {
    if (out.size() > 1) out += ',';
    out += R"({"Isuid":)";
    out += e.isuid ? "true" : "false";
    out += R"(,"Isgid":)";
    out += e.isgid ? "true" : "false";
    out += R"(,"Hostid":)" + std::to_string(e.hostid);
    out += R"(,"Nsid":)" + std::to_string(e.nsid);
    out += R"(,"Maprange":)" + std::to_string(e.maprange) + "}";
  }
  return out + "]";
}

Result<Idmap> idmap_from_json(std::string_view json) {
  if (trim(json).empty()) return Idmap{};
  const nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return make_error(ErrorKind::invalid_argument, "idmap: not JSON");
  if (doc.is_null()) return Idmap{};
  if (!doc.is_array()) return make_error(ErrorKind::invalid_argument, "idmap: expected a JSON array of entries");
  Idmap map;
  for (std::size_t i = 0; i < doc.size(); ++i) {
    const nlohmann::json& item = doc[i];
    const std::string where = "idmap entry " + std::to_string(i);
    if (!item.is_object()) return make_error(ErrorKind::invalid_argument, where + ": expected an object");
    IdmapEntry e;
    // Go's decoder matches field names without case and ignores unknown ones.
    for (const auto& [key, value] : item.items()) {
      std::string k = key;
      for (char& ch : k) ch = static_cast<char>(ch | 0x20);
      bool* flag = k == "isuid" ? &e.isuid : k == "isgid" ? &e.isgid : nullptr;
      std::int64_t* number = k == "hostid"     ? &e.hostid
                             : k == "nsid"     ? &e.nsid
                             : k == "maprange" ? &e.maprange
                                               : nullptr;
      if (flag != nullptr) {
        if (!value.is_boolean())
          return make_error(ErrorKind::invalid_argument, where + ": " + key + " must be a boolean");
        *flag = value.get<bool>();
      } else if (number != nullptr) {
        if (!value.is_number_integer()) {
          return make_error(ErrorKind::invalid_argument, where + ": " + key + " must be an integer");
        }
        *number = value.get<std::int64_t>();
      }
    }
    if (e.hostid < 0 || e.nsid < 0 || e.maprange < 0) {
      return make_error(ErrorKind::invalid_argument, where + ": ids and ranges must not be negative");
    }
    map.push_back(e);
  }
  return map;
}

std::vector<std::string> idmap_to_lxc(const Idmap& map) {
  std::vector<std::string> out;
  for (const IdmapEntry& e : map) {
    const std::string ids = std::to_string(e.nsid) + ' ' + std::to_string(e.hostid) + ' ' + std::to_string(e.maprange);
    if (e.isuid) out.push_back(std::string("u ").append(ids));
    if (e.isgid) out.push_back(std::string("g ").append(ids));
  }
  return out;
}

std::optional<std::int64_t> shift_uid(const Idmap& map, std::int64_t ns_uid) {
  return shift<true, true>(map, ns_uid);
}
std::optional<std::int64_t> shift_gid(const Idmap& map, std::int64_t ns_gid) {
  return shift<false, true>(map, ns_gid);
}
std::optional<std::int64_t> unshift_uid(const Idmap& map, std::int64_t host_uid) {
  return shift<true, false>(map, host_uid);
}
std::optional<std::int64_t> unshift_gid(const Idmap& map, std::int64_t host_gid) {
  return shift<false, false>(map, host_gid);
}

}  // namespace berth::daemon
