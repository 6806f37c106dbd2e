// What berthd reads from a client besides the route: every JSON body its API accepts, read as the
// handler reads it (Call::json_object, then the body's parser in daemon/api/requests.cpp or
// daemon/instances/exec.cpp, and what the handler does with the result without a live object),
// an exec's control messages, a file push's X-LXD-* headers, an image upload's X-LXD-properties,
// its multipart/form-data body (split into the two files as POST /1.0/images does) and an
// image's metadata.yaml. Whatever the bytes, the result is a value or an error, never a crash, a
// hang or an exception; a body that parses keeps the promises of its parser's header.
//
// Input: the first line names the body's kind (`kinds` below); the rest is the body. For
// file-push the rest is five header lines (uid, gid, mode, type, write); for image-upload the
// first line of the rest is the Content-Type.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "daemon/api/api.hpp"
#include "daemon/api/requests.hpp"
#include "daemon/api/router.hpp"
#include "daemon/images/metadata.hpp"
#include "daemon/images/multipart.hpp"
#include "daemon/instances/exec.hpp"
#include "providers/lxd/token.hpp"

namespace {

namespace api = berth::daemon::api;
namespace daemon = berth::daemon;
namespace fs = std::filesystem;

void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "berthd_body_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

template <class T>
void expect_invalid_argument(const berth::lxd::Result<T>& result, const char* kind) {
  if (!result && result.error().kind != berth::lxd::ErrorKind::invalid_argument) {
    fail("an error that is no invalid_argument (not a 400)", std::string(kind) + ": " + result.error().message);
  }
}

// The line at the front of `rest`, taken off it.
std::string take_line(std::string_view& rest) {
  const auto eol = rest.find('\n');
  std::string line{rest.substr(0, eol)};
  rest = eol == std::string_view::npos ? std::string_view{} : rest.substr(eol + 1);
  return line;
}

void server_put(const nlohmann::json& body) {
  const auto put = api::parse_server_put(body);
  expect_invalid_argument(put, "server-put");
  if (!put) return;
  for (const auto& [key, value] : put->config) {
    if (!api::Api::known_config_key(key)) fail("an unknown key was accepted", key);
    if (!value && key != "core.trust_password") fail("a key other than the password is kept as stored", key);
  }
  if (put->invalid && !put->config.empty()) fail("a refused config still carries keys", put->invalid->message);
}

void certificate_add(const nlohmann::json& body) {
  const auto add = api::parse_certificate_add(body);
  // What the handler does with the password and the certificate before it asks anything else.
  static_cast<void>(berth::lxd::decode_token(add.password));
  static_cast<void>(berth::lxd::base64_decode(add.certificate));
}

void instance_create(const nlohmann::json& body) {
  const auto create = api::parse_instance_create(body);
  expect_invalid_argument(create, "instance-create");
  if (!create) return;
  if (create->name.empty()) fail("an instance without a name", body.dump());
  if (!create->pull && !create->migration && create->image.empty() && create->copy_of.empty() &&
      create->copy_snapshot.empty()) {
    fail("an instance from nothing", body.dump());
  }
  if (const auto& m = create->migration) {
    // What the target dials and pins: never a URL with a query of its own, never no secret.
    if (!m->operation.starts_with("https://") || m->operation.find('?') != std::string::npos) {
      fail("a migration source that is no https operation URL", body.dump());
    }
    if (m->secrets.count("control") == 0 || m->secrets.count("fs") == 0)
      fail("a migration without its secrets", body.dump());
    for (const auto& [channel, secret] : m->secrets) {
      if (secret.empty() || secret.find_first_of("&?#% ") != std::string::npos)
        fail("a secret unfit for a URL", body.dump());
    }
    if (m->certificate.empty()) fail("a migration without a certificate to pin", body.dump());
  }
}

void exec(const nlohmann::json& body) {
  auto request = daemon::parse_exec_request(body);
  expect_invalid_argument(request, "exec");
  if (!request) return;
  if (request->command.empty() || request->command.front().empty()) fail("exec without a program", body.dump());
  static const std::map<std::string, std::string> config = {{"environment.TERM", "xterm"},
                                                            {"environment.PATH", "/opt/bin"}};
  daemon::add_default_environment(*request, config);
}

void json_body(const std::string& kind, const std::string& text) {
  berth::http::Request request;
  request.method = "POST";
  request.target = "/1.0/fuzz";
  request.body = text;
  const api::Call call{request, "/1.0/fuzz", {}, {}, true, {}};
  std::string error;
  const auto body = call.json_object(error);
  if (!body) return;
  if (kind == "server-put") {
    server_put(*body);
  } else if (kind == "certificate-add") {
    certificate_add(*body);
  } else if (kind == "instance-create") {
    instance_create(*body);
  } else if (kind == "instance-put") {
    expect_invalid_argument(api::parse_instance_put(*body), "instance-put");
  } else if (kind == "instance-state") {
    const auto change = api::parse_state_change(*body);
    expect_invalid_argument(change, "instance-state");
    if (change && change->timeout < -1) fail("a negative timeout", body->dump());
  } else if (kind == "instance-migrate") {
    // POST /1.0/instances/NAME (or a snapshot's) with migration: true.
    const auto migrating = api::is_migration(*body);
    expect_invalid_argument(migrating, "instance-migrate");
    if (migrating && *migrating) expect_invalid_argument(api::parse_migration_source(*body), "instance-migrate");
  } else if (kind == "instance-rename" || kind == "snapshot-rename") {
    const auto to = api::parse_rename(*body);
    expect_invalid_argument(to, "rename");
    if (to && to->empty()) fail("a rename to no name", body->dump());
  } else if (kind == "snapshot-create") {
    expect_invalid_argument(api::parse_snapshot_create(*body), "snapshot-create");
  } else if (kind == "profile-create" || kind == "profile-put" || kind == "profile-rename") {
    if (kind != "profile-put")
      expect_invalid_argument(api::parse_profile_name(*body, kind == "profile-create"), "name");
    const auto profile = api::parse_profile(*body);
    expect_invalid_argument(profile, "profile");
    if (profile && !(*profile)["config"].is_object()) fail("a profile without a config object", body->dump());
  } else if (kind == "image-create") {
    const auto create = api::parse_image_create(*body);
    expect_invalid_argument(create, "image-create");
    if (create && !create->pull && create->instance.empty()) fail("an image from nothing", body->dump());
  } else if (kind == "image-put") {
    static const nlohmann::json stored = {{"fingerprint", "06b8"},
                                          {"public", false},
                                          {"auto_update", false},
                                          {"properties", {{"os", "Ubuntu"}}},
                                          {"profiles", {"default"}}};
    for (const bool patch : {false, true}) expect_invalid_argument(api::apply_image_put(stored, *body, patch), "image");
  } else if (kind == "alias") {
    for (const bool create : {false, true}) expect_invalid_argument(api::parse_alias(*body, create), "alias");
  } else if (kind == "exec") {
    exec(*body);
  }
}

// A directory of this process's own for the multipart parser's files, emptied after each input
// and removed at exit.
class Scratch {
 public:
  Scratch() {
    std::string pattern = (fs::temp_directory_path() / "berthd_body_fuzz.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) fail("mkdtemp", pattern);
    dir_ = pattern;
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  [[nodiscard]] const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
};

const fs::path& scratch() {
  static const Scratch scratch;
  return scratch.dir();
}

void image_upload(std::string_view rest) {
  const std::string content_type = take_line(rest);
  const fs::path& dir = scratch();
  const fs::path body = dir / "body";
  if (FILE* out = std::fopen(body.c_str(), "wb")) {
    const bool written = std::fwrite(rest.data(), 1, rest.size(), out) == rest.size();
    if (std::fclose(out) != 0 || !written) fail("cannot write", body.string());
  }
  const auto parts = daemon::split_multipart(body, content_type, dir);
  expect_invalid_argument(parts, "image-upload");
  std::error_code ec;
  const auto left = std::distance(fs::directory_iterator(dir, ec), fs::directory_iterator{});
  if (!parts && left != 1) fail("a refused upload left files behind", content_type);
  if (parts && fs::file_size(parts->first, ec) + fs::file_size(parts->second, ec) > rest.size()) {
    fail("the parts are larger than the body", content_type);
  }
  for (const auto& entry : fs::directory_iterator(dir, ec)) fs::remove(entry.path(), ec);
}

void image_metadata(const std::string& yaml) {
  const auto metadata = daemon::parse_image_metadata(yaml);
  expect_invalid_argument(metadata, "image-metadata");
  // As lxc publish rewrites an instance's own metadata.yaml.
  const std::map<std::string, std::string> properties = {{"description", "published"}};
  expect_invalid_argument(daemon::published_metadata(yaml, "x86_64", 1700000000, properties), "published");
  expect_invalid_argument(daemon::published_metadata(yaml, "x86_64", 1700000000, std::nullopt), "published");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view rest{reinterpret_cast<const char*>(data), size};
  const std::string kind = take_line(rest);
  if (kind == "exec-control") {
    const auto control = api::parse_exec_control(std::string{rest});
    if (control && control->kind == api::ExecControl::Kind::signal && control->signal <= 0) {
      fail("a signal that is no signal", std::to_string(control->signal));
    }
  } else if (kind == "file-push") {
    api::FileHeaders headers;
    headers.uid = take_line(rest);
    headers.gid = take_line(rest);
    headers.mode = take_line(rest);
    headers.type = take_line(rest);
    headers.write = take_line(rest);
    const auto what = api::parse_file_headers(headers);
    if (what.mode > 0777 || what.mode < -1) fail("a mode beyond 0777", std::to_string(what.mode));
  } else if (kind == "image-properties") {
    expect_invalid_argument(daemon::parse_properties_header(std::string{rest}), "image-properties");
  } else if (kind == "image-upload") {
    image_upload(rest);
  } else if (kind == "image-metadata") {
    image_metadata(std::string{rest});
  } else {
    json_body(kind, std::string{rest});
  }
  return 0;
}
