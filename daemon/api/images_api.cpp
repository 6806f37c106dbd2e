#include "daemon/api/images_api.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <sstream>

#include <spdlog/spdlog.h>

#include "daemon/api/instances_api.hpp"
#include "daemon/api/requests.hpp"
#include "daemon/api/response.hpp"
#include "daemon/images/image_pull.hpp"
#include "daemon/images/multipart.hpp"
#include "engine/util/time.hpp"

namespace berth::daemon::api {
namespace {

using lxd::ErrorKind;
using Op = DocumentChange::Op;

// A metadata.yaml date as RFC 3339, clamped to 1970-2199: what the clock type holds without
// overflow (nanoseconds since 1970) and Go parses.
std::string rfc3339_of_unix(std::int64_t seconds) {
  constexpr std::int64_t first = 0;
  constexpr std::int64_t last = 7258118399;  // 2199-12-31T23:59:59Z
  seconds = std::clamp(seconds, first, last);
  return util::rfc3339_utc(std::chrono::system_clock::time_point{std::chrono::seconds{seconds}});
}

// Writes an upload to a fresh file of the store's; the path, or an error.
Result<std::filesystem::path> save_upload(const ImageStore& images, const std::string& body) {
  const auto path = images.temp_path();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return lxd::make_error(ErrorKind::io, "cannot write the upload to " + path.string());
  std::size_t done = 0;
  while (done < body.size()) {
    const auto n = ::write(fd, body.data() + done, body.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      ::unlink(path.c_str());
      return lxd::make_error(ErrorKind::io, "cannot write the upload to " + path.string() + " (disk full?)");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) {
    ::unlink(path.c_str());
    return lxd::make_error(ErrorKind::io, "cannot write the upload to " + path.string());
  }
  return path;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class ImageRoutes {
 public:
  ImageRoutes(ImageStore& images, Operations& operations, Database& db, ImagePublisher publish)
      : images_(images), operations_(operations), db_(db), publish_(std::move(publish)) {}

  // The image's fingerprint from a full one or a unique prefix.
  Result<std::string> resolve(const std::string& prefix) const {
    if (prefix.empty() || prefix.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return lxd::make_error(ErrorKind::not_found, "Image not found");
    }
    auto docs = db_.documents(DocumentKind::image, prefix);
    if (!docs) return docs.error();
    if (docs->empty()) return lxd::make_error(ErrorKind::not_found, "Image not found");
    if (docs->size() > 1) return lxd::make_error(ErrorKind::invalid_argument, "More than one image matches");
    return docs->front().key;
  }

  Result<nlohmann::json> render(const std::string& fingerprint) const {
    auto doc = db_.document(DocumentKind::image, fingerprint);
    if (!doc) return doc.error();
    if (!doc->has_value()) return lxd::make_error(ErrorKind::not_found, "Image not found");
    nlohmann::json out = **doc;
    nlohmann::json aliases = nlohmann::json::array();
    auto all = db_.documents(DocumentKind::image_alias);
    if (!all) return all.error();
    for (const auto& a : *all) {
      if (a.body.value("target", "") == fingerprint) {
        aliases.push_back({{"name", a.key}, {"description", a.body.value("description", "")}});
      }
    }
    out["aliases"] = aliases;
    return out;
  }

  // Whether the caller may see the image: a trusted one always; an untrusted one when it is public
  // or the request carries a secret of POST /1.0/images/FP/secret for it (which this uses up).
  bool readable(const Call& call, const std::string& fingerprint, const nlohmann::json& object) const {
    if (call.trusted || object.value("public", false)) return true;
    const auto secret = call.query.find("secret");
    return secret != call.query.end() &&
           operations_.consume_token(TokenKind::image_download, secret->second, "/1.0/images/" + fingerprint);
  }

  http::Response list(const Call& call) const {
    auto docs = db_.documents(DocumentKind::image);
    if (!docs) return error_response(docs.error());
    const auto filter_it = call.query.find("filter");
    const std::string filter = filter_it == call.query.end() ? "" : filter_it->second;
    nlohmann::json out = nlohmann::json::array();
    for (const auto& d : *docs) {
      auto object = render(d.key);
      if (!object) continue;
      if (!call.trusted && !object->value("public", false)) continue;
      if (!filter.empty()) {
        std::string error;
        const auto matches = filter_matches(filter, *object, error);
        if (!matches) return error_response(400, error);
        if (!*matches) continue;
      }
      if (call.recursion() == 0) {
        out.push_back("/1.0/images/" + d.key);
      } else {
        out.push_back(std::move(*object));
      }
    }
    return sync_response(out);
  }

  http::Response create(const Call& call) const {
    const auto& request = call.request;
    const auto content_type = request.header("Content-Type");
    if (content_type.rfind("application/json", 0) == 0) return create_json(call);
    std::optional<std::string> expected;
    if (auto fp = request.header("X-LXD-fingerprint"); !fp.empty()) expected = fp;
    std::map<std::string, std::string> extra_properties;
    if (auto header = request.header("X-LXD-properties"); !header.empty()) {
      auto parsed = parse_properties_header(header);
      if (!parsed) return error_response(parsed.error());
      extra_properties = std::move(*parsed);
    }
    const std::string filename = request.header("X-LXD-filename");
    const bool is_public = header_truthy(request.header("X-LXD-public"));
    if (request.body.empty()) return error_response(400, "No image in the request body");

    auto saved = save_upload(images_, request.body);
    if (!saved) return error_response(saved.error());
    const bool multipart = content_type.rfind("multipart/form-data", 0) == 0;
    const auto body_path = *saved;
    // The task holds the store and the database (which outlive the operations), not this.
    auto work = [&images = images_, &db = db_, body_path, multipart, content_type, expected, extra_properties, filename,
                 is_public]() -> Result<nlohmann::json> {
      Result<StoredImage> stored = lxd::make_error(ErrorKind::io, "no image");
      if (multipart) {
        auto parts = split_multipart(body_path, content_type, images.dir());
        std::error_code ignored;
        std::filesystem::remove(body_path, ignored);
        if (!parts) return parts.error();
        stored = images.import_split(parts->first, parts->second, expected);
      } else {
        stored = images.import_unified(body_path, expected);
      }
      if (!stored) return stored.error();
      return record(images, db, *stored, filename, is_public, false, extra_properties);
    };
    return async_response(operations_.add_task("Downloading image", nlohmann::json::object(), std::move(work)));
  }

  // An ImagesPost with a JSON body: `lxc image copy SRC:IMG berthd:` (source type "image", mode
  // "pull": the image from another server) or `lxc publish` (source type "instance", "container"
  // or "snapshot"), with the aliases, properties and flags the request adds.
  http::Response create_json(const Call& call) const {
    std::string error;
    auto body = call.json_object(error);
    if (!body) return error_response(400, error);
    auto request = parse_image_create(*body);
    if (!request) return error_response(request.error());
    FetchOptions options;
    options.is_public = request->is_public;
    options.filename = request->filename;
    const auto& properties = request->properties;
    const auto& aliases = request->aliases;
    // Makes the image, then its aliases; the operation's metadata is what lxc reads.
    using Make = std::function<Result<std::string>()>;
    const auto task = [this, aliases](Make make) {
      auto work = [&db = db_, make = std::move(make), aliases]() -> Result<nlohmann::json> {
        auto fingerprint = make();
        if (!fingerprint) return fingerprint.error();
        if (auto added = add_aliases(db, *fingerprint, aliases); !added) return added.error();
        auto doc = db.document(DocumentKind::image, *fingerprint);
        const auto size = doc && doc->has_value() ? (**doc).value("size", std::uint64_t{0}) : 0;
        return nlohmann::json{{"fingerprint", *fingerprint}, {"size", std::to_string(size)}};
      };
      return async_response(operations_.add_task("Downloading image", nlohmann::json::object(), std::move(work)));
    };

    if (request->pull) {
      if (properties) options.properties = *properties;
      return task([&images = images_, &db = db_, pull = std::move(*request->pull), options] {
        return fetch_image(images, db, pull, options);
      });
    }
    return task([&images = images_, &db = db_, publish = publish_, instance = request->instance,
                 snapshot = request->snapshot, properties, options]() -> Result<std::string> {
      auto stored = publish(instance, snapshot, properties);
      if (!stored) return stored.error();
      auto recorded = record(images, db, *stored, options.filename, options.is_public, false, {});
      if (!recorded) return recorded.error();
      return stored->fingerprint;
    });
  }

  static Result<void> add_aliases(Database& db, const std::string& fingerprint,
                                  const std::vector<std::pair<std::string, std::string>>& aliases) {
    for (const auto& [name, description] : aliases) {
      nlohmann::json doc{{"name", name}, {"description", description}, {"target", fingerprint}, {"type", "container"}};
      if (auto stored = db.change({{Op::insert, DocumentKind::image_alias, name, doc, {}}}); !stored) {
        if (stored.error().kind == ErrorKind::conflict) {
          return lxd::make_error(ErrorKind::conflict, "Alias \"" + name + "\" already exists");
        }
        return stored.error();
      }
    }
    return {};
  }

  // POST /1.0/images/FP/secret: a token operation whose secret lets one untrusted download read
  // this image (its object, then its export), as a launch or copy on another server needs.
  http::Response make_secret(const Call& call) const {
    auto fp = resolve(call.params.at("fingerprint"));
    if (!fp) return error_response(fp.error());
    return async_response(operations_.add_token(TokenKind::image_download, "Image download token",
                                                {{"secret", random_secret()}}, {{"images", {"/1.0/images/" + *fp}}}));
  }

  // The image's document, once its files are in; the files go again if it cannot be stored.
  static Result<nlohmann::json> record(ImageStore& images, Database& db, const StoredImage& image,
                                       const std::string& filename, bool is_public, bool cached,
                                       const std::map<std::string, std::string>& extra_properties) {
    auto properties = image.metadata.properties;
    for (const auto& [k, v] : extra_properties) properties[k] = v;
    const auto now = util::rfc3339_utc(std::chrono::system_clock::now());
    nlohmann::json doc{{"fingerprint", image.fingerprint},
                       {"filename", filename},
                       {"size", image.size},
                       {"architecture", image.metadata.architecture},
                       {"type", "container"},
                       {"public", is_public},
                       {"auto_update", false},
                       {"cached", cached},
                       {"created_at", rfc3339_of_unix(image.metadata.creation_date)},
                       {"uploaded_at", now},
                       {"expires_at", image.metadata.expiry_date ? rfc3339_of_unix(*image.metadata.expiry_date)
                                                                 : std::string{"0001-01-01T00:00:00Z"}},
                       {"last_used_at", "0001-01-01T00:00:00Z"},
                       {"properties", properties},
                       {"profiles", {"default"}}};
    if (auto stored = db.change({{Op::insert, DocumentKind::image, image.fingerprint, doc, {}}}); !stored) {
      if (stored.error().kind != ErrorKind::conflict) {
        if (auto removed = images.remove(image.fingerprint); !removed) {
          spdlog::error("api: image {}: {}", image.fingerprint, removed.error().message);
        }
      }
      return stored.error();
    }
    return nlohmann::json{{"fingerprint", image.fingerprint}, {"size", std::to_string(image.size)}};
  }

  http::Response get(const Call& call) const {
    auto fp = resolve(call.params.at("fingerprint"));
    if (!fp) return error_response(fp.error());
    auto object = render(*fp);
    if (!object) return error_response(object.error());
    if (!readable(call, *fp, *object)) return error_response(404, "Image not found");
    return sync_response(*object, etag_of(nlohmann::json{{"auto_update", (*object)["auto_update"]},
                                                         {"properties", (*object)["properties"]},
                                                         {"public", (*object)["public"]},
                                                         {"profiles", (*object)["profiles"]},
                                                         {"expires_at", (*object)["expires_at"]}}));
  }

  http::Response update(const Call& call, bool patch) const {
    auto fp = resolve(call.params.at("fingerprint"));
    if (!fp) return error_response(fp.error());
    std::string error;
    auto body = call.json_object(error);
    if (!body) return error_response(400, error);
    auto doc = db_.document(DocumentKind::image, *fp);
    if (!doc) return error_response(doc.error());
    if (!doc->has_value()) return error_response(404, "Image not found");
    auto next = apply_image_put(**doc, *body, patch);
    if (!next) return error_response(next.error());
    if (auto stored = db_.change({{Op::replace, DocumentKind::image, *fp, *next, {}}}); !stored) {
      return error_response(stored.error());
    }
    return sync_response(nullptr);
  }

  http::Response remove(const Call& call) const {
    auto fp = resolve(call.params.at("fingerprint"));
    if (!fp) return error_response(fp.error());
    const std::string fingerprint = *fp;
    auto work = [&images = images_, &db = db_, fingerprint]() -> Result<nlohmann::json> {
      std::vector<DocumentChange> changes{{Op::remove, DocumentKind::image, fingerprint, nullptr, {}}};
      auto aliases = db.documents(DocumentKind::image_alias);
      if (!aliases) return aliases.error();
      for (const auto& a : *aliases) {
        if (a.body.value("target", "") == fingerprint) {
          changes.push_back({Op::remove, DocumentKind::image_alias, a.key, nullptr, {}});
        }
      }
      // The record first: an image whose files outlive it is cleaned up; one without files is not.
      if (auto stored = db.change(changes); !stored) return stored.error();
      if (auto removed = images.remove(fingerprint); !removed && removed.error().kind != ErrorKind::not_found) {
        return removed.error();
      }
      return nlohmann::json::object();
    };
    return async_response(
        operations_.add_task("Deleting image", {{"images", {"/1.0/images/" + fingerprint}}}, std::move(work)));
  }

  http::Response export_image(const Call& call) const {
    auto fp = resolve(call.params.at("fingerprint"));
    if (!fp) return error_response(fp.error());
    auto doc = db_.document(DocumentKind::image, *fp);
    if (!doc) return error_response(doc.error());
    if (!doc->has_value() || !readable(call, *fp, **doc)) return error_response(404, "Image not found");
    const auto files = images_.files(*fp);
    if (files.empty()) return error_response(404, "Image files not found");
    // Named as LXD names them, from the fingerprint: never the recorded filename, which an upload
    // or another server chose and lxc would write to (a "../" in it would leave the target dir).
    http::Response r;
    if (files.size() == 1) {
      r.content_type = "application/octet-stream";
      r.body = read_file(files[0]);
      r.headers.emplace_back("Content-Disposition", "attachment; filename=" + *fp + export_extension(files[0]));
      return r;
    }
    // A split image goes out as LXD sends it: multipart with the metadata part, then the rootfs.
    const std::string boundary = "berthd-" + random_secret().substr(0, 32);
    std::string body;
    const auto part = [&](const std::string& name, const std::string& filename, const std::filesystem::path& path) {
      body += "--" + boundary + "\r\n";
      body += "Content-Disposition: form-data; name=\"" + name + "\"; filename=\"" + filename +
              "\"\r\nContent-Type: application/octet-stream\r\n\r\n";
      body += read_file(path);
      body += "\r\n";
    };
    part("metadata", "meta-" + *fp + export_extension(files[0]), files[0]);
    part("rootfs", *fp + export_extension(files[1]), files[1]);
    body += "--" + boundary + "--\r\n";
    r.content_type = "multipart/form-data; boundary=" + boundary;
    r.body = std::move(body);
    return r;
  }

  // ---- aliases ----
  // An untrusted caller sees the aliases of public images only.
  bool alias_visible(const Call& call, const nlohmann::json& alias) const {
    if (call.trusted) return true;
    auto image = db_.document(DocumentKind::image, alias.value("target", ""));
    return image && image->has_value() && (**image).value("public", false);
  }

  http::Response list_aliases(const Call& call) const {
    auto docs = db_.documents(DocumentKind::image_alias);
    if (!docs) return error_response(docs.error());
    nlohmann::json out = nlohmann::json::array();
    for (const auto& d : *docs) {
      if (!alias_visible(call, d.body)) continue;
      if (call.recursion() == 0) {
        out.push_back("/1.0/images/aliases/" + d.key);
      } else {
        out.push_back(d.body);
      }
    }
    return sync_response(out);
  }

  http::Response add_alias(const Call& call) const {
    std::string error;
    auto body = call.json_object(error);
    if (!body) return error_response(400, error);
    const auto request = parse_alias(*body, true);
    if (!request) return error_response(request.error());
    const std::string& name = request->name;
    auto fp = resolve(request->target.value_or(""));
    if (!fp) return error_response(fp.error());
    nlohmann::json doc{
        {"name", name}, {"description", request->description.value_or("")}, {"target", *fp}, {"type", "container"}};
    if (auto stored = db_.change({{Op::insert, DocumentKind::image_alias, name, doc, {}}}); !stored) {
      if (stored.error().kind == ErrorKind::conflict)
        return error_response(409, "Alias \"" + name + "\" already exists");
      return error_response(stored.error());
    }
    return sync_response(nullptr, {}, "/1.0/images/aliases/" + name);
  }

  http::Response get_alias(const Call& call) const {
    auto doc = db_.document(DocumentKind::image_alias, call.params.at("name"));
    if (!doc) return error_response(doc.error());
    if (!doc->has_value() || !alias_visible(call, **doc)) return error_response(404, "Alias not found");
    return sync_response(**doc, etag_of(**doc));
  }

  http::Response update_alias(const Call& call, bool patch) const {
    const auto& name = call.params.at("name");
    std::string error;
    auto body = call.json_object(error);
    if (!body) return error_response(400, error);
    const auto request = parse_alias(*body, false);
    if (!request) return error_response(request.error());
    auto doc = db_.document(DocumentKind::image_alias, name);
    if (!doc) return error_response(doc.error());
    if (!doc->has_value()) return error_response(404, "Alias not found");
    nlohmann::json next = **doc;
    if (request->target || !patch) {
      auto fp = resolve(request->target.value_or(""));
      if (!fp) return error_response(fp.error());
      next["target"] = *fp;
    }
    if (request->description || !patch) next["description"] = request->description.value_or("");
    if (auto stored = db_.change({{Op::replace, DocumentKind::image_alias, name, next, {}}}); !stored) {
      return error_response(stored.error());
    }
    return sync_response(nullptr);
  }

  http::Response rename_alias(const Call& call) const {
    const auto& name = call.params.at("name");
    std::string error;
    auto body = call.json_object(error);
    if (!body) return error_response(400, error);
    const auto request = parse_alias(*body, true);
    if (!request) return error_response(request.error());
    const std::string& to = request->name;
    auto doc = db_.document(DocumentKind::image_alias, name);
    if (!doc) return error_response(doc.error());
    if (!doc->has_value()) return error_response(404, "Alias not found");
    nlohmann::json next = **doc;
    next["name"] = to;
    if (auto stored = db_.change({{Op::remove, DocumentKind::image_alias, name, nullptr, {}},
                                  {Op::insert, DocumentKind::image_alias, to, next, {}}});
        !stored) {
      if (stored.error().kind == ErrorKind::conflict) return error_response(409, "Alias \"" + to + "\" already exists");
      return error_response(stored.error());
    }
    return sync_response(nullptr, {}, "/1.0/images/aliases/" + to);
  }

  http::Response remove_alias(const Call& call) const {
    const auto& name = call.params.at("name");
    if (auto stored = db_.change({{Op::remove, DocumentKind::image_alias, name, nullptr, {}}}); !stored) {
      if (stored.error().kind == ErrorKind::not_found) return error_response(404, "Alias not found");
      return error_response(stored.error());
    }
    return sync_response(nullptr);
  }

 private:
  ImageStore& images_;
  Operations& operations_;
  Database& db_;
  ImagePublisher publish_;
};

}  // namespace

Result<std::string> fetch_image(ImageStore& images, Database& db, const PullSource& source,
                                const FetchOptions& options) {
  const auto have = [&db](const std::string& fingerprint) {
    auto doc = db.document(DocumentKind::image, fingerprint);
    return doc && doc->has_value();
  };
  auto pulled = pull_image(images, source, have);
  if (!pulled) return pulled.error();
  if (!pulled->stored) return pulled->fingerprint;
  // What the server says about the image (its properties as edited there, its file name) over
  // what the image's metadata.yaml says; the request's properties over both.
  std::map<std::string, std::string> properties;
  if (const auto it = pulled->info.find("properties"); it != pulled->info.end() && it->is_object()) {
    for (const auto& [k, v] : it->items()) {
      if (v.is_string()) properties[k] = v.get<std::string>();
    }
  }
  for (const auto& [k, v] : options.properties) properties[k] = v;
  std::string filename = options.filename;
  if (filename.empty() && pulled->info.contains("filename") && pulled->info["filename"].is_string()) {
    filename = pulled->info["filename"].get<std::string>();
  }
  auto recorded =
      ImageRoutes::record(images, db, *pulled->stored, filename, options.is_public, options.cached, properties);
  // Recorded meanwhile by another download of the same image: that is the image wanted.
  if (!recorded && recorded.error().kind != ErrorKind::conflict) return recorded.error();
  return pulled->fingerprint;
}

const std::vector<std::string>& image_extensions() {
  static const std::vector<std::string> list = {"image_create_aliases"};
  return list;
}

void add_image_routes(Router& router, ImageStore& images, Operations& operations, Database& db,
                      ImagePublisher publish) {
  auto routes = std::make_shared<ImageRoutes>(images, operations, db, std::move(publish));
  const auto bind = [routes](http::Response (ImageRoutes::*method)(const Call&) const) {
    return [routes, method](const Call& call) { return ((*routes).*method)(call); };
  };
  // Untrusted callers see public images, and a private one with its download secret.
  router.add("/1.0/images", "GET", Access::untrusted, bind(&ImageRoutes::list));
  router.add("/1.0/images", "POST", Access::trusted, bind(&ImageRoutes::create));
  // Aliases come before the {fingerprint} pattern so that "aliases" is not taken for one.
  router.add("/1.0/images/aliases", "GET", Access::untrusted, bind(&ImageRoutes::list_aliases));
  router.add("/1.0/images/aliases", "POST", Access::trusted, bind(&ImageRoutes::add_alias));
  router.add("/1.0/images/aliases/{name}", "GET", Access::untrusted, bind(&ImageRoutes::get_alias));
  router.add("/1.0/images/aliases/{name}", "PUT", Access::trusted,
             [routes](const Call& call) { return routes->update_alias(call, false); });
  router.add("/1.0/images/aliases/{name}", "PATCH", Access::trusted,
             [routes](const Call& call) { return routes->update_alias(call, true); });
  router.add("/1.0/images/aliases/{name}", "POST", Access::trusted, bind(&ImageRoutes::rename_alias));
  router.add("/1.0/images/aliases/{name}", "DELETE", Access::trusted, bind(&ImageRoutes::remove_alias));
  router.add("/1.0/images/{fingerprint}", "GET", Access::untrusted, bind(&ImageRoutes::get));
  router.add("/1.0/images/{fingerprint}", "PUT", Access::trusted,
             [routes](const Call& call) { return routes->update(call, false); });
  router.add("/1.0/images/{fingerprint}", "PATCH", Access::trusted,
             [routes](const Call& call) { return routes->update(call, true); });
  router.add("/1.0/images/{fingerprint}", "DELETE", Access::trusted, bind(&ImageRoutes::remove));
  router.add("/1.0/images/{fingerprint}/export", "GET", Access::untrusted, bind(&ImageRoutes::export_image));
  router.add("/1.0/images/{fingerprint}/secret", "POST", Access::trusted, bind(&ImageRoutes::make_secret));
}

}  // namespace berth::daemon::api
