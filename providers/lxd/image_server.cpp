#include "providers/lxd/image_server.hpp"

#include <algorithm>
#include <array>
#include <set>

#include <spdlog/spdlog.h>

#include "engine/config/url.hpp"
#include "engine/util/json_parse.hpp"
#include "providers/lxd/certificate.hpp"
#include "providers/lxd/url.hpp"
#include "providers/lxd/wire.hpp"

namespace berth::lxd {
namespace {

// A products file names as many products files as it likes; a real server lists one or two.
constexpr std::size_t max_products_files = 16;

const nlohmann::json* member(const nlohmann::json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(std::string{key});
  return it == object.end() ? nullptr : &*it;
}

// A string member, or "" when absent, null or of another type (LXD's Go decoder would refuse the
// whole document for a wrong type; skipping the entry is the safer reading for a plan).
std::string text(const nlohmann::json& object, std::string_view key) {
  const auto* v = member(object, key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : std::string{};
}

bool is_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Go's time.Parse("20060102", name[0:8]): a real calendar date.
bool starts_with_date(std::string_view name) {
  if (name.size() < 8 || !is_digits(name.substr(0, 8))) return false;
  const int year = std::stoi(std::string{name.substr(0, 4)});
  const int month = std::stoi(std::string{name.substr(4, 2)});
  const int day = std::stoi(std::string{name.substr(6, 2)});
  if (month < 1 || month > 12 || day < 1) return false;
  static constexpr std::array<int, 12> days = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  const int in_month = days[static_cast<std::size_t>(month - 1)] + (month == 2 && leap ? 1 : 0);
  return day <= in_month;
}

// Types LXD prefers for a host, best first (sort.go); anything else scores as the first.
int type_score(const std::string& type) {
  static constexpr std::array<std::string_view, 5> order = {"squashfs", "root.tar.xz", "disk-kvm.img", "uefi1.img",
                                                            "disk1.img"};
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (order[i] == type) return static_cast<int>(i);
  }
  return 0;
}

// sortedImages.Less: os, release, variant ascending, serial descending, architecture ascending
// (an empty property sorts last), then the preferred type.
bool lxd_order(const StreamImage& a, const StreamImage& b) {
  const std::array<std::pair<const std::string*, const std::string*>, 5> props = {
      {{&a.os, &b.os},
       {&a.release, &b.release},
       {&a.variant, &b.variant},
       {&a.serial, &b.serial},
       {&a.product_architecture, &b.product_architecture}}};
  for (std::size_t i = 0; i < props.size(); ++i) {
    const std::string& x = *props[i].first;
    const std::string& y = *props[i].second;
    if (x == y) continue;
    if (x.empty()) return false;
    if (y.empty()) return true;
    return i == 3 ? x > y : x < y;
  }
  if (a.type != b.type) return type_score(a.type) < type_score(b.type);
  return a.fingerprint < b.fingerprint;  // LXD's order is unspecified here; ours is stable
}

// A path from the index, joined below the server URL's path as LXD's shared.JoinUrls does
// (path.Join). Paths that climb out, or carry a scheme, query or odd characters, are refused.
std::optional<std::string> joined_path(const std::string& base, const std::string& relative) {
  if (relative.empty() || relative.size() > 1024 || relative.find("://") != std::string::npos) return std::nullopt;
  std::vector<std::string> parts;
  auto add = [&](std::string_view path) {
    std::size_t start = 0;
    while (start <= path.size()) {
      const auto end = std::min(path.find('/', start), path.size());
      const std::string_view step = path.substr(start, end - start);
      if (step == "..") return false;
      if (!step.empty() && step != ".") parts.emplace_back(step);
      start = end + 1;
    }
    return true;
  };
  for (const char c : relative) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '?' || c == '#' || c == '\\') return std::nullopt;
  }
  if (!add(base) || !add(relative)) return std::nullopt;
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  return out;
}

