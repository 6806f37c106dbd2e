#include "daemon/images/image_pull.hpp"

#include <algorithm>
#include <cctype>
#include <span>

#include "daemon/images/files.hpp"
#include "daemon/images/multipart.hpp"
#include "providers/lxd/certificate.hpp"
#include "providers/lxd/client.hpp"
#include "providers/lxd/url.hpp"

namespace berth::daemon {
namespace {

using lxd::ErrorKind;
using lxd::make_error;
using lxd::Result;

Result<std::string> string_field(const nlohmann::json& source, const char* name) {
  if (!source.contains(name) || source[name].is_null()) return std::string{};
  if (!source[name].is_string()) {
    return make_error(ErrorKind::invalid_argument, std::string{"source."} + name + " must be a string");
  }
  return source[name].get<std::string>();
}

// Secrets are LXD's random hex; anything else would have to be escaped into the query, and no
// server hands such a secret out.
bool plain_token(const std::string& text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_'; });
}

class Puller {
 public:
  Puller(ImageStore& store, const PullSource& source, lxd::Client client)
      : store_(store), source_(source), client_(std::move(client)) {}

  Result<std::string> resolve_alias() {
    auto alias = client_.get("/1.0/images/aliases/" + lxd::path_segment(source_.alias));
    if (!alias) return failed("has no image alias \"" + source_.alias + "\"", alias.error());
    const auto& target = alias->metadata;
    if (!target.is_object() || !target.contains("target") || !target["target"].is_string()) {
      return make_error(ErrorKind::protocol, where() + " sent an alias without a target");
    }
    return target["target"].get<std::string>();
  }

  Result<nlohmann::json> image_info(const std::string& fingerprint) {
    auto info = client_.get("/1.0/images/" + lxd::path_segment(fingerprint) + secret_query());
    if (!info) return failed("has no image " + fingerprint + " this server may read", info.error());
    const auto& object = info->metadata;
    if (!object.is_object() || !object.contains("fingerprint") || !object["fingerprint"].is_string() ||
        !is_fingerprint(object["fingerprint"].get<std::string>())) {
      return make_error(ErrorKind::protocol, where() + " sent an image without a valid fingerprint");
    }
    return object;
  }

  // The export, checked and stored; a conflict (the same image arrived meanwhile) is no failure.
  Result<StoredImage> download(const std::string& fingerprint) {
    auto answer = client_.request_raw(lxd::Method::get, "/1.0/images/" + fingerprint + "/export" + secret_query());
    if (!answer) return failed("did not send image " + fingerprint, answer.error());
    if (answer->status != 200) {
      auto envelope = lxd::parse_envelope(answer->status, answer->body, answer->headers, "GET image export");
      if (!envelope) return failed("did not send image " + fingerprint, envelope.error());
      return make_error(ErrorKind::protocol, where() + " answered the export of image " + fingerprint + " with " +
                                                 std::to_string(answer->status));
    }
    auto file = images::create_unique_file(store_.dir(), images::kUploadPrefix);
    if (!file) return file.error();
    const auto path = file->path;
    auto written = images::write_all(file->fd.get(), std::span<const char>(answer->body), path);
    file->fd = images::Fd{};
    answer->body = std::string{};  // the memory goes back before the import reads the file
    if (!written) {
      std::error_code ignored;
      std::filesystem::remove(path, ignored);
      return written.error();
    }
    const auto content_type = answer->header("Content-Type");
    Result<StoredImage> stored = make_error(ErrorKind::io, "no image");
    if (content_type.rfind("multipart/form-data", 0) == 0) {
      auto parts = split_multipart(path, content_type, store_.dir());
      std::error_code ignored;
      std::filesystem::remove(path, ignored);
      if (!parts) return failed("sent a split image berthd cannot read", parts.error());
      stored = store_.import_split(parts->first, parts->second, fingerprint);
    } else {
      stored = store_.import_unified(path, fingerprint);
    }
    if (!stored && stored.error().kind == ErrorKind::conflict) return store_.read(fingerprint);
    return stored;
  }

