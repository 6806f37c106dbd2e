#include "providers/lxd/wire.hpp"

#include <limits>

namespace berth::lxd::wire {

namespace {

// What LXD's Go code renders for an unset time.Time.
constexpr std::string_view zero_time = "0001-01-01T00:00:00Z";

std::string_view type_name(const nlohmann::json& v) {
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "an object";
  return "null";
}

// Reads the fields of one JSON object and keeps the first problem. Each getter returns the zero
// value when the field is absent or null, and records an error when it has the wrong type; the
// caller checks error() once at the end.
class Fields {
 public:
  Fields(const nlohmann::json& object, std::string what) : object_(object), what_(std::move(what)) {
    if (!object_.is_object()) fail(what_ + " is " + std::string{type_name(object_)} + ", not an object");
  }

  std::string text(std::string_view key) {
    const auto* v = find(key);
    if (v == nullptr) return {};
    if (!v->is_string()) return wrong(key, *v, "a string"), std::string{};
    return v->get<std::string>();
  }

  std::string time(std::string_view key) {
    std::string t = text(key);
    return t == zero_time ? std::string{} : t;
  }

  bool boolean(std::string_view key) {
    const auto* v = find(key);
    if (v == nullptr) return false;
    if (!v->is_boolean()) return wrong(key, *v, "a boolean"), false;
    return v->get<bool>();
  }

  int integer(std::string_view key) {
    const auto* v = find(key);
    if (v == nullptr) return 0;
    if (!v->is_number_integer()) return wrong(key, *v, "an integer"), 0;
    // nlohmann keeps non-negative integers as unsigned: range-check each representation as it is.
    const bool in_range = v->is_number_unsigned()
                              ? v->get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<int>::max())
                              : v->get<std::int64_t>() >= std::numeric_limits<int>::min() &&
                                    v->get<std::int64_t>() <= std::numeric_limits<int>::max();
    if (!in_range) return fail(what_ + ": " + std::string{key} + " is out of range"), 0;
    return v->is_number_unsigned() ? static_cast<int>(v->get<std::uint64_t>())
                                   : static_cast<int>(v->get<std::int64_t>());
  }

  // A count or a size: an integer from 0 to 2^64-1.
  std::uint64_t count(std::string_view key) {
    const auto* v = find(key);
    if (v == nullptr) return 0;
    if (!v->is_number_integer()) return wrong(key, *v, "an integer"), 0;
    if (v->is_number_unsigned()) return v->get<std::uint64_t>();
    const auto n = v->get<std::int64_t>();
    if (n < 0) return fail(what_ + ": " + std::string{key} + " is negative"), 0;
    return static_cast<std::uint64_t>(n);
  }

  model::ConfigMap strings(std::string_view key) { return string_map(find(key), std::string{key}); }

  model::DeviceMap devices(std::string_view key) {
    model::DeviceMap out;
    const auto* v = find(key);
    if (v == nullptr) return out;
    if (!v->is_object()) return wrong(key, *v, "an object"), out;
    for (const auto& [name, keys] : v->items()) {
      out.emplace(name, string_map(keys.is_null() ? nullptr : &keys, std::string{key} + "." + name));
    }
    return out;
  }

  std::optional<std::vector<std::string>> list(std::string_view key) {
    const auto* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_array()) return wrong(key, *v, "a list"), std::nullopt;
    std::vector<std::string> out;
    out.reserve(v->size());
    for (const auto& item : *v) {
      if (!item.is_string()) {
        fail(what_ + ": " + std::string{key} + " holds " + std::string{type_name(item)} + ", not only strings");
        return std::nullopt;
      }
      out.push_back(item.get<std::string>());
    }
    return out;
  }

  // Present and not null, else an error (for what a caller cannot do without).
  std::string required_text(std::string_view key) {
    if (find(key) == nullptr) fail(what_ + " has no " + std::string{key});
    return text(key);
  }

  const nlohmann::json* find(std::string_view key) const {
    if (!object_.is_object()) return nullptr;
    const auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }

  void fail(std::string message) {
    if (!error_) error_ = make_error(ErrorKind::protocol, std::move(message));
  }
  [[nodiscard]] const std::optional<Error>& error() const { return error_; }

 private:
  void wrong(std::string_view key, const nlohmann::json& v, std::string_view want) {
    fail(what_ + ": " + std::string{key} + " is " + std::string{type_name(v)} + ", not " + std::string{want});
  }

