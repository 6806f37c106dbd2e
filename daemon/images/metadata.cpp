#include "daemon/images/metadata.hpp"

#include <archive_entry.h>
#include <yaml-cpp/yaml.h>

#include <array>
#include <charconv>
#include <string_view>

#include "daemon/images/files.hpp"
#include "daemon/images/tarball.hpp"

namespace berth::daemon {

namespace {

using lxd::ErrorKind;
using lxd::make_error;

constexpr std::size_t kMetadataLimit = std::size_t{1} << 20;

lxd::Error invalid(const std::string& message) {
  return make_error(ErrorKind::invalid_argument, message);
}

// LXD's architecture names and the aliases it accepts for them (shared/osarch/architectures.go).
bool known_architecture(std::string_view name) {
  static constexpr std::array<std::string_view, 34> kNames = {
      "i686",  "x86_64",        "armv6l",  "armv7l",    "armv8l",        "aarch64", "ppc",
      "ppc64", "ppc64le",       "s390x",   "mips",      "mips64",        "riscv32", "riscv64",
      "i386",  "i586",          "386",     "x86",       "generic_32",    "amd64",   "generic_64",
      "armel", "arm",           "armhf",   "armhfp",    "armv7a_hardfp", "armv7",   "armv7a_vfpv3_hardfp",
      "arm64", "arm64_generic", "powerpc", "powerpc64", "ppc64el",       "mipsel"};
  for (const auto known : kNames) {
    if (known == name) return true;
  }
  return name == "mips64el";
}

std::optional<std::int64_t> to_int64(const std::string& text) {
  std::int64_t value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

// How much of metadata.yaml's templates is converted to JSON: aliases (*name) share one node in
// yaml-cpp but are copied here, so a few hundred bytes of nested aliases would expand to billions
// of values; and the conversion recurses once per level. Real templates are a handful of small maps.
constexpr std::size_t kMaxTemplateValues = 100'000;
constexpr std::size_t kMaxTemplateDepth = 32;

// A YAML node as JSON: plain scalars that read as booleans or integers become those, the rest
// strings. nullopt once `budget` values are used up or the nesting is deeper than kMaxTemplateDepth.
std::optional<nlohmann::json> to_json(const YAML::Node& node, std::size_t& budget, std::size_t depth = 0) {
  if (budget == 0 || depth > kMaxTemplateDepth) return std::nullopt;
  --budget;
  switch (node.Type()) {
    case YAML::NodeType::Sequence: {
      auto out = nlohmann::json::array();
      for (const auto& item : node) {
        auto value = to_json(item, budget, depth + 1);
        if (!value) return std::nullopt;
        out.push_back(std::move(*value));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      auto out = nlohmann::json::object();
      for (const auto& item : node) {
        auto value = to_json(item.second, budget, depth + 1);
        if (!value) return std::nullopt;
        out[item.first.as<std::string>()] = std::move(*value);
      }
      return out;
    }
    case YAML::NodeType::Scalar: {
      const auto& text = node.Scalar();
      if (node.Tag() == "?") {  // plain, not quoted
        if (text == "true") return true;
        if (text == "false") return false;
        if (auto number = to_int64(text)) return *number;
      }
      return text;
    }
    default: return nlohmann::json(nullptr);
  }
}

lxd::Result<std::int64_t> date_field(const YAML::Node& root, const char* key) {
  const auto node = root[key];
  std::optional<std::int64_t> value;
  if (node.IsScalar()) value = to_int64(node.Scalar());
  if (!value) return invalid(std::string{"metadata.yaml: "} + key + " is not a whole number of seconds");
  return *value;
}

lxd::Result<ImageMetadata> parse_root(const YAML::Node& root) {
  if (!root.IsMap()) return invalid("metadata.yaml is not a mapping of keys to values");
  ImageMetadata out;
  const auto arch = root["architecture"];
  if (!arch || !arch.IsScalar() || arch.Scalar().empty()) {
    return invalid("metadata.yaml has no architecture (write e.g. \"architecture: x86_64\")");
  }
  out.architecture = arch.Scalar();
  if (!known_architecture(out.architecture)) {
    return invalid("metadata.yaml: unknown architecture \"" + out.architecture +
                   "\" (LXD's names: x86_64, aarch64, ...)");
  }
  if (!root["creation_date"]) return invalid("metadata.yaml has no creation_date (unix seconds)");
  auto created = date_field(root, "creation_date");
  if (!created) return created.error();
  if (*created == 0) return invalid("metadata.yaml: creation_date is 0 (LXD requires one)");
  out.creation_date = *created;
  if (root["expiry_date"]) {
    auto expiry = date_field(root, "expiry_date");
    if (!expiry) return expiry.error();
    out.expiry_date = *expiry;
  }
  if (const auto properties = root["properties"]; properties && !properties.IsNull()) {
    if (!properties.IsMap()) return invalid("metadata.yaml: properties is not a mapping");
    for (const auto& item : properties) {
      if (!item.second.IsScalar()) {
        return invalid("metadata.yaml: property " + item.first.Scalar() + " is not a single value");
      }
      out.properties[item.first.Scalar()] = item.second.Scalar();
    }
  }
  if (const auto templates = root["templates"]; templates && !templates.IsNull()) {
    if (!templates.IsMap()) return invalid("metadata.yaml: templates is not a mapping of paths to templates");
    std::size_t budget = kMaxTemplateValues;
    for (const auto& item : templates) {
      auto value = to_json(item.second, budget);
      if (!value) return invalid("metadata.yaml: the templates are too large or too deeply nested");
      out.templates[item.first.Scalar()] = std::move(*value);
    }
  }
  return out;
}

bool is_name(std::string_view entry, std::string_view name) {
  if (entry.starts_with("./")) entry.remove_prefix(2);
  return entry == name;
}

bool is_under(std::string_view entry, std::string_view dir) {
  if (entry.starts_with("./")) entry.remove_prefix(2);
  return entry.starts_with(dir) && entry.size() > dir.size() && entry[dir.size()] == '/';
}

}  // namespace

lxd::Result<ImageMetadata> parse_image_metadata(const std::string& yaml) {
  try {
    return parse_root(YAML::Load(yaml));
  } catch (const YAML::Exception& e) {  // yaml-cpp reports malformed input only by throwing
    return invalid(std::string{"metadata.yaml is not valid YAML: "} + e.what());
  }
}

lxd::Result<std::string> published_metadata(const std::optional<std::string>& existing, const std::string& architecture,
                                            std::int64_t now,
                                            const std::optional<std::map<std::string, std::string>>& properties) {
  const auto property_node = [&properties] {
    YAML::Node node(YAML::NodeType::Map);
    if (properties) {
      for (const auto& [k, v] : *properties) node[k] = v;
    }
    return node;
  };
  try {
    YAML::Node root;
    if (existing) {
      root = YAML::Load(*existing);
      if (!root.IsMap()) return invalid("the instance's metadata.yaml is not a mapping");
      if (properties) root["properties"] = property_node();
    } else {
      root["architecture"] = architecture;
      root["creation_date"] = now;
      root["properties"] = property_node();
    }
    YAML::Emitter out;
    out << root;
    return std::string{out.c_str()} + "\n";
  } catch (const YAML::Exception& e) {  // yaml-cpp reports malformed input only by throwing
    return invalid(std::string{"the instance's metadata.yaml is not valid YAML: "} + e.what());
  }
}

lxd::Result<ImageFile> read_image_file(const std::filesystem::path& tarball, TarballRole role, ReadExtent extent,
                                       images::Sha256* hash) {
  const std::string what = role == TarballRole::unified ? "image tarball" : "metadata tarball";
  auto reader = images::TarReader::open(tarball, what, hash);
  if (!reader) return reader.error();
  std::optional<lxd::Result<ImageMetadata>> metadata;
  bool rootfs = false;
  bool vm = false;
  for (;;) {
    auto entry = reader->next();
    if (!entry) return entry.error();
    if (*entry == nullptr) break;
    const std::string_view name = archive_entry_pathname(*entry) ? archive_entry_pathname(*entry) : "";
    if (!metadata && is_name(name, "metadata.yaml")) {
      auto text = reader->read_data(kMetadataLimit);
      if (!text) return text.error();
      metadata = parse_image_metadata(*text);
      if (!*metadata) return metadata->error();
    }
    rootfs = rootfs || is_under(name, "rootfs") || is_name(name, "rootfs");
    vm = vm || is_name(name, "rootfs.img");
    const bool found = metadata && (rootfs || role == TarballRole::split_metadata);
    if (found && extent == ReadExtent::until_found) break;
  }
  if (!metadata) return invalid("the " + what + " has no metadata.yaml: it is not an LXD image");
  if (role == TarballRole::unified && !rootfs) {
    return invalid(vm ? "image tarball holds rootfs.img, a virtual-machine image; berthd runs containers only"
                      : std::string{"the image tarball has no rootfs/ directory"});
  }
  if (extent == ReadExtent::until_found) return ImageFile{std::move(**metadata), 0};
  auto size = reader->drain();
  if (!size) return size.error();
  return ImageFile{std::move(**metadata), *size};
}

}  // namespace berth::daemon
