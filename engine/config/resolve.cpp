#include "engine/config/resolve.hpp"

#include <algorithm>
#include <charconv>
#include <climits>
#include <filesystem>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "engine/config/load.hpp"
#include "engine/config/pem.hpp"
#include "engine/config/schema_check.hpp"
#include "engine/config/url.hpp"
#include "engine/util/limits.hpp"
#include "engine/util/printable.hpp"
#include "engine/util/quantity.hpp"
#include "engine/util/read_file.hpp"

namespace berth::config {
namespace {

// "a, b, c" — or the first ten and how many more, so a detail line stays readable.
std::string name_list(std::vector<std::string> names) {
  constexpr std::size_t shown = 10;
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < shown; ++i) out += (i > 0 ? ", " : "") + names[i];
  if (names.size() > shown) out += ", and " + std::to_string(names.size() - shown) + " more";
  return out;
}

std::vector<std::string> keys_of(const nlohmann::json* object) {
  std::vector<std::string> keys;
  if (object != nullptr && object->is_object()) {
    for (const auto& [key, value] : object->items()) keys.push_back(key);
  }
  return keys;
}

std::string known(std::string_view what, const std::vector<std::string>& names) {
  if (names.empty()) return "no " + std::string{what} + " are declared";
  return "known " + std::string{what} + ": " + name_list(names);
}

// "rack=2, zone=east": labels as messages show them (values as shown_scalar made them).
std::string labels_text(const std::map<std::string, std::string>& shown) {
  std::string out;
  for (const auto& [name, value] : shown) out += (out.empty() ? "" : ", ") + name + "=" + value;
  return out;
}

// Whether `labels` carries every pair of `selector`.
bool carries(const std::map<std::string, std::string>& labels, const std::map<std::string, std::string>& selector) {
  return std::all_of(selector.begin(), selector.end(), [&](const auto& pair) {
    const auto it = labels.find(pair.first);
    return it != labels.end() && it->second == pair.second;
  });
}

class Resolver {
 public:
  Resolver(const Document& doc, const std::set<KeyPath>& flagged, diag::Diagnostics& out)
      : doc_(doc), flagged_(flagged), out_(out) {}

  model::Fleet run() {
    model::Fleet fleet;
    if (const auto* v = usable({"version"}); v != nullptr && v->is_number_integer()) fleet.version = v->get<int>();
    if (auto name = string_at({"name"})) fleet.name = *name;
    if (const auto* v = usable({"prune"}); v != nullptr && v->is_boolean()) fleet.prune = v->get<bool>();
    if (const auto* v = usable({"suspend"}); v != nullptr && v->is_boolean()) fleet.suspend = v->get<bool>();
    remote_names_ = keys_of(doc_.find({"remotes"}));
    remote_set_.insert(remote_names_.begin(), remote_names_.end());
    image_names_ = keys_of(doc_.find({"images"}));
    container_names_ = keys_of(doc_.find({"containers"}));
    if (const auto* listed = usable({"sensitive"}); listed != nullptr && listed->is_array()) {
      check_listed_once({"sensitive"}, *listed);
      for (const auto& key : strings_of(*listed)) sensitive_keys_.insert(key);
    }
    for (const auto& name : remote_names_) {
      const auto& spec = fleet.remotes.emplace(name, remote(name)).first->second;
      remote_projects_.emplace(name, spec.project);
      remote_labels_.emplace(name, spec.labels);
    }
    for (const auto& name : image_names_) fleet.images.emplace(name, image(name));
    placement_names_ = keys_of(doc_.find({"placements"}));
    for (const auto& name : placement_names_) {
      fleet.placements.emplace(name, placement_policy({"placements", name}, name));
    }
    for (const auto& name : container_names_) {
      fleet.containers.emplace(name, container(name, fleet.images, fleet.placements));
    }
    for (const auto& name : container_names_) check_copy_source(name, fleet.containers);
    check_copy_cycles(fleet.containers);
    fleet.secrets = secrets(fleet);
    return fleet;
  }

  // Every value that must never be shown: whatever came from the environment, and the values of
  // keys marked sensitive. Config and device values show as (sensitive), anything else (a URL)
  // as the variable it came from.
  [[nodiscard]] std::vector<model::Secret> secrets(const model::Fleet& fleet) const {
    std::vector<model::Secret> out;
    for (const auto& [path, origin] : doc_.origins) {
      if (origin.env_vars.empty() || origin.text.empty()) continue;
      const bool declared_value =
          path.size() >= 4 && path[0] == "containers" &&
          (path[2] == "config" || path[2] == "devices" || path[2] == "files" || path[2] == "exec");
      std::string shown = "(sensitive)";
      if (!declared_value) {
        shown.clear();
        for (const auto& v : origin.env_vars) shown += "${env:" + v + "}";
      }
      out.push_back({origin.text, shown});
      // Each variable's own value too, when the text holds more than it ("TOKEN=${env:T}").
      for (const auto& value : origin.env_values) {
        if (!value.empty() && value != origin.text) out.push_back({value, shown});
      }
    }
    for (const auto& [name, spec] : fleet.containers) {
      for (const auto& path : spec.sensitive) {
        if (path.rfind("config.", 0) != 0) continue;
        const auto it = spec.config.find(path.substr(7));
        if (it != spec.config.end() && !it->second.empty()) out.push_back({it->second, "(sensitive)"});
      }
    }
    return out;
  }

  [[nodiscard]] bool from_env(const KeyPath& path) const {
    const auto* o = doc_.origin(path);
    return o != nullptr && !o->env_vars.empty();
  }

  // A scalar as a message may show it: escaped, or the variables it came from (a label's value).
  [[nodiscard]] std::string shown_scalar(const KeyPath& path, const std::string& text) const {
    const auto* o = doc_.origin(path);
    if (o == nullptr || o->env_vars.empty()) return util::printable(text);
    std::string shown;
    for (const auto& v : o->env_vars) shown += "${env:" + v + "}";
    return shown;
  }