Result<nlohmann::json> fetch_json(Client& client, const std::string& target) {
  auto res = client.request_raw(Method::get, target);
  if (!res) return res.error();
  if (res->status != 200) {
    Error e = make_error(ErrorKind::server, "GET " + target + " answered HTTP " + std::to_string(res->status));
    e.http_status = res->status;
    return e;
  }
  auto parsed = util::parse_bounded_json(res->body);
  if (parsed.problem == util::JsonProblem::too_deep) {
    return make_error(ErrorKind::protocol, "GET " + target + ": the answer is nested more than " +
                                               std::to_string(util::max_json_depth) + " levels deep");
  }
  if (parsed.problem != util::JsonProblem::none) {
    return make_error(ErrorKind::protocol, "GET " + target + ": the answer is not JSON");
  }
  return std::move(parsed.value);
}

Result<Client> connect_server(const model::ImageServer& server, const config::ImageServerUrl& url,
                              const Timeouts& timeouts) {
  TlsOptions tls;
  if (server.certificate.empty()) {
    tls.verify_with_system_cas = true;
  } else {
    auto pinned = fingerprint_of_pem(server.certificate);
    if (!pinned) return make_error(ErrorKind::invalid_argument, "its certificate: " + pinned.error().message);
    tls.pinned_fingerprint = *pinned;
  }
  // connect_https takes https://HOST:PORT; the server's path prefixes every request instead.
  config::RemoteUrl remote;
  remote.host = url.host;
  remote.port = url.port;
  return connect_https(remote.to_string(), tls, timeouts);
}

Result<std::vector<StreamImage>> read_stream_images(Client& client, const std::string& base) {
  const std::string index_path = base + "/streams/v1/index.json";
  auto index = fetch_json(client, index_path);
  if (!index) return index.error();
  auto files = parse_stream_index(*index);
  if (!files) return make_error(ErrorKind::protocol, "GET " + index_path + ": " + files.error().message);
  if (files->size() > max_products_files) {
    return make_error(ErrorKind::protocol, "GET " + index_path + ": it lists " + std::to_string(files->size()) +
                                               " products files, more than " + std::to_string(max_products_files));
  }
  std::vector<StreamImage> images;
  for (const auto& file : *files) {
    const auto path = joined_path(base, file);
    if (!path) {
      return make_error(ErrorKind::protocol,
                        "GET " + index_path + ": the products path '" + file + "' is not a path below the server URL");
    }
    auto products = fetch_json(client, *path);
    if (!products) return products.error();
    auto listed = parse_stream_products(*products);
    if (!listed) return make_error(ErrorKind::protocol, "GET " + *path + ": " + listed.error().message);
    images.insert(images.end(), std::make_move_iterator(listed->begin()), std::make_move_iterator(listed->end()));
  }
  return images;
}

Result<std::map<std::string, std::string>> read_simplestreams(Client& client, const std::string& base,
                                                              const model::ServerImageQuery& query) {
  auto images = read_stream_images(client, base);
  if (!images) return images.error();
  auto found = resolve_stream_alias(*images, query.alias, query.server.url);
  if (found.empty()) {
    return make_error(ErrorKind::not_found, "it lists no container image with the alias '" + query.alias + "'");
  }
  return found;
}

Result<std::map<std::string, std::string>> read_lxd_alias(Client& client, const std::string& base,
                                                          const model::ServerImageQuery& query) {
  const std::string target = base + "/1.0/images/aliases/" + path_segment(query.alias);
  auto res = client.get(target);
  if (!res) {
    if (res.error().kind == ErrorKind::server && res.error().http_status == 404) {
      return make_error(ErrorKind::not_found, "it has no public image alias '" + query.alias + "'");
    }
    return res.error();
  }
  auto alias = wire::parse_image_alias(res->metadata);
  if (!alias) return make_error(ErrorKind::protocol, "GET " + target + ": " + alias.error().message);
  if (!config::normalize_image_fingerprint(alias->target)) {
    return make_error(ErrorKind::protocol, "GET " + target + ": the alias's target is not an image fingerprint");
  }
  return std::map<std::string, std::string>{{"", *config::normalize_image_fingerprint(alias->target)}};
}

}  // namespace