  model::ConfigMap string_map(const nlohmann::json* v, const std::string& path) {
    model::ConfigMap out;
    if (v == nullptr) return out;
    if (!v->is_object()) {
      fail(what_ + ": " + path + " is " + std::string{type_name(*v)} + ", not an object");
      return out;
    }
    for (const auto& [k, value] : v->items()) {
      if (value.is_string()) {
        out.emplace(k, value.get<std::string>());
      } else if (value.is_boolean() || value.is_number()) {
        out.emplace(k, value.dump());  // `true` means what "true" means; LXD itself sends strings
      } else {
        fail(what_ + ": " + path + "." + k + " is " + std::string{type_name(value)} + ", not a string");
        return out;
      }
    }
    return out;
  }

  const nlohmann::json& object_;
  std::string what_;
  std::optional<Error> error_;
};

// "c1/snap0" -> "snap0"; older daemons name snapshots with their instance.
std::string without_instance(std::string name) {
  if (const auto slash = name.rfind('/'); slash != std::string::npos) name.erase(0, slash + 1);
  return name;
}

// What an object goes by in errors: "instance c1" if it has a usable name, else `fallback`.
std::string named(std::string_view kind, const nlohmann::json& object, std::string fallback) {
  if (object.is_object()) {
    if (const auto it = object.find("name");
        it != object.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
      return std::string{kind} + " " + it->get<std::string>();
    }
  }
  return fallback;
}

// The same for the index-th entry of a list.
std::string entry_what(std::string_view kind, const nlohmann::json& entry, std::size_t index) {
  return named(kind, entry, std::string{kind} + " #" + std::to_string(index + 1));
}

template <class T, class ParseOne>
Result<std::vector<T>> parse_list(const nlohmann::json& metadata, std::string_view what, ParseOne parse_one) {
  if (metadata.is_null()) return std::vector<T>{};
  if (!metadata.is_array()) {
    return make_error(ErrorKind::protocol, std::string{"the answer is "} + std::string{type_name(metadata)} +
                                               ", not a list of " + std::string{what});
  }
  std::vector<T> out;
  out.reserve(metadata.size());
  for (std::size_t i = 0; i < metadata.size(); ++i) {
    auto one = parse_one(metadata[i], i);
    if (!one) return one.error();
    out.push_back(std::move(*one));
  }
  return out;
}

Result<Instance> instance_at(const nlohmann::json& j, const std::string& what) {
  Fields f{j, what};
  Instance out;
  out.name = f.required_text("name");
  if (f.find("name") != nullptr && out.name.empty()) f.fail(what + " has an empty name");
  if (j.is_object()) {
    for (const char* key : {"architecture", "config", "devices", "profiles", "ephemeral"}) {
      if (!j.contains(key)) out.missing.emplace_back(key);
    }
  }
  if (auto t = f.text("type"); !t.empty()) out.type = std::move(t);
  out.architecture = f.text("architecture");
  out.config = f.strings("config");
  if (f.find("expanded_config") != nullptr) out.expanded_config = f.strings("expanded_config");
  out.devices = f.devices("devices");
  out.ephemeral = f.boolean("ephemeral");
  out.profiles = f.list("profiles");
  out.description = f.text("description");
  out.status = f.text("status");
  out.status_code = f.integer("status_code");
  out.created_at = f.time("created_at");
  out.location = f.text("location");
  out.stateful = f.boolean("stateful");
  if (f.error()) return *f.error();
  return out;
}

Result<Operation> operation_at(const nlohmann::json& j, const std::string& what) {
  Fields f{j, what};
  Operation out;
  out.id = f.text("id");
  out.operation_class = f.text("class");
  out.description = f.text("description");
  out.status = f.text("status");
  if (f.find("status_code") == nullptr) f.fail(what + " has no status_code");
  out.status_code = f.integer("status_code");
  out.err = f.text("err");
  if (const auto* res = f.find("resources")) {
    if (!res->is_object()) {
      f.fail(what + ": resources is " + std::string{type_name(*res)} + ", not an object");
    } else {
      Fields r{*res, what + " resources"};
      for (const auto& [kind, urls] : res->items()) {
        if (auto list = r.list(kind)) out.resources.emplace(kind, std::move(*list));
      }
      if (r.error()) f.fail(r.error()->message);
    }
  }
  if (const auto* md = f.find("metadata")) {
    if (!md->is_object()) {
      f.fail(what + ": metadata is " + std::string{type_name(*md)} + ", not an object");
    } else {
      out.metadata = *md;
    }
  }
  if (f.error()) return *f.error();
  return out;
}