 private:
  // The value at `path` when the schema accepted it; nullptr when it is absent or already reported.
  [[nodiscard]] const nlohmann::json* usable(const KeyPath& path) const {
    if (flagged_.contains(path) || doc_.broken.contains(path)) return nullptr;
    return doc_.find(path);
  }

  // True when nothing at or below `path` was reported: the whole value can be relied on.
  [[nodiscard]] bool clean_under(const KeyPath& path) const {
    auto under = [&](const std::set<KeyPath>& set) {
      const auto it = set.lower_bound(path);
      return it != set.end() && it->size() >= path.size() && std::equal(path.begin(), path.end(), it->begin());
    };
    return !under(flagged_) && !under(doc_.broken);
  }

  [[nodiscard]] std::optional<std::string> string_at(const KeyPath& path) const {
    const auto* v = usable(path);
    if (v == nullptr || !v->is_string()) return std::nullopt;
    return v->get<std::string>();
  }

  // A config or device value as LXD will get it: numbers and booleans as written in the file.
  [[nodiscard]] std::optional<std::string> scalar_text(const KeyPath& path) const {
    const auto* v = usable(path);
    if (v == nullptr) return std::nullopt;
    if (v->is_string()) return v->get<std::string>();
    if (v->is_number() || v->is_boolean()) {
      if (const auto* o = doc_.origin(path)) return o->text;
    }
    return std::nullopt;
  }

  static KeyPath child(KeyPath path, const std::string& segment) {
    path.push_back(segment);
    return path;
  }

  void error(const KeyPath& path, diag::SourceLocation where, std::string summary, std::string detail) {
    out_.error(std::move(summary), doc_.display(path), std::move(where), std::move(detail));
  }

  [[nodiscard]] bool is_remote(const std::string& name) const { return remote_set_.contains(name); }

  // An error for a reference to a remote that is not declared.
  void check_remote_reference(const KeyPath& path, const std::string& name) {
    if (is_remote(name)) return;
    error(path, doc_.value_where(path), "unknown remote " + quote(name),
          "declare it under remotes: (" + known("remotes", remote_names_) + ")");
  }

  model::RemoteSpec remote(const std::string& name) {
    const KeyPath path{"remotes", name};
    model::RemoteSpec spec;
    spec.name = name;
    spec.where = doc_.key_where(path);
    if (auto url = string_at(child(path, "url"))) {
      spec.url = *url;
      spec.urls = {*url};
      if (url_problem(*url)) {
        auto [summary, detail] = bad_url_message(doc_, child(path, "url"), *url);
        error(child(path, "url"), doc_.value_where(child(path, "url")), std::move(summary), std::move(detail));
      }
    }
    // urls: an LXD cluster's members (any of them answers for the whole cluster), tried in order.
    const KeyPath upath = child(path, "urls");
    if (const auto* urls = usable(upath); urls != nullptr && urls->is_array()) {
      if (doc_.find(child(path, "url")) != nullptr) {
        error(upath, doc_.key_where(upath), "url and urls are mutually exclusive",
              "give one address with url:, or several (the members of an LXD cluster) with urls:");
      }
      check_listed_once(upath, *urls);
      for (std::size_t i = 0; i < urls->size(); ++i) {
        const KeyPath at = child(upath, std::to_string(i));
        const auto url = string_at(at);
        if (!url) continue;
        if (url_problem(*url)) {
          auto [summary, detail] = bad_url_message(doc_, at, *url);
          error(at, doc_.value_where(at), std::move(summary), std::move(detail));
        }
        if (std::find(spec.urls.begin(), spec.urls.end(), *url) == spec.urls.end()) spec.urls.push_back(*url);
      }
      if (!spec.urls.empty() && spec.url.empty()) spec.url = spec.urls.front();
    }
    if (auto fingerprint = string_at(child(path, "fingerprint"))) {
      spec.fingerprint = normalize_fingerprint(*fingerprint);
      if (!spec.fingerprint) {
        error(child(path, "fingerprint"), doc_.value_where(child(path, "fingerprint")), "invalid fingerprint",
              "expected sha256: and 64 hex digits, 64 hex digits, or 32 colon-separated hex pairs");
      }
    }
    if (const auto* p = usable(child(path, "parallelism")); p != nullptr && p->is_number_integer()) {
      spec.parallelism = p->get<int>();
    }
    if (auto project = string_at(child(path, "project"))) spec.project = *project;
    if (const auto* labels = usable(child(path, "labels")); labels != nullptr && labels->is_object()) {
      for (const auto& [label, value] : labels->items()) {
        const KeyPath at = child(child(path, "labels"), label);
        if (auto text = scalar_text(at)) {
          spec.labels[label] = *text;
          remote_labels_shown_[name][label] = shown_scalar(at, *text);
        }
      }
    }
    spec.capacity = capacity(child(path, "capacity"));
    if (const auto* v = usable(child(path, "drain")); v != nullptr && v->is_boolean()) spec.drain = v->get<bool>();
    return spec;
  }