std::optional<std::string> lxd_architecture(std::string_view name) {
  // LXD's names and the aliases osarch.ArchitectureId accepts (shared/osarch/architectures.go).
  static const std::map<std::string_view, std::string_view> names = {
      {"i686", "i686"},         {"i386", "i686"},
      {"i586", "i686"},         {"386", "i686"},
      {"x86", "i686"},          {"generic_32", "i686"},
      {"x86_64", "x86_64"},     {"amd64", "x86_64"},
      {"generic_64", "x86_64"}, {"armv6l", "armv6l"},
      {"armel", "armv6l"},      {"arm", "armv6l"},
      {"armv7l", "armv7l"},     {"armhf", "armv7l"},
      {"armhfp", "armv7l"},     {"armv7a_hardfp", "armv7l"},
      {"armv7", "armv7l"},      {"armv7a_vfpv3_hardfp", "armv7l"},
      {"armv8l", "armv8l"},     {"aarch64", "aarch64"},
      {"arm64", "aarch64"},     {"arm64_generic", "aarch64"},
      {"ppc", "ppc"},           {"powerpc", "ppc"},
      {"ppc64", "ppc64"},       {"powerpc64", "ppc64"},
      {"ppc64le", "ppc64le"},   {"ppc64el", "ppc64le"},
      {"s390x", "s390x"},       {"mips", "mips"},
      {"mipsel", "mips"},       {"mips64", "mips64"},
      {"mips64el", "mips64"},   {"riscv32", "riscv32"},
      {"riscv64", "riscv64"}};
  const auto it = names.find(name);
  if (it == names.end()) return std::nullopt;
  return std::string{it->second};
}

Result<std::vector<std::string>> parse_stream_index(const nlohmann::json& index) {
  const auto* entries = member(index, "index");
  if (entries == nullptr || !entries->is_object()) {
    return make_error(ErrorKind::protocol, "not a simplestreams index: it has no \"index\" object");
  }
  std::vector<std::string> paths;
  std::set<std::string> seen;
  for (const auto& [name, entry] : entries->items()) {
    if (text(entry, "datatype") != "image-downloads") continue;
    const auto* products = member(entry, "products");
    // LXD skips an entry with no products: it would list no image.
    if (products == nullptr || !products->is_array() || products->empty()) continue;
    const std::string path = text(entry, "path");
    if (path.empty()) return make_error(ErrorKind::protocol, "index entry '" + name + "' has no path");
    if (seen.insert(path).second) paths.push_back(path);
  }
  return paths;
}

Result<std::vector<StreamImage>> parse_stream_products(const nlohmann::json& document) {
  const auto* products = member(document, "products");
  if (products == nullptr || !products->is_object()) {
    return make_error(ErrorKind::protocol, "not a simplestreams products file: it has no \"products\" object");
  }
  std::vector<StreamImage> images;
  for (const auto& [product_name, product] : products->items()) {
    const auto architecture = lxd_architecture(text(product, "arch"));
    if (!architecture) continue;  // LXD skips architectures it does not know
    const auto* versions = member(product, "versions");
    if (versions == nullptr || !versions->is_object()) continue;
    std::vector<std::string> aliases;
    const std::string alias_list = text(product, "aliases");
    for (std::size_t start = 0; !alias_list.empty() && start <= alias_list.size();) {
      const auto comma = std::min(alias_list.find(',', start), alias_list.size());
      aliases.push_back(alias_list.substr(start, comma - start));
      start = comma + 1;
    }
    for (const auto& [version_name, version] : versions->items()) {
      if (!starts_with_date(version_name)) continue;
      const auto* items = member(version, "items");
      if (items == nullptr || !items->is_object()) continue;
      StreamImage base;
      base.architecture = *architecture;
      base.product_architecture = text(product, "arch");
      base.os = text(product, "os");
      base.release = text(product, "release");
      base.variant = text(product, "variant");
      base.serial = version_name;
      base.aliases = aliases;
      for (const auto& [item_name, item] : items->items()) {
        const std::string ftype = text(item, "ftype");
        if (text(item, "path").empty()) continue;  // "Missing path field on metadata entry"
        if (ftype == "lxd_combined.tar.gz") {
          StreamImage image = base;
          image.type = "tar.gz";
          image.fingerprint = text(item, "sha256");
          if (!image.fingerprint.empty()) images.push_back(std::move(image));
          continue;
        }
        if (ftype != "lxd.tar.xz") continue;
        // Each root file beside the metadata makes one image (VM disks are not containers).
        for (const auto& [root_name, root] : items->items()) {
          const std::string root_type = text(root, "ftype");
          StreamImage image = base;
          image.type = root_type;
          if (root_type == "squashfs") {
            image.fingerprint = text(item, "combined_squashfs_sha256");
          } else if (root_type == "root.tar.xz") {
            image.fingerprint = text(item, "combined_rootxz_sha256");
            if (image.fingerprint.empty()) image.fingerprint = text(item, "combined_sha256");
          } else {
            continue;
          }
          if (!image.fingerprint.empty()) images.push_back(std::move(image));
        }
      }
    }
  }
  return images;
}