Result<ImageAlias> image_alias_at(const nlohmann::json& j, const std::string& what) {
  Fields f{j, what};
  ImageAlias a;
  a.name = f.text("name");
  a.target = f.text("target");
  a.type = f.text("type");
  a.description = f.text("description");
  if (f.error()) return *f.error();
  return a;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The last segment of a URL path, percent-decoded ("%3F" -> "?"); a broken escape stays as it is.
std::string last_segment(std::string_view url) {
  if (const auto q = url.find('?'); q != std::string_view::npos) url = url.substr(0, q);
  if (const auto slash = url.rfind('/'); slash != std::string_view::npos) url.remove_prefix(slash + 1);
  std::string out;
  out.reserve(url.size());
  for (std::size_t i = 0; i < url.size(); ++i) {
    if (url[i] == '%' && i + 2 < url.size()) {
      const int hi = hex_value(url[i + 1]);
      const int lo = hex_value(url[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(url[i]);
  }
  return out;
}

// The name the index-th URL of a listing ends in; an error if it decodes to nothing usable as one
// path segment (empty, or holding '/' or NUL).
Result<std::string> name_from_url(std::string_view url, std::size_t index) {
  std::string name = last_segment(url);
  if (name.empty() || name == "." || name == ".." ||
      name.find_first_of(std::string_view{"/\0", 2}) != std::string::npos) {
    return make_error(ErrorKind::protocol, "entry #" + std::to_string(index + 1) + " names nothing usable");
  }
  return name;
}

}  // namespace

std::optional<std::string> string_in(const nlohmann::json& object, std::string_view key) {
  if (!object.is_object()) return std::nullopt;
  const auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

std::string text_in(const nlohmann::json& object, std::string_view key) {
  return string_in(object, key).value_or(std::string{});
}

nlohmann::json object_in(const nlohmann::json& object, std::string_view key) {
  if (!object.is_object()) return nlohmann::json::object();
  const auto it = object.find(key);
  return it != object.end() && it->is_object() ? *it : nlohmann::json::object();
}

bool flag_in(const nlohmann::json& object, std::string_view key) {
  if (!object.is_object()) return false;
  const auto it = object.find(key);
  return it != object.end() && it->is_boolean() && it->get<bool>();
}

Result<Instance> parse_instance(const nlohmann::json& metadata) {
  return instance_at(metadata, named("instance", metadata, "the instance"));
}

Result<std::vector<Instance>> parse_instances(const nlohmann::json& metadata) {
  return parse_list<Instance>(metadata, "instances", [](const nlohmann::json& j, std::size_t i) {
    return instance_at(j, entry_what("instance", j, i));
  });
}

Result<std::vector<Snapshot>> parse_snapshots(const nlohmann::json& metadata) {
  return parse_list<Snapshot>(metadata, "snapshots", [](const nlohmann::json& j, std::size_t i) -> Result<Snapshot> {
    Fields f{j, entry_what("snapshot", j, i)};
    Snapshot s{without_instance(f.required_text("name")), f.time("created_at")};
    if (f.error()) return *f.error();
    return s;
  });
}

Result<std::vector<Volume>> parse_volumes(const nlohmann::json& metadata) {
  return parse_list<Volume>(metadata, "volumes", [](const nlohmann::json& j, std::size_t i) -> Result<Volume> {
    Fields f{j, entry_what("volume", j, i)};
    Volume v;
    v.name = f.required_text("name");
    v.type = f.text("type");
    v.project = f.text("project");
    v.created_at = f.time("created_at");
    if (f.error()) return *f.error();
    return v;
  });
}

Result<ImageAlias> parse_image_alias(const nlohmann::json& metadata) {
  return image_alias_at(metadata, named("image alias", metadata, "the image alias"));
}

Result<std::vector<ImageAlias>> parse_image_aliases(const nlohmann::json& metadata) {
  return parse_list<ImageAlias>(
      metadata, "image aliases", [](const nlohmann::json& j, std::size_t i) -> Result<ImageAlias> {
        if (j.is_string()) {
          auto name = name_from_url(j.get<std::string>(), i);
          if (!name) return name.error();
          return ImageAlias{std::move(*name), {}, {}, {}};
        }
        auto a = image_alias_at(j, entry_what("image alias", j, i));
        if (a && a->name.empty()) {
          return make_error(ErrorKind::protocol, entry_what("image alias", j, i) + " has no name");
        }
        return a;
      });
}

Result<Server> parse_server(const nlohmann::json& metadata) {
  Fields f{metadata, "the server"};
  Server s;
  s.auth = f.required_text("auth");
  s.api_extensions = f.list("api_extensions").value_or(std::vector<std::string>{});
  if (const auto* env = f.find("environment")) {
    Fields e{*env, "the server's environment"};
    Environment out;
    out.certificate = e.text("certificate");
    out.addresses = e.list("addresses").value_or(std::vector<std::string>{});
    out.server_version = e.text("server_version");
    out.server_clustered = e.boolean("server_clustered");
    out.kernel_architecture = e.text("kernel_architecture");
    if (e.error()) return *e.error();
    s.environment = std::move(out);
  }
  if (f.error()) return *f.error();
  return s;
}

Result<Resources> parse_resources(const nlohmann::json& metadata) {
  Fields f{metadata, "the answer"};
  Resources out;
  // One section: its total, and the first problem of either.
  const auto total_of = [&f](std::string_view section) -> std::uint64_t {
    const auto* v = f.find(section);
    if (v == nullptr) return 0;
    Fields s{*v, std::string{section}};
    const auto total = s.count("total");
    if (s.error()) f.fail(s.error()->message);
    return total;
  };
  out.cpu_total = total_of("cpu");
  out.memory_total = total_of("memory");
  if (f.error()) return *f.error();
  return out;
}

Result<std::vector<ClusterMember>> parse_cluster_members(const nlohmann::json& metadata) {
  return parse_list<ClusterMember>(
      metadata, "cluster members", [](const nlohmann::json& j, std::size_t i) -> Result<ClusterMember> {
        Fields f{j, entry_what("cluster member", j, i)};
        ClusterMember m;
        m.server_name = f.required_text("server_name");
        m.status = f.text("status");
        m.message = f.text("message");
        m.groups = f.list("groups").value_or(std::vector<std::string>{});
        if (f.error()) return *f.error();
        if (m.server_name.empty())
          return make_error(ErrorKind::protocol, entry_what("cluster member", j, i) + " has an empty server_name");
        return m;
      });
}

Result<Operation> parse_operation(const nlohmann::json& metadata) {
  return operation_at(metadata, "the operation");
}

Result<std::vector<Operation>> parse_operations(const nlohmann::json& metadata) {
  if (!metadata.is_object()) {
    return make_error(ErrorKind::protocol,
                      "the operation list is " + std::string{type_name(metadata)} + ", not an object of groups");
  }
  std::vector<Operation> out;
  for (const auto& item : metadata.items()) {
    const std::string& group = item.key();  // not a structured binding: clang 14 cannot capture one
    const nlohmann::json& ops = item.value();
    if (ops.is_null()) continue;
    auto parsed = parse_list<Operation>(ops, "operations", [&](const nlohmann::json& j, std::size_t i) {
      return operation_at(j, group + " operation #" + std::to_string(i + 1));
    });
    if (!parsed) return parsed.error();
    for (auto& op : *parsed) out.push_back(std::move(op));
  }
  return out;
}

Result<std::vector<std::string>> parse_names(const nlohmann::json& metadata) {
  return parse_list<std::string>(metadata, "URLs", [](const nlohmann::json& j, std::size_t i) -> Result<std::string> {
    if (!j.is_string()) {
      return make_error(ErrorKind::protocol,
                        "entry #" + std::to_string(i + 1) + " is " + std::string{type_name(j)} + ", not a URL");
    }
    return name_from_url(j.get<std::string>(), i);
  });
}

nlohmann::json to_json(const InstancePut& put) {
  return {{"architecture", put.architecture},
          {"config", put.config},
          {"devices", put.devices},
          {"ephemeral", put.ephemeral},
          {"profiles", put.profiles ? nlohmann::json(*put.profiles) : nlohmann::json(nullptr)},
          {"description", put.description}};
}

}  // namespace berth::lxd::wire