  // capacity: {cpu: N, memory: SIZE}; the schema has checked the types and that each is at least 1.
  model::Capacity capacity(const KeyPath& path) {
    model::Capacity out;
    // Beyond these, sums of limits against the capacity could overflow: no host comes near them.
    constexpr std::uint64_t max_cpus = 1U << 20;
    constexpr std::uint64_t max_bytes = std::uint64_t{1} << 62;
    // A whole number as read, negative ones as 0 (the schema refused them).
    const auto whole = [](const nlohmann::json& v) -> std::uint64_t {
      if (v.is_number_unsigned()) return v.get<std::uint64_t>();
      return v.get<std::int64_t>() < 0 ? 0 : static_cast<std::uint64_t>(v.get<std::int64_t>());
    };
    const KeyPath cpu_at = child(path, "cpu");
    if (const auto* cpu = usable(cpu_at); cpu != nullptr && cpu->is_number_integer()) {
      if (whole(*cpu) > max_cpus) {
        error(
            cpu_at, doc_.value_where(cpu_at), "the CPU capacity " + doc_.quoted(cpu_at) + " is too large",
            "give the number of CPUs placement may hand out on this remote (at most " + std::to_string(max_cpus) + ")");
      } else {
        out.cpu = cpu->get<std::int64_t>();
      }
    }
    const KeyPath at = child(path, "memory");
    const auto* memory = usable(at);
    if (memory == nullptr) return out;
    if (memory->is_number_integer()) {
      if (whole(*memory) > max_bytes) {
        error(at, doc_.value_where(at), "the memory capacity " + doc_.quoted(at) + " is too large",
              "give the memory placement may hand out on this remote, such as 16GiB (at most 4EiB)");
      } else if (memory->get<std::int64_t>() > 0) {
        out.memory = static_cast<std::uint64_t>(memory->get<std::int64_t>());
      }
    } else if (memory->is_string()) {
      const auto bytes = util::parse_byte_size(memory->get<std::string>());
      if (!bytes) {
        error(at, doc_.value_where(at), "invalid size " + doc_.quoted(at),
              "expected a size such as 16GiB, 512MiB or a number of bytes (units: kB, MB, GB, TB as powers of "
              "1000; KiB, MiB, GiB, TiB as powers of 1024; less than 8EiB)");
      } else if (*bytes > max_bytes) {
        error(at, doc_.value_where(at), "the memory capacity " + doc_.quoted(at) + " is too large",
              "give the memory placement may hand out on this remote, such as 16GiB (at most 4EiB)");
      } else if (*bytes == 0) {
        error(at, doc_.value_where(at), "the memory capacity must be at least 1 byte (got " + doc_.quoted(at) + ")",
              "give what placement may hand out on this remote, such as 16GiB; or leave memory: out to use what the "
              "host reports");
      } else {
        out.memory = *bytes;
      }
    }
    return out;
  }

  // A placement policy at `path`: an entry under placements: (`name` its key), or a container's
  // inline placement: (`name` empty). The schema has checked its shape.
  model::PlacementPolicy placement_policy(const KeyPath& path, const std::string& name) {
    model::PlacementPolicy policy;
    policy.name = name;
    policy.where = doc_.key_where(path);
    const KeyPath cpath = child(path, "candidates");
    if (const auto* candidates = usable(cpath); candidates != nullptr && candidates->is_array()) {
      check_listed_once(cpath, *candidates);
      for (std::size_t i = 0; i < candidates->size(); ++i) {
        const auto text = string_at(child(cpath, std::to_string(i)));
        if (!text) continue;
        // REMOTE, or on an LXD cluster REMOTE/MEMBER or REMOTE/* (which members there are is read).
        const model::SiteRef site = model::parse_site(*text);
        check_remote_reference(child(cpath, std::to_string(i)), site.remote);
        if (is_remote(site.remote)) policy.candidates.push_back(site.member.empty() ? site.remote : *text);
      }
    } else if (candidates != nullptr && candidates->is_object()) {
      select(child(cpath, "labels"), policy);
    }
    std::sort(policy.candidates.begin(), policy.candidates.end());
    policy.candidates.erase(std::unique(policy.candidates.begin(), policy.candidates.end()), policy.candidates.end());
    if (auto strategy = string_at(child(path, "strategy"))) {
      policy.strategy = model::strategy_from_string(*strategy).value_or(model::Strategy::spread);
    }
    if (const auto* most = usable(child(path, "max_per_remote")); most != nullptr && most->is_number_integer()) {
      // A bound beyond INT_MAX containers is no bound at all.
      policy.max_per_remote = static_cast<int>(std::min<std::int64_t>(most->get<std::int64_t>(), INT_MAX));
    }
    if (auto group = string_at(child(path, "anti_affinity"))) policy.anti_affinity = *group;
    return policy;
  }

  // A label selector (candidates: {labels: {...}}, at `path`): its labels, each value as written,
  // and the candidates it picks: every remote that carries all of them.
  void select(const KeyPath& path, model::PlacementPolicy& policy) {
    const auto* body = usable(path);
    if (body == nullptr || !body->is_object() || !clean_under(path)) return;
    std::map<std::string, std::string> shown;
    for (const auto& [label, value] : body->items()) {
      if (auto text = scalar_text(child(path, label))) {
        policy.selector[label] = *text;
        shown[label] = shown_scalar(child(path, label), *text);
      }
    }
    if (policy.selector.empty()) return;
    for (const auto& [remote, labels] : remote_labels_) {
      if (carries(labels, policy.selector)) policy.candidates.push_back(remote);
    }
    // A remote whose labels are wrong may be the one meant: that is reported already.
    if (!policy.candidates.empty() || !clean_under({"remotes"})) return;
    constexpr std::size_t listed = 10;
    std::string declared;
    std::size_t count = 0;
    for (const auto& remote : remote_names_) {
      if (++count > listed) {
        declared += "; and " + std::to_string(remote_names_.size() - listed) + " more";
        break;
      }
      const auto it = remote_labels_shown_.find(remote);
      declared += (declared.empty() ? "" : "; ") + remote + ": " +
                  (it == remote_labels_shown_.end() ? std::string{"no labels"} : labels_text(it->second));
    }
    if (declared.empty()) declared = "no remotes are declared";
    error(path, doc_.key_where(path), "no remote has labels " + labels_text(shown),
          "a remote is a candidate when its labels: include every one of these; label a remote, or select others (" +
              declared + ")");
  }