std::map<std::string, std::string> resolve_stream_alias(const std::vector<StreamImage>& images,
                                                        const std::string& alias, const std::string& server_url) {
  std::vector<const StreamImage*> sorted;
  sorted.reserve(images.size());
  for (const auto& image : images) sorted.push_back(&image);
  std::sort(sorted.begin(), sorted.end(), [](const StreamImage* a, const StreamImage* b) { return lxd_order(*a, *b); });
  // applyAliases: only "ubuntu" is a default OS, on Ubuntu's own server.
  const bool ubuntu = server_url.starts_with("https://cloud-images.ubuntu.com");
  std::map<std::string, std::string> out;
  for (const StreamImage* image : sorted) {
    if (out.contains(image->architecture)) continue;  // an earlier image took this alias for this architecture
    for (const auto& entry : image->aliases) {
      std::string name = entry;
      if (ubuntu && name.starts_with("ubuntu/")) name = name.substr(7);
      std::string medium = entry + "/" + image->product_architecture;
      if (ubuntu && medium.starts_with("ubuntu/")) medium = medium.substr(7);
      if (name == alias || medium == alias) {
        auto fingerprint = config::normalize_image_fingerprint(image->fingerprint);
        if (fingerprint) out.emplace(image->architecture, std::move(*fingerprint));
        break;
      }
    }
  }
  return out;
}

std::string server_image_problem(const model::ServerImageQuery& query, const std::string& fingerprint,
                                 const Timeouts& timeouts) {
  const std::string who = "image server " + query.server.url + ", image " + fingerprint;
  try {
    const auto url = config::parse_image_server_url(query.server.url);
    if (!url.url) return who + ": invalid URL: " + url.problem;
    auto client = connect_server(query.server, *url.url, timeouts);
    if (!client) return who + ": " + client.error().message;
    if (query.server.protocol == model::ImageProtocol::lxd) {
      auto res = client->get(url.url->path + "/1.0/images/" + path_segment(fingerprint));
      if (res) return {};
      if (res.error().kind == ErrorKind::server && res.error().http_status == 404) {
        return who + ": it has no such public image";
      }
      return who + ": " + res.error().message;
    }
    auto images = read_stream_images(*client, url.url->path);
    if (!images) return who + ": " + images.error().message;
    const bool listed =
        std::any_of(images->begin(), images->end(), [&](const StreamImage& i) { return i.fingerprint == fingerprint; });
    return listed ? std::string{} : who + ": it lists no such container image";
  } catch (const std::exception& e) {
    return who + ": internal error: " + e.what();
  }
}

model::ServerImage read_server_image(const model::ServerImageQuery& query, const Timeouts& timeouts) {
  model::ServerImage result;
  const std::string who = "image server " + query.server.url + ", alias '" + query.alias + "'";
  try {
    const auto url = config::parse_image_server_url(query.server.url);
    if (!url.url) {
      result.error = who + ": invalid URL: " + url.problem;
      return result;
    }
    auto client = connect_server(query.server, *url.url, timeouts);
    if (!client) {
      result.error = who + ": " + client.error().message;
      return result;
    }
    auto found = query.server.protocol == model::ImageProtocol::lxd ? read_lxd_alias(*client, url.url->path, query)
                                                                    : read_simplestreams(*client, url.url->path, query);
    if (!found) {
      result.error = who + ": " + found.error().message;
      return result;
    }
    result.fingerprints = std::move(*found);
  } catch (const std::exception& e) {
    // A bug, or memory exhausted by an answer: this image does not resolve, the plan goes on.
    result.error = who + ": internal error: " + e.what();
  }
  spdlog::debug("{}: {}", who, result.error.empty() ? "resolved" : result.error);
  return result;
}

}  // namespace berth::lxd
