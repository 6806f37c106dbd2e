#include "daemon/api/requests.hpp"

#include <signal.h>

#include <charconv>
#include <limits>
#include <set>

#include "daemon/api/api.hpp"
#include "daemon/api/trust.hpp"
#include "daemon/instances/lxc_driver.hpp"
#include "engine/util/json_parse.hpp"
#include "engine/util/time.hpp"

namespace berth::daemon::api {
namespace {

using lxd::ErrorKind;
using StringMap = std::map<std::string, std::string>;
using DeviceMap = std::map<std::string, StringMap>;

constexpr const char* trust_password_key = "core.trust_password";

lxd::Error invalid(std::string message) {
  return lxd::make_error(ErrorKind::invalid_argument, std::move(message));
}

// The member `key` of an object; null when it is absent.
const nlohmann::json& member(const nlohmann::json& object, const char* key) {
  static const nlohmann::json absent;
  const auto it = object.find(key);
  return it == object.end() ? absent : *it;
}

// A string member: "" when absent or null, an error naming it when of another type.
Result<std::string> text_of(const nlohmann::json& object, const char* key) {
  const auto& value = member(object, key);
  if (value.is_null()) return std::string{};
  if (!value.is_string()) return invalid(std::string(key) + " must be a string");
  return value.get<std::string>();
}

// A boolean member: false when absent or null, an error naming it when of another type.
Result<bool> flag_of(const nlohmann::json& object, const char* key) {
  const auto& value = member(object, key);
  if (value.is_null()) return false;
  if (!value.is_boolean()) return invalid(std::string(key) + " must be true or false");
  return value.get<bool>();
}

// An X-LXD-uid/gid/mode header as LXD reads it (ParseLXDFileHeaders): a number, the mode octal
// when it starts with 0; -1 when missing or not a number.
std::int64_t header_number(const std::string& text, bool mode) {
  if (text.empty() || text.size() > 12 || text.find_first_not_of("0123456789") != std::string::npos) return -1;
  const int base = mode && text.size() > 1 && text.front() == '0' ? 8 : 10;
  std::int64_t value = 0;
  // Twelve digits fit; an octal mode stops at its first 8 or 9, as strtoll does.
  std::from_chars(text.data(), text.data() + text.size(), value, base);
  return mode ? (value & 0777) : value;
}

}  // namespace

Result<ServerPut> parse_server_put(const nlohmann::json& body) {
  const auto& config = member(body, "config");
  if (!config.is_object() && !config.is_null()) return invalid("config is not an object");
  ServerPut out;
  if (config.is_null()) return out;
  const auto refuse = [&out](const std::string& key, const std::string& why) {
    out.invalid = invalid("Invalid config key \"" + key + "\": " + why);
    out.config.clear();
    return out;
  };
  for (const auto& [key, value] : config.items()) {
    if (!Api::known_config_key(key)) return refuse(key, "unknown key");
    if (key == trust_password_key && value.is_boolean() && value.get<bool>()) {
      out.config.push_back({key, std::nullopt});
      continue;
    }
    if (!value.is_string() && !value.is_null()) return refuse(key, "the value is not a string");
    std::string text = value.is_null() ? std::string{} : value.get<std::string>();
    if (!text.empty()) {
      if (key == "core.remote_token_expiry" && !expiry_after(std::chrono::system_clock::now(), text)) {
        return refuse(key, "invalid expiry expression " + text);
      }
      if (key == "core.https_address") {
        if (const auto parsed = https_listen_address(text); std::holds_alternative<std::string>(parsed)) {
          return refuse(key, std::get<std::string>(parsed));
        }
      }
    }
    out.config.push_back({key, std::move(text)});
  }
  return out;
}

CertificateAdd parse_certificate_add(const nlohmann::json& body) {
  const auto text = [&body](const char* key) {
    const auto& value = member(body, key);
    return value.is_string() ? value.get<std::string>() : std::string{};
  };
  const auto flag = [&body](const char* key) {
    const auto& value = member(body, key);
    return value.is_boolean() && value.get<bool>();
  };
  CertificateAdd out;
  out.name = text("name");
  out.type = text("type");
  out.certificate = text("certificate");
  out.password = text("password");
  out.token = flag("token");
  out.restricted = flag("restricted");
  if (const auto& projects = member(body, "projects"); projects.is_array()) {
    for (const auto& p : projects) {
      if (p.is_string()) out.projects.push_back(p.get<std::string>());
    }
  }
  return out;
}

namespace {

// The other side of a migration, as a request names it: its operation's URL, one secret per
// channel (control and fs at least) and its certificate, which the connection is pinned to.
// `where` prefixes the keys in errors ("source." or "target.").
Result<MigrationTarget> parse_peer(const nlohmann::json& from, const std::string& where) {
  MigrationTarget peer;
  auto operation = text_of(from, "operation");
  if (!operation) return operation.error();
  if (!operation->starts_with("https://") || operation->find("/1.0/operations/") == std::string::npos ||
      operation->find_first_of("?# \r\n") != std::string::npos) {
    return invalid(where + "operation must be the other host's https://HOST:PORT/1.0/operations/ID");
  }
  peer.operation = std::move(*operation);
  const auto& secrets = member(from, "secrets");
  if (!secrets.is_object()) return invalid(where + "secrets must be an object of the channels' secrets");
  for (const auto& [channel, secret] : secrets.items()) {
    if (!secret.is_string()) return invalid(where + "secrets." + channel + " must be a string");
    const auto& text = secret.get_ref<const std::string&>();
    if (text.empty() || text.size() > 256 || text.find_first_of("&?#% \r\n") != std::string::npos) {
      return invalid(where + "secrets." + channel + " is not a secret");
    }
    peer.secrets[channel] = text;
  }
  if (peer.secrets.count("control") == 0 || peer.secrets.count("fs") == 0) {
    return invalid(where + "secrets must hold the control and fs channels' secrets");
  }
  auto certificate = text_of(from, "certificate");
  if (!certificate) return certificate.error();
  if (certificate->find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return invalid(where + "certificate must be the other host's certificate (PEM): berthd pins it");
  }
  peer.certificate = std::move(*certificate);
  return peer;
}

// A migration target's `source` object (lxd-protocol.md §4.1 B).
Result<CreateRequest::Migration> parse_migration(const nlohmann::json& from) {
  CreateRequest::Migration m;
  auto mode = text_of(from, "mode");
  if (!mode) return mode.error();
  if (*mode != "pull" && *mode != "push") {
    return invalid("Unknown migration mode \"" + *mode + "\" (pull or push)");
  }
  m.push = *mode == "push";
  if (!m.push) {
    auto peer = parse_peer(from, "source.");
    if (!peer) return peer.error();
    m.operation = std::move(peer->operation);
    m.secrets = std::move(peer->secrets);
    m.certificate = std::move(peer->certificate);
  }
  auto live = flag_of(from, "live");
  if (!live) return live.error();
  // A criu channel means the source runs a live migration too.
  m.live = *live || m.secrets.count("criu") != 0;
  for (const char* key : {"instance_only", "container_only"}) {
    auto only = flag_of(from, key);
    if (!only) return only.error();
    m.instance_only = m.instance_only || *only;
  }
  auto refresh = flag_of(from, "refresh");
  if (!refresh) return refresh.error();
  m.refresh = *refresh;
  return m;
}

}  // namespace

Result<CreateRequest> parse_instance_create(const nlohmann::json& body) {
  CreateRequest r;
  auto name = text_of(body, "name");
  if (!name) return name.error();
  r.name = std::move(*name);
  if (r.name.empty()) return invalid("An instance name is required");
  if (auto ok = validate_instance_name(r.name); !ok) return ok.error();
  if (const auto& type = member(body, "type");
      type.is_string() && !type.get<std::string>().empty() && type.get<std::string>() != "container") {
    return invalid("Instance type not supported: " + type.get<std::string>());
  }
  auto config = read_string_map(member(body, "config"), "config");
  if (!config) return config.error();
  // Keys berthd keeps (volatile.*, image.*) are taken as given; the rest must be the driver's.
  for (const auto& [key, value] : *config) {
    if (key.rfind("volatile.", 0) == 0 || key.rfind("image.", 0) == 0) continue;
    r.config[key] = value;
  }
  if (auto ok = validate_instance_config(r.config); !ok) return ok.error();
  r.config = std::move(*config);
  auto devices = read_devices(member(body, "devices"));
  if (!devices) return devices.error();
  if (auto ok = validate_devices(*devices); !ok) return ok.error();
  r.devices = std::move(*devices);
  const auto& profiles_json = member(body, "profiles");
  auto profiles = read_string_list(profiles_json, "profiles");
  if (!profiles) return profiles.error();
  r.profiles = profiles_json.is_null() ? std::vector<std::string>{"default"} : std::move(*profiles);
  auto description = text_of(body, "description");
  if (!description) return description.error();
  r.description = std::move(*description);
  auto ephemeral = flag_of(body, "ephemeral");
  if (!ephemeral) return ephemeral.error();
  r.ephemeral = *ephemeral;

  const auto& source = member(body, "source");
  if (!source.is_object() && !source.is_null()) return invalid("source must be an object");
  const nlohmann::json no_source = nlohmann::json::object();
  const auto& from = source.is_null() ? no_source : source;
  auto type = text_of(from, "type");
  if (!type) return type.error();
  if (*type == "image") {
    auto mode = text_of(from, "mode");
    auto server = text_of(from, "server");
    if (!mode) return mode.error();
    if (!server) return server.error();
    if (*mode == "pull" && !server->empty()) {
      auto pull = parse_pull_source(from);
      if (!pull) return pull.error();
      r.pull = std::move(*pull);
      return r;
    }
    auto fingerprint = text_of(from, "fingerprint");
    auto alias = text_of(from, "alias");
    if (!fingerprint) return fingerprint.error();
    if (!alias) return alias.error();
    r.image = !fingerprint->empty() ? std::move(*fingerprint) : std::move(*alias);
    if (r.image.empty()) return invalid("No image given");
  } else if (*type == "copy") {
    auto copy = text_of(from, "source");
    if (!copy) return copy.error();
    if (copy->empty()) return invalid("Must specify a source instance");
    const auto slash = copy->find('/');
    r.copy_of = copy->substr(0, slash);
    if (slash != std::string::npos) r.copy_snapshot = copy->substr(slash + 1);
    if (r.copy_of.empty() || (slash != std::string::npos && r.copy_snapshot.empty())) {
      return invalid("source.source \"" + *copy + "\" names no instance or snapshot (INSTANCE or INSTANCE/SNAPSHOT)");
    }
    auto instance_only = flag_of(from, "instance_only");
    if (!instance_only) return instance_only.error();
    r.instance_only = *instance_only;
  } else if (*type == "migration") {
    auto migration = parse_migration(from);
    if (!migration) return migration.error();
    r.migration = std::move(*migration);
    auto base = text_of(from, "base-image");
    if (!base) return base.error();
    if (base->size() > 64 || base->find_first_not_of("0123456789abcdef") != std::string::npos) {
      return invalid("source.base-image is not an image fingerprint");
    }
    r.image = std::move(*base);
  } else {
    return invalid("Unsupported instance source type \"" + *type +
                   "\" (berthd creates from an image, a copy or a migration)");
  }
  return r;
}

Result<InstancePut> parse_instance_put(const nlohmann::json& body) {
  InstancePut out;
  auto config = read_string_map(member(body, "config"), "config");
  if (!config) return config.error();
  out.config = std::move(*config);
  auto devices = read_devices(member(body, "devices"));
  if (!devices) return devices.error();
  out.devices = std::move(*devices);
  if (const auto& profiles = member(body, "profiles"); !profiles.is_null()) {
    auto list = read_string_list(profiles, "profiles");
    if (!list) return list.error();
    out.profiles = std::move(*list);
  }
  if (const auto& restore = member(body, "restore"); restore.is_string()) out.restore = restore.get<std::string>();
  return out;
}

Result<StateChange> parse_state_change(const nlohmann::json& body) {
  StateChange c;
  auto action = text_of(body, "action");
  if (!action) return action.error();
  c.action = std::move(*action);
  static const std::set<std::string> actions{"start", "stop", "restart", "freeze", "unfreeze"};
  if (actions.count(c.action) == 0) return invalid("Unknown action " + c.action);
  // Any other timeout (lxc sends -1 or a number of seconds) is as long as it takes.
  if (const auto& timeout = member(body, "timeout"); timeout.is_number_integer()) {
    const auto seconds = timeout.get<std::int64_t>();
    if (seconds < -1 || seconds > std::numeric_limits<int>::max()) return invalid("timeout is out of range");
    c.timeout = static_cast<int>(seconds);
  }
  auto force = flag_of(body, "force");
  if (!force) return force.error();
  c.force = *force;
  auto stateful = flag_of(body, "stateful");
  if (!stateful) return stateful.error();
  if (*stateful) return invalid("Stateful start and stop need CRIU, which berthd does not support");
  return c;
}

Result<bool> is_migration(const nlohmann::json& body) {
  return flag_of(body, "migration");
}

Result<MigrationSourceRequest> parse_migration_source(const nlohmann::json& body) {
  MigrationSourceRequest r;
  // An absent `live` is true (LXD's backward compatibility): lxc and berth always send it.
  if (const auto& live = member(body, "live"); !live.is_null()) {
    if (!live.is_boolean()) return invalid("live must be true or false");
    r.live = live.get<bool>();
  }
  for (const char* key : {"instance_only", "container_only"}) {
    auto only = flag_of(body, key);
    if (!only) return only.error();
    r.instance_only = r.instance_only || *only;
  }
  if (const auto& target = member(body, "target"); !target.is_null()) {
    if (!target.is_object())
      return invalid("target must be an object (the target's operation, secrets and certificate)");
    auto peer = parse_peer(target, "target.");
    if (!peer) return peer.error();
    r.target = std::move(*peer);
  }
  for (const char* key : {"pool", "project"}) {
    auto value = text_of(body, key);
    if (!value) return value.error();
    if (!value->empty()) return invalid(std::string("Moving an instance to another ") + key + " is not supported");
  }
  return r;
}

Result<std::string> parse_rename(const nlohmann::json& body) {
  auto migration = flag_of(body, "migration");
  if (!migration) return migration.error();
  if (*migration) return invalid("Migration is not supported by berthd yet");
  auto name = text_of(body, "name");
  if (!name) return name.error();
  if (name->empty()) return invalid("A new name is required");
  return name;
}

Result<SnapshotCreate> parse_snapshot_create(const nlohmann::json& body) {
  auto stateful = flag_of(body, "stateful");
  if (!stateful) return stateful.error();
  if (*stateful) return invalid("Stateful snapshots need CRIU, which berthd lacks");
  SnapshotCreate out;
  auto name = text_of(body, "name");
  if (!name) return name.error();
  out.name = std::move(*name);
  // LXD's ExpiresAt: a time, or null / Go's zero time for never.
  if (const auto& expires = member(body, "expires_at"); !expires.is_null()) {
    if (!expires.is_string()) return invalid("expires_at is not a time");
    const auto& text = expires.get_ref<const std::string&>();
    if (!text.starts_with("0001-01-01T00:00:00")) {
      out.expires = util::parse_rfc3339(text);
      if (!out.expires) return invalid("expires_at is not an RFC 3339 time: " + text);
    }
  }
  return out;
}

Result<nlohmann::json> parse_profile(const nlohmann::json& body) {
  nlohmann::json config = nlohmann::json::object();
  auto checked = read_string_map(member(body, "config"), "config");
  if (!checked) return checked.error();
  for (const auto& [k, v] : *checked) {
    if (k.rfind("volatile.", 0) == 0) return invalid("volatile keys are not allowed in profiles: " + k);
    config[k] = v;
  }
  if (auto ok = validate_instance_config(*checked); !ok) return ok.error();
  auto device_set = read_devices(member(body, "devices"));
  if (!device_set) return device_set.error();
  if (auto ok = validate_devices(*device_set); !ok) return ok.error();
  nlohmann::json devices = nlohmann::json::object();
  for (const auto& [name, device] : *device_set) devices[name] = device;
  auto description = text_of(body, "description");
  if (!description) return description.error();
  return nlohmann::json{{"config", config}, {"devices", devices}, {"description", *description}};
}

Result<std::string> parse_profile_name(const nlohmann::json& body, bool creating) {
  auto name = text_of(body, "name");
  if (!name) return name.error();
  if (name->empty() || name->find('/') != std::string::npos || (creating && (*name == "." || *name == ".."))) {
    return invalid(creating ? "Invalid profile name \"" + *name + "\"" : "Invalid profile name");
  }
  return name;
}

Result<ImageCreate> parse_image_create(const nlohmann::json& body) {
  const auto& source = member(body, "source");
  if (!source.is_object()) {
    return invalid(
        "berthd imports an uploaded tarball (lxc image import FILE), copies from another server or publishes an "
        "instance; this request has no source");
  }
  ImageCreate out;
  auto type = text_of(source, "type");
  if (!type) return type.error();
  const auto& is_public = member(body, "public");
  out.is_public = is_public.is_boolean() && is_public.get<bool>();
  if (const auto& properties = member(body, "properties"); !properties.is_null()) {
    if (!properties.is_object()) return invalid("properties must be an object");
    out.properties.emplace();
    for (const auto& [k, v] : properties.items()) {
      if (!v.is_string()) return invalid("property " + k + " must be a string");
      (*out.properties)[k] = v.get<std::string>();
    }
  }
  auto filename = text_of(body, "filename");
  if (!filename) return filename.error();
  out.filename = std::move(*filename);
  if (const auto& aliases = member(body, "aliases"); !aliases.is_null()) {
    if (!aliases.is_array()) return invalid("aliases must be a list");
    for (const auto& a : aliases) {
      if (!a.is_object()) return invalid("Invalid alias name");
      auto name = text_of(a, "name");
      if (!name || name->empty() || name->find('/') != std::string::npos) return invalid("Invalid alias name");
      auto description = text_of(a, "description");
      if (!description) return description.error();
      out.aliases.emplace_back(std::move(*name), std::move(*description));
    }
  }
  if (*type == "image") {
    auto mode = text_of(source, "mode");
    if (!mode) return mode.error();
    if (!mode->empty() && *mode != "pull") {
      return invalid("berthd copies images from another server in pull mode only (mode \"" + *mode + "\")");
    }
    auto pull = parse_pull_source(source);
    if (!pull) return pull.error();
    out.pull = std::move(*pull);
    return out;
  }
  if (*type == "instance" || *type == "container" || *type == "snapshot") {
    auto name = text_of(source, "name");
    if (!name) return name.error();
    const auto slash = name->find('/');
    if (name->empty()) return invalid("No source provided");
    if (*type == "snapshot" && slash == std::string::npos) return invalid("Not a snapshot");
    if (*type != "snapshot" && slash != std::string::npos) return invalid("This is a snapshot");
    out.instance = name->substr(0, slash);
    out.snapshot = slash == std::string::npos ? "" : name->substr(slash + 1);
    return out;
  }
  return invalid("Unsupported image source type \"" + *type +
                 "\" (berthd takes an upload, an image on another server, an instance or a snapshot)");
}

Result<nlohmann::json> apply_image_put(const nlohmann::json& current, const nlohmann::json& body, bool patch) {
  nlohmann::json next = current;
  if (const auto it = body.find("properties"); it != body.end()) {
    const auto& p = *it;
    if (!p.is_object() && !p.is_null()) return invalid("properties must be an object");
    if (!patch || !next.contains("properties") || !next["properties"].is_object()) {
      next["properties"] = nlohmann::json::object();
    }
    if (p.is_object()) {
      for (const auto& [k, v] : p.items()) {
        if (!v.is_string()) return invalid("property " + k + " must be a string");
        next["properties"][k] = v;
      }
    }
  }
  for (const char* flag : {"public", "auto_update"}) {
    if (const auto it = body.find(flag); it != body.end()) {
      if (!it->is_boolean()) return invalid(std::string(flag) + " must be true or false");
      next[flag] = *it;
    }
  }
  if (const auto it = body.find("profiles"); it != body.end() && it->is_array()) next["profiles"] = *it;
  return next;
}

Result<AliasRequest> parse_alias(const nlohmann::json& body, bool name_required) {
  AliasRequest out;
  auto name = text_of(body, "name");
  if (!name) return name.error();
  out.name = std::move(*name);
  if (name_required && (out.name.empty() || out.name.find('/') != std::string::npos)) {
    return invalid("Invalid alias name");
  }
  if (body.contains("target")) {
    auto target = text_of(body, "target");
    if (!target) return target.error();
    out.target = std::move(*target);
  }
  if (body.contains("description")) {
    auto description = text_of(body, "description");
    if (!description) return description.error();
    out.description = std::move(*description);
  }
  return out;
}

bool header_truthy(const std::string& value) {
  return value == "true" || value == "1" || value == "yes" || value == "on";
}

std::optional<ExecControl> parse_exec_control(const std::string& message) {
  const auto parsed = util::parse_bounded_json(message);
  const auto& j = parsed.value;
  if (parsed.problem != util::JsonProblem::none || !j.is_object()) return std::nullopt;
  const auto& command = member(j, "command");
  if (!command.is_string()) return std::nullopt;
  if (command == "window-resize") {
    const auto& args = member(j, "args");
    if (!args.is_object()) return std::nullopt;
    const auto number = [&args](const char* key) {
      const auto& value = member(args, key);
      if (!value.is_string()) return -1;
      const auto& text = value.get_ref<const std::string&>();
      int out = -1;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
      // As std::stoi read it: the leading number counts.
      return ec == std::errc{} && end != text.data() ? out : -1;
    };
    ExecControl out;
    out.width = number("width");
    out.height = number("height");
    return out;
  }
  if (command == "signal") {
    const auto& signal = member(j, "signal");
    if (!signal.is_number_integer()) return std::nullopt;
    const auto number = signal.get<std::int64_t>();
    if (number <= 0 || number >= NSIG) return std::nullopt;
    ExecControl out;
    out.kind = ExecControl::Kind::signal;
    out.signal = static_cast<int>(number);
    return out;
  }
  return std::nullopt;
}

RootfsWrite parse_file_headers(const FileHeaders& headers) {
  RootfsWrite what;
  what.uid = header_number(headers.uid, false);
  what.gid = header_number(headers.gid, false);
  what.mode = static_cast<int>(header_number(headers.mode, true));
  if (!headers.type.empty()) what.type = headers.type;
  if (!headers.write.empty()) what.write = headers.write;
  return what;
}

}  // namespace berth::daemon::api