  model::ImageSpec image(const std::string& name) {
    const KeyPath path{"images", name};
    model::ImageSpec spec;
    spec.name = name;
    spec.where = doc_.key_where(path);
    if (auto alias = string_at(child(path, "alias"))) spec.alias = *alias;
    const nlohmann::json* body = doc_.find(path);
    const bool has_server = body != nullptr && body->is_object() && body->contains("server");
    if (auto remote = string_at(child(path, "remote"))) {
      spec.remote = *remote;
      check_remote_reference(child(path, "remote"), *remote);
    }
    if (has_server) {
      if (body->contains("remote")) {
        error(child(path, "server"), doc_.key_where(child(path, "server")), "remote and server are mutually exclusive",
              "an image is either on a remote (remote:) or on an image server (server:): remove one of them");
      }
      image_server(path, spec);
    } else if (body != nullptr && body->is_object()) {
      for (const char* key : {"protocol", "fingerprint", "certificate"}) {
        if (!body->contains(key)) continue;
        error(child(path, key), doc_.key_where(child(path, key)), std::string{key} + " needs server:",
              std::string{key} + " describes an image server: add server: https://..., or remove " + key);
      }
    }
    return spec;
  }

  // server:, protocol:, fingerprint: and certificate: of an image entry.
  void image_server(const KeyPath& path, model::ImageSpec& spec) {
    model::ImageServer server;
    if (auto url = string_at(child(path, "server"))) {
      const KeyPath at = child(path, "server");
      auto parsed = parse_image_server_url(*url);
      if (parsed.url) {
        server.url = parsed.url->to_string();
      } else {
        const auto* o = doc_.origin(at);
        const bool secret = o != nullptr && !o->env_vars.empty();
        error(at, doc_.value_where(at),
              secret ? doc_.quoted(at) + " is not a valid image server URL" : "invalid image server URL " + quote(*url),
              parsed.problem + "; expected https://HOST[:PORT][/PATH]");
      }
    }
    if (auto protocol = string_at(child(path, "protocol"))) {
      server.protocol = model::image_protocol_from_string(*protocol).value_or(model::ImageProtocol::simplestreams);
    }
    if (auto fingerprint = string_at(child(path, "fingerprint"))) {
      spec.fingerprint = normalize_image_fingerprint(*fingerprint);
      if (!spec.fingerprint) {
        error(child(path, "fingerprint"), doc_.value_where(child(path, "fingerprint")),
              "invalid image fingerprint " + doc_.quoted(child(path, "fingerprint")),
              "expected the image's full fingerprint: 64 hex digits, as `lxc image info` shows it");
      }
    }
    if (auto file = string_at(child(path, "certificate"))) {
      if (auto pem = certificate(child(path, "certificate"), *file)) server.certificate = std::move(*pem);
    }
    spec.server = std::move(server);
  }

  // The PEM of a certificate file, relative to the fleet file's directory (the working directory
  // for a file read from standard input); an error at the value when it cannot be used.
  std::optional<std::string> certificate(const KeyPath& at, const std::string& file) {
    // A certificate is a few kilobytes; a chain of a dozen fits in 64 KiB.
    constexpr std::uint64_t max_certificate_bytes = 64 * util::kib;
    std::filesystem::path full{file};
    if (full.is_relative() && doc_.file != stdin_name) full = std::filesystem::path{doc_.file}.parent_path() / full;
    // Only a regular file: a FIFO or a device (/dev/stdin) could block the load.
    std::error_code ec;
    const auto status = std::filesystem::status(full, ec);
    const bool special = !ec && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status) &&
                         !std::filesystem::is_directory(status);
    const auto read = special ? util::FileRead{} : util::read_file_bounded(full, max_certificate_bytes);
    std::string why = special ? "it is not a regular file" : "";
    switch (read.problem) {
      case util::ReadProblem::none: break;
      case util::ReadProblem::not_found: why = "no such file"; break;
      case util::ReadProblem::is_directory: why = "it is a directory"; break;
      case util::ReadProblem::cannot_open: why = "cannot open it: " + read.os_error; break;
      case util::ReadProblem::cannot_read: why = "cannot read it: " + read.os_error; break;
      case util::ReadProblem::too_large: why = "it is larger than " + util::format_size(max_certificate_bytes); break;
    }
    if (why.empty()) {
      auto checked = check_certificate_pem(read.bytes);
      if (checked.pem) return std::move(checked.pem);
      why = checked.problem;
    }
    error(at, doc_.value_where(at), "unusable certificate file " + quote(full.string()) + ": " + why,
          "name a PEM file with the image server's certificate (relative to the fleet file), e.g. the server's "
          "own cert.pem");
    return std::nullopt;
  }

  std::optional<model::ImageRef> image_ref(const KeyPath& path, const std::string& value,
                                           const model::ContainerSpec& spec,
                                           const std::map<std::string, model::ImageSpec>& images) {
    if (const auto colon = value.find(':'); colon != std::string::npos) {
      const std::string remote = value.substr(0, colon);
      if (!is_remote(remote)) {
        error(path, doc_.value_where(path), "unknown remote " + quote(remote) + " in image " + doc_.quoted(path),
              "REMOTE:ALIAS needs a remote declared under remotes: (" + known("remotes", remote_names_) + ")");
        return std::nullopt;
      }
      return model::ImageRef{remote, value.substr(colon + 1), std::nullopt, std::nullopt};
    }
    const auto it = images.find(value);
    if (it == images.end()) {
      error(path, doc_.value_where(path), "unknown image " + doc_.quoted(path),
            "declare it under images:, or write REMOTE:ALIAS (" + known("images", image_names_) + ")");
      return std::nullopt;
    }
    if (it->second.server) return model::ImageRef{{}, it->second.alias, it->second.server, it->second.fingerprint};
    return model::ImageRef{it->second.remote.value_or(spec.remote), it->second.alias, std::nullopt, std::nullopt};
  }

  // The strings of a list (snapshot or profile names); the schema has checked their type.
  static std::vector<std::string> strings_of(const nlohmann::json& list) {
    std::vector<std::string> names;
    for (const auto& item : list) {
      if (item.is_string()) names.push_back(item.get<std::string>());
    }
    return names;
  }

