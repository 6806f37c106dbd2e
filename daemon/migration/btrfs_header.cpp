#include "daemon/migration/btrfs_header.hpp"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

namespace berth::daemon::migration {
namespace {

lxd::Error invalid(const std::string& why) {
  return lxd::make_error(lxd::ErrorKind::invalid_argument, "the btrfs migration header " + why);
}

// "/", or "/a/b" without empty, "." or ".." parts (where a nested subvolume sits in its volume).
bool nested_path_ok(const std::string& path) {
  if (path == "/") return true;
  if (path.empty() || path.front() != '/' || path.back() == '/' || path.find('\0') != std::string::npos) return false;
  std::size_t start = 1;
  while (start <= path.size()) {
    const auto end = std::min(path.find('/', start), path.size());
    const auto part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

}  // namespace

std::string encode_btrfs_header(const std::vector<BtrfsSubvolume>& subvolumes) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : subvolumes) {
    list.push_back({{"path", s.path}, {"snapshot", s.snapshot}, {"readonly", s.readonly}, {"uuid", s.uuid}});
  }
  return nlohmann::json{{"subvolumes", list}}.dump();
}

Result<std::vector<BtrfsSubvolume>> decode_btrfs_header(std::string_view json) {
  const auto doc = nlohmann::json::parse(json, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return invalid("is not a JSON object");
  const auto it = doc.find("subvolumes");
  // Go writes a nil list as null.
  if (it == doc.end() || it->is_null()) return std::vector<BtrfsSubvolume>{};
  if (!it->is_array()) return invalid("has no list of subvolumes");
  std::vector<BtrfsSubvolume> out;
  std::set<std::string> seen;
  for (const auto& entry : *it) {
    if (!entry.is_object()) return invalid("has a subvolume that is not an object");
    BtrfsSubvolume s;
    const auto text = [&](const char* key, std::string& to) {
      const auto v = entry.find(key);
      if (v == entry.end() || v->is_null()) return true;
      if (!v->is_string()) return false;
      to = v->get<std::string>();
      return true;
    };
    if (!text("path", s.path) || !text("snapshot", s.snapshot) || !text("uuid", s.uuid)) {
      return invalid("has a subvolume whose path, snapshot or uuid is not a string");
    }
    if (const auto r = entry.find("readonly"); r != entry.end() && !r->is_null()) {
      if (!r->is_boolean()) return invalid("has a subvolume whose readonly is not true or false");
      s.readonly = r->get<bool>();
    }
    if (!nested_path_ok(s.path)) return invalid("names a subvolume at " + s.path + ", which is not a path in a volume");
    if (!seen.insert(s.snapshot + '\0' + s.path).second) {
      return invalid("names " + s.path + " of " +
                     (s.snapshot.empty() ? std::string("the volume") : "snapshot " + s.snapshot) + " twice");
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<BtrfsSendStep> btrfs_send_plan(const std::vector<std::string>& all, const std::vector<std::string>& sent,
                                           bool refresh) {
  std::vector<BtrfsSendStep> out;
  std::string parent;
  if (refresh && !sent.empty()) {
    const auto it = std::find(all.begin(), all.end(), sent.front());
    if (it != all.end() && it != all.begin()) parent = *std::prev(it);
  } else if (refresh) {
    // Nothing new but the volume: the newest snapshot, which the sink has.
    if (!all.empty()) parent = all.back();
  }
  for (const auto& snap : sent) {
    out.push_back({snap, parent});
    parent = snap;
  }
  out.push_back({"", parent});
  return out;
}

}  // namespace berth::daemon::migration