 private:
  [[nodiscard]] std::string where() const { return "the image server " + source_.server; }

  [[nodiscard]] std::string secret_query() const {
    return source_.secret.empty() ? std::string{} : "?secret=" + source_.secret;
  }

  [[nodiscard]] lxd::Error failed(const std::string& what, const lxd::Error& cause) const {
    lxd::Error e = cause;
    e.message = where() + " " + what + ": " + cause.message;
    return e;
  }

  ImageStore& store_;
  const PullSource& source_;
  lxd::Client client_;
};

}  // namespace

Result<PullSource> parse_pull_source(const nlohmann::json& source) {
  if (!source.is_object()) return make_error(ErrorKind::invalid_argument, "source must be an object");
  PullSource out;
  auto protocol = string_field(source, "protocol");
  if (!protocol) return protocol.error();
  if (!protocol->empty() && *protocol != "lxd") {
    return make_error(ErrorKind::invalid_argument,
                      "Unsupported image server protocol \"" + *protocol +
                          "\": berthd copies images from LXD-style servers (protocol \"lxd\") only");
  }
  for (auto [name, field] :
       {std::pair{"server", &out.server}, std::pair{"fingerprint", &out.fingerprint}, std::pair{"alias", &out.alias},
        std::pair{"secret", &out.secret}, std::pair{"certificate", &out.certificate}}) {
    auto value = string_field(source, name);
    if (!value) return value.error();
    *field = std::move(*value);
  }
  if (out.server.rfind("https://", 0) != 0) {
    return make_error(ErrorKind::invalid_argument,
                      "source.server must be the image server's https:// URL, not \"" + out.server + "\"");
  }
  if (out.fingerprint.empty() && out.alias.empty()) {
    return make_error(ErrorKind::invalid_argument, "source needs a fingerprint or an alias of the image to copy");
  }
  if (!out.fingerprint.empty() && out.fingerprint.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return make_error(ErrorKind::invalid_argument, "source.fingerprint is not an image fingerprint");
  }
  if (!plain_token(out.secret)) return make_error(ErrorKind::invalid_argument, "source.secret is not an image secret");
  if (!out.certificate.empty()) {
    if (auto fp = lxd::fingerprint_of_pem(out.certificate); !fp) {
      return make_error(ErrorKind::invalid_argument,
                        "source.certificate is not a PEM certificate: " + fp.error().message);
    }
  }
  return out;
}

Result<PulledImage> pull_image(ImageStore& store, const PullSource& source,
                               const std::function<bool(const std::string&)>& have, const PullLimits& limits) {
  lxd::TlsOptions tls;
  if (source.certificate.empty()) {
    tls.verify_with_system_cas = true;
  } else {
    auto pin = lxd::fingerprint_of_pem(source.certificate);
    if (!pin) return pin.error();
    tls.pinned_fingerprint = *pin;
  }
  lxd::Timeouts timeouts;
  timeouts.connect = limits.connect;
  timeouts.read = limits.transfer;
  timeouts.max_response_bytes = limits.max_bytes;
  auto client = lxd::connect_https(source.server, tls, timeouts);
  if (!client) {
    lxd::Error e = client.error();
    e.message = "cannot reach the image server " + source.server + ": " + e.message;
    return e;
  }
  Puller puller(store, source, std::move(*client));

  std::string wanted = source.fingerprint;
  if (wanted.empty()) {
    auto target = puller.resolve_alias();
    if (!target) return target.error();
    wanted = std::move(*target);
  }
  auto info = puller.image_info(wanted);
  if (!info) return info.error();
  PulledImage out;
  out.fingerprint = (*info)["fingerprint"].get<std::string>();
  out.info = std::move(*info);
  if (have(out.fingerprint)) return out;
  auto stored = puller.download(out.fingerprint);
  if (!stored) return stored.error();
  out.stored = std::move(*stored);
  return out;
}

}  // namespace berth::daemon