  // Snapshots, profiles and sensitive keys are each listed once. One pass with a hash set (the
  // schema's uniqueItems compared every pair: 20k snapshots took 10 s to validate). Each repeat is
  // reported at its own position and names the first; items already reported are skipped.
  void check_listed_once(const KeyPath& path, const nlohmann::json& list) {
    std::unordered_map<std::string_view, std::size_t> first_index;
    first_index.reserve(list.size());
    for (std::size_t i = 0; i < list.size(); ++i) {
      const nlohmann::json& item = list[i];
      if (!item.is_string()) continue;
      const KeyPath item_path = child(path, std::to_string(i));
      if (flagged_.contains(item_path) || doc_.broken.contains(item_path)) continue;
      const auto [first, inserted] = first_index.emplace(item.get_ref<const std::string&>(), i);
      if (inserted) continue;
      const auto where = doc_.value_where(child(path, std::to_string(first->second)));
      error(item_path, doc_.value_where(item_path), doc_.quoted(item_path) + " is listed twice",
            "it is already listed at line " + std::to_string(where.line) + ", column " + std::to_string(where.column) +
                "; list it once");
    }
  }

  model::ContainerSpec container(const std::string& name, const std::map<std::string, model::ImageSpec>& images,
                                 const std::map<std::string, model::PlacementPolicy>& placements) {
    const KeyPath path{"containers", name};
    model::ContainerSpec spec;
    spec.name = name;
    spec.where = doc_.key_where(path);
    const nlohmann::json* body = doc_.find(path);
    if (body == nullptr || !body->is_object()) return spec;

    if (auto remote = string_at(child(path, "remote"))) {
      spec.remote = *remote;
      check_remote_reference(child(path, "remote"), *remote);
    }
    placement(path, *body, placements, spec);
    // target: a member of the LXD cluster its remote is, or "@group"; whether the remote is a
    // cluster with such a member is known only when it is read (the plan says).
    if (auto target = string_at(child(path, "target"))) {
      spec.target = *target;
      if (spec.placement) {
        const KeyPath at = child(path, "target");
        error(at, doc_.key_where(at), "target and placement are mutually exclusive",
              "placement chooses the member itself: name members as candidates (REMOTE/MEMBER, REMOTE/*), or "
              "use remote: with target:");
      }
    }
    if (auto state = string_at(child(path, "state"))) {
      spec.state = model::desired_state_from_string(*state).value_or(model::DesiredState::running);
    }
    if (auto project = string_at(child(path, "project"))) {
      spec.project = *project;
    } else if (spec.placement) {
      if (auto shared = candidates_project(path, *spec.placement)) spec.project = *shared;
    } else if (const auto r = remote_projects_.find(spec.remote); r != remote_projects_.end()) {
      spec.project = r->second;
    }
    if (const auto* e = usable(child(path, "ephemeral")); e != nullptr && e->is_boolean()) {
      spec.ephemeral = e->get<bool>();
      if (*spec.ephemeral && spec.state == model::DesiredState::stopped) {
        error(child(path, "ephemeral"), doc_.value_where(child(path, "ephemeral")),
              "an ephemeral container cannot be declared stopped",
              "LXD deletes an ephemeral container when it stops: declare it running or frozen, or make it "
              "ephemeral: false");
      }
    }
    if (auto description = string_at(child(path, "description"))) spec.description = *description;
    if (auto image = string_at(child(path, "image")))
      spec.image = image_ref(child(path, "image"), *image, spec, images);
    if (auto source = string_at(child(path, "copy_of"))) {
      const auto slash = source->find('/');
      model::CopySource copy{source->substr(0, slash), std::nullopt};
      if (slash != std::string::npos) copy.snapshot = source->substr(slash + 1);
      spec.copy_of = copy;
    }

    const bool has_image = body->contains("image");
    const bool has_copy = body->contains("copy_of");
    // With a state that is itself wrong, whether the container should exist is unknown.
    const bool state_known = !body->contains("state") || usable(child(path, "state")) != nullptr;
    if (has_image && has_copy) {
      error(path, doc_.key_where(child(path, "copy_of")), "image and copy_of are mutually exclusive",
            "a container is either launched from an image or copied from another container: remove one of them");
    } else if (!has_image && !has_copy && state_known && spec.state != model::DesiredState::absent) {
      error(path, doc_.key_where(path), "needs image: or copy_of:",
            "say what to create it from (image: NAME, image: REMOTE:ALIAS or copy_of: CONTAINER[/SNAPSHOT]), or "
            "declare state: absent");
    }

    std::set<std::string> listed = sensitive_keys_;
    if (const auto* own = usable(child(path, "sensitive")); own != nullptr && own->is_array()) {
      check_listed_once(child(path, "sensitive"), *own);
      for (const auto& key : strings_of(*own)) listed.insert(key);
    }
    if (const auto* config = usable(child(path, "config")); config != nullptr && config->is_object()) {
      for (const auto& [key, value] : config->items()) {
        const KeyPath value_path = child(child(path, "config"), key);
        if (auto text = scalar_text(value_path)) spec.config[key] = *text;
        if (listed.count(key) != 0 || from_env(value_path)) spec.sensitive.insert("config." + key);
      }
    }
    if (const auto* devices = usable(child(path, "devices")); devices != nullptr && devices->is_object()) {
      for (const auto& [device, options] : devices->items()) {
        if (!options.is_object()) continue;
        const KeyPath device_path = child(child(path, "devices"), device);
        auto& target = spec.devices[device];
        for (const auto& [key, value] : options.items()) {
          if (auto text = scalar_text(child(device_path, key))) target[key] = *text;
          if (from_env(child(device_path, key))) spec.sensitive.insert("devices." + device);
        }
      }
    }
    if (const auto* profiles = usable(child(path, "profiles")); profiles != nullptr && profiles->is_array()) {
      check_listed_once(child(path, "profiles"), *profiles);
      spec.profiles = strings_of(*profiles);
    }
    if (const auto* snapshots = usable(child(path, "snapshots"))) {
      if (snapshots->is_array()) {
        check_listed_once(child(path, "snapshots"), *snapshots);
        spec.snapshots = strings_of(*snapshots);
      }
      if (snapshots->is_object()) {
        if (const auto names = snapshots->find("names"); names != snapshots->end() && names->is_array()) {
          check_listed_once(child(child(path, "snapshots"), "names"), *names);
          spec.snapshots = strings_of(*names);
        }
        if (const auto prune = snapshots->find("prune"); prune != snapshots->end() && prune->is_boolean()) {
          spec.prune_snapshots = prune->get<bool>();
        }
      }
    }
    if (auto restart = string_at(child(path, "restart"))) {
      spec.restart = *restart == "allowed" ? model::Consent::allowed : model::Consent::denied;
    }
    if (auto move = string_at(child(path, "move"))) {
      spec.move = *move == "allowed" ? model::Consent::allowed : model::Consent::denied;
    }
    if (auto recreate = string_at(child(path, "recreate"))) {
      spec.recreate = *recreate == "allowed" ? model::Consent::allowed : model::Consent::denied;
    }
    if (auto on_change = string_at(child(path, "on_image_change"))) {
      spec.on_image_change = *on_change == "replace" ? model::OnImageChange::replace : model::OnImageChange::report;
    }
    if (auto drift = string_at(child(path, "drift"))) {
      if (*drift == "correct") spec.drift = model::DriftPolicy::correct;
      if (*drift == "report") spec.drift = model::DriftPolicy::report;
      if (*drift == "ignore") spec.drift = model::DriftPolicy::ignore;
    }
    if (const auto* v = usable(child(path, "suspend")); v != nullptr && v->is_boolean()) spec.suspend = v->get<bool>();
    files(path, spec);
    commands(path, spec, state_known);
    return spec;
  }

  // Where the container runs: exactly one of remote: and placement:, even when it is declared
  // absent (berth must know where to look for it). A named policy is copied into the container.
  void placement(const KeyPath& path, const nlohmann::json& body,
                 const std::map<std::string, model::PlacementPolicy>& placements, model::ContainerSpec& spec) {
    const KeyPath at = child(path, "placement");
    const bool has_remote = body.contains("remote");
    const bool has_placement = body.contains("placement");
    if (has_remote && has_placement) {
      error(path, doc_.key_where(at), "remote and placement are mutually exclusive",
            "a container either runs on the remote named by remote:, or on the one its placement: chooses: remove one "
            "of them");
      return;
    }
    if (!has_remote && !has_placement) {
      error(path, doc_.key_where(path), "needs remote: or placement:",
            "say where it runs: remote: NAME for one remote, or placement: POLICY (a name under placements:, or "
            "{candidates: [...]} written here) to let the plan choose among several");
      return;
    }
    const auto* value = usable(at);
    if (value == nullptr) return;
    if (value->is_string()) {
      const auto& name = value->get_ref<const std::string&>();
      const auto it = placements.find(name);
      if (it == placements.end()) {
        error(at, doc_.value_where(at), "unknown placement " + doc_.quoted(at),
              "declare it under placements:, or write the policy here as {candidates: [...]} (" +
                  known("placements", placement_names_) + ")");
        return;
      }
      spec.placement = it->second;
    } else if (value->is_object()) {
      spec.placement = placement_policy(at, {});
    }
  }

  // The project of a placed container without project: of its own: the one all its candidates'
  // remotes share. When they differ, which one it is would depend on the remote placement chooses.
  std::optional<std::string> candidates_project(const KeyPath& path, const model::PlacementPolicy& policy) {
    if (policy.candidates.empty()) return std::nullopt;
    const std::string first = model::parse_site(policy.candidates.front()).remote;
    const std::string& project = remote_projects_.at(first);
    for (const auto& candidate : policy.candidates) {
      const std::string other = model::parse_site(candidate).remote;
      const std::string& theirs = remote_projects_.at(other);
      if (theirs == project) continue;
      const KeyPath at = child(path, "placement");
      error(at, doc_.key_where(at),
            "the candidates are in different projects: remote " + quote(first) + " uses project " + quote(project) +
                ", remote " + quote(other) + " uses " + quote(theirs),
            "declare project: on the container: it lives in that project on whichever remote placement chooses");
      return std::nullopt;
    }
    return project;
  }

  // files: path -> {content | source, mode, uid, gid}. A source is read now, relative to the fleet
  // file's directory, so that a plan shows and a saved plan pins what will be pushed.
  void files(const KeyPath& path, model::ContainerSpec& spec) {
    const KeyPath files_path = child(path, "files");
    const auto* files = usable(files_path);
    if (files == nullptr || !files->is_object()) return;
    for (const auto& [file_path, body] : files->items()) {
      const KeyPath fp = child(files_path, file_path);
      if (!body.is_object() || usable(fp) == nullptr) continue;
      model::FileSpec file;
      file.path = file_path;
      file.where = doc_.key_where(fp);
      const bool has_content = body.contains("content");
      const bool has_source = body.contains("source");
      if (has_content == has_source) {
        error(fp, doc_.key_where(fp),
              has_content ? "content and source are mutually exclusive" : "needs content: or source:",
              "give the file's text with content: \"...\", or name a local file with source: ./FILE");
        continue;
      }
      if (has_content) {
        const auto content = string_at(child(fp, "content"));
        if (!content) continue;
        file.content = *content;
        file.sensitive = from_env(child(fp, "content"));
      } else {
        const auto source = string_at(child(fp, "source"));
        if (!source) continue;
        file.source = *source;
        if (!read_source(child(fp, "source"), *source, file.content)) continue;
      }
      if (auto mode = string_at(child(fp, "mode"))) {
        int bits = 0;  // the schema allows "644" and "0644": octal digits only
        const auto [end, ec] = std::from_chars(mode->data(), mode->data() + mode->size(), bits, 8);
        if (ec != std::errc{} || end != mode->data() + mode->size() || bits < 0 || bits > 07777) {
          error(child(fp, "mode"), doc_.value_where(child(fp, "mode")), "mode " + quote(*mode) + " is not octal",
                "give the permission bits as chmod takes them: 0644, 0600, 0755");
          continue;
        }
        file.mode = bits;
      }
      if (const auto* uid = usable(child(fp, "uid")); uid != nullptr && uid->is_number_integer())
        file.uid = uid->get<std::int64_t>();
      if (const auto* gid = usable(child(fp, "gid")); gid != nullptr && gid->is_number_integer())
        file.gid = gid->get<std::int64_t>();
      spec.files.emplace(file.path, std::move(file));
    }
  }

  bool read_source(const KeyPath& at, const std::string& source, std::string& content) {
    std::filesystem::path p{source};
    if (p.is_relative()) p = base_dir() / p;
    const auto read = util::read_file_bounded(p, util::InputLimits{}.fleet_file_bytes);
    std::string problem;
    switch (read.problem) {
      case util::ReadProblem::none: content = read.bytes; return true;
      case util::ReadProblem::not_found: problem = "no such file"; break;
      case util::ReadProblem::is_directory: problem = "is a directory"; break;
      case util::ReadProblem::cannot_open: problem = "cannot open it: " + read.os_error; break;
      case util::ReadProblem::cannot_read: problem = "cannot read it: " + read.os_error; break;
      case util::ReadProblem::too_large:
        problem = "is larger than " + util::format_size(util::InputLimits{}.fleet_file_bytes);
        break;
    }
    error(at, doc_.value_where(at), "source " + quote(p.string()) + ": " + problem,
          "source: names a local file, relative to the fleet file's directory (" + base_dir().string() + ")");
    return false;
  }

  // Where source: paths start: the fleet file's directory, or the working directory for -f -.
  [[nodiscard]] std::filesystem::path base_dir() const {
    if (doc_.file == stdin_name) return std::filesystem::current_path();
    const auto parent = std::filesystem::path{doc_.file}.parent_path();
    return parent.empty() ? std::filesystem::path{"."} : parent;
  }

  // A command and its cwd are shown in plans and stored in saved plans: a secret goes in through
  // the command's environment, which is masked everywhere.
  void no_secret_here(const KeyPath& at) {
    if (!from_env(at)) return;
    error(at, doc_.value_where(at), "a value from the environment cannot be part of a command",
          "commands are shown in plans; pass it through environment: (for example TOKEN: \"${env:NAME}\") and use "
          "$TOKEN in a shell command");
  }

  // exec: name -> command, in file order.
  void commands(const KeyPath& path, model::ContainerSpec& spec, bool state_known) {
    const KeyPath exec_path = child(path, "exec");
    const auto* exec = usable(exec_path);
    if (exec == nullptr || !exec->is_object() || exec->empty()) return;
    if (state_known && (spec.state == model::DesiredState::stopped || spec.state == model::DesiredState::frozen)) {
      error(exec_path, doc_.key_where(exec_path),
            "commands run only in a running container, and this one is declared " +
                std::string{model::to_string(spec.state)},
            "declare state: running, or remove exec:");
    }
    std::vector<std::string> names;
    for (const auto& [name, body] : exec->items()) names.push_back(name);
    std::sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
      const auto wa = doc_.key_where(child(exec_path, a));
      const auto wb = doc_.key_where(child(exec_path, b));
      return std::tie(wa.line, wa.column) < std::tie(wb.line, wb.column);
    });
    for (const auto& name : names) {
      const KeyPath ep = child(exec_path, name);
      const auto* body = usable(ep);
      if (body == nullptr || !body->is_object()) continue;
      model::ExecSpec e;
      e.name = name;
      e.where = doc_.key_where(ep);
      if (const auto* command = usable(child(ep, "command")); command != nullptr && command->is_array()) {
        e.command = strings_of(*command);
        for (std::size_t i = 0; i < command->size(); ++i)
          no_secret_here(child(child(ep, "command"), std::to_string(i)));
      }
      no_secret_here(child(ep, "cwd"));
      if (auto when = string_at(child(ep, "when")))
        e.when = *when == "change" ? model::ExecWhen::change : model::ExecWhen::create;
      if (const auto* watch = usable(child(ep, "watch")); watch != nullptr && watch->is_array()) {
        check_listed_once(child(ep, "watch"), *watch);
        e.watch = strings_of(*watch);
        if (e.when == model::ExecWhen::create && !e.watch.empty()) {
          error(child(ep, "watch"), doc_.key_where(child(ep, "watch")), "watch: applies only to when: change",
                "a when: create command runs once; say when: change to run it again when these files change");
        }
        for (std::size_t i = 0; i < e.watch.size(); ++i) {
          if (spec.files.count(e.watch[i]) != 0 || !clean_under(child(path, "files"))) continue;
          const KeyPath wp = child(child(ep, "watch"), std::to_string(i));
          std::vector<std::string> declared;
          for (const auto& [p, f] : spec.files) declared.push_back(p);
          error(wp, doc_.value_where(wp), quote(e.watch[i]) + " is not under this container's files:",
                "watch: names files berth pushes (" + known("files", declared) + ")");
        }
      }
      if (const auto* env = usable(child(ep, "environment")); env != nullptr && env->is_object()) {
        for (const auto& [key, value] : env->items()) {
          const KeyPath vp = child(child(ep, "environment"), key);
          if (auto text = scalar_text(vp)) e.environment[key] = *text;
          if (from_env(vp)) e.sensitive_environment.insert(key);
        }
      }
      if (auto cwd = string_at(child(ep, "cwd"))) e.cwd = *cwd;
      if (const auto* uid = usable(child(ep, "uid")); uid != nullptr && uid->is_number_integer())
        e.uid = uid->get<std::int64_t>();
      if (const auto* gid = usable(child(ep, "gid")); gid != nullptr && gid->is_number_integer())
        e.gid = gid->get<std::int64_t>();
      if (const auto* allow = usable(child(ep, "allow_failure")); allow != nullptr && allow->is_boolean())
        e.allow_failure = allow->get<bool>();
      spec.exec.push_back(std::move(e));
    }
  }

  void check_copy_source(const std::string& name, const std::map<std::string, model::ContainerSpec>& containers) {
    const auto& spec = containers.at(name);
    if (!spec.copy_of) return;
    const KeyPath path{"containers", name, "copy_of"};
    const auto& source = spec.copy_of->container;
    const auto it = containers.find(source);
    if (it == containers.end()) {
      std::vector<std::string> others;
      for (const auto& n : container_names_) {
        if (n != name) others.push_back(n);
      }
      error(path, doc_.value_where(path), "unknown container " + quote(source),
            "copy_of names another container of this file (" + known("containers", others) + ")");
      return;
    }
    if (source == name) {
      error(path, doc_.value_where(path), "a container cannot be a copy of itself",
            "name another container, or launch it from an image with image:");
      return;
    }
    if (it->second.state == model::DesiredState::absent) {
      error(path, doc_.value_where(path), "the source container " + quote(source) + " is declared absent",
            "a copy needs its source to exist: copy another container, or launch this one from an image");
    }
    if (spec.copy_of->snapshot) {
      const KeyPath snapshots{"containers", source, "snapshots"};
      if (!clean_under(snapshots)) return;  // its snapshots are already reported as wrong
      const auto& declared = it->second.snapshots;
      const std::string& snap = *spec.copy_of->snapshot;
      if (!snapshot_set(source, declared).contains(snap)) {
        const std::string listed = declared.empty() ? "it declares none" : "declared: " + name_list(declared);
        error(path, doc_.value_where(path), "container " + quote(source) + " declares no snapshot " + quote(snap),
              "add it to containers." + source + ".snapshots (" + listed +
                  "), or copy the container itself with "
                  "copy_of: " +
                  source);
      }
    }
  }

  // The declared snapshots of `container` as a set, made once: many copies may name snapshots of
  // one source that declares thousands.
  const std::unordered_set<std::string>& snapshot_set(const std::string& container,
                                                      const std::vector<std::string>& declared) {
    auto [it, made] = snapshot_sets_.try_emplace(container);
    if (made) it->second.insert(declared.begin(), declared.end());
    return it->second;
  }

  void check_copy_cycles(const std::map<std::string, model::ContainerSpec>& containers) {
    // Each container has at most one source, so every cycle is found by following sources from
    // each container in file order; a container already settled cannot start a new cycle.
    std::vector<std::string> order = container_names_;
    std::sort(order.begin(), order.end(), [&](const std::string& a, const std::string& b) {
      const auto wa = doc_.key_where({"containers", a});
      const auto wb = doc_.key_where({"containers", b});
      return std::tie(wa.line, wa.column) < std::tie(wb.line, wb.column);
    });
    std::set<std::string> settled;
    for (const auto& start : order) {
      std::vector<std::string> walk;
      std::map<std::string, std::size_t> on_walk;  // name -> its index in walk: chains can be long
      std::string current = start;
      while (!settled.contains(current)) {
        if (const auto repeat = on_walk.find(current); repeat != on_walk.end()) {
          report_cycle({walk.begin() + static_cast<std::ptrdiff_t>(repeat->second), walk.end()}, order);
          break;
        }
        on_walk.emplace(current, walk.size());
        walk.push_back(current);
        const auto it = containers.find(current);
        if (it == containers.end() || !it->second.copy_of) break;
        const std::string& next = it->second.copy_of->container;
        if (next == current || !containers.contains(next)) break;  // reported by check_copy_source
        current = next;
      }
      settled.insert(walk.begin(), walk.end());
    }
  }

  void report_cycle(std::vector<std::string> cycle, const std::vector<std::string>& file_order) {
    // Start the cycle at the member that comes first in the file, and report it there.
    const std::set<std::string> members(cycle.begin(), cycle.end());
    const auto first_in_file = std::find_if(file_order.begin(), file_order.end(),
                                            [&](const std::string& name) { return members.contains(name); });
    const auto first = std::find(cycle.begin(), cycle.end(), *first_in_file);
    std::rotate(cycle.begin(), first, cycle.end());
    std::string path_text;
    for (const auto& c : cycle) path_text += c + " -> ";
    path_text += cycle.front();
    const KeyPath where{"containers", cycle.front(), "copy_of"};
    error(where, doc_.value_where(where), "copy_of forms a cycle: " + path_text,
          "a copy is made after its source exists, so one of them must be launched from an image (image:)");
  }

  const Document& doc_;
  const std::set<KeyPath>& flagged_;
  diag::Diagnostics& out_;
  std::vector<std::string> remote_names_;
  std::set<std::string> remote_set_;                    // remote_names_, for lookups
  std::map<std::string, std::string> remote_projects_;  // remote -> its project: (its containers' default)
  std::map<std::string, std::map<std::string, std::string>> remote_labels_;        // remote -> its labels:
  std::map<std::string, std::map<std::string, std::string>> remote_labels_shown_;  // as messages show them
  std::vector<std::string> placement_names_;
  std::vector<std::string> image_names_;
  std::vector<std::string> container_names_;
  std::set<std::string> sensitive_keys_;                                  // the file's sensitive: list
  std::map<std::string, std::unordered_set<std::string>> snapshot_sets_;  // see snapshot_set()
};

}  // namespace

model::Fleet resolve(const Document& doc, const std::set<KeyPath>& flagged, diag::Diagnostics& out) {
  return Resolver{doc, flagged, out}.run();
}

}  // namespace berth::config
