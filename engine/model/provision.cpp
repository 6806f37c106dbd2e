#include "engine/model/provision.hpp"

#include <nlohmann/json.hpp>

#include "engine/util/json_parse.hpp"
#include "engine/util/printable.hpp"
#include "engine/util/sha256.hpp"

namespace berth::model {
namespace {

std::string hex(const std::array<std::uint8_t, 32>& bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (const auto b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 0xf];
  }
  return out;
}

// The digest of `material`: plain for what may be seen, keyed for what holds a secret.
std::optional<std::string> digest(std::string_view material, bool secret, const DigestKey& key) {
  if (!secret) return "sha256:" + util::sha256_hex(material);
  if (!key) return std::nullopt;
  return "hmac-sha256:" + hex(util::hmac_sha256(*key, material));
}

}  // namespace

std::string_view to_string(ExecWhen w) {
  return w == ExecWhen::create ? "create" : "change";
}

std::optional<std::string> file_digest(const FileSpec& file, const DigestKey& key) {
  // The header is JSON, so no content can be mistaken for another mode or owner.
  const nlohmann::json header = {{"mode", file.mode}, {"uid", file.uid}, {"gid", file.gid}};
  return digest(util::json_text(header) + "\n" + file.content, file.sensitive, key);
}

std::optional<std::string> exec_digest(const ExecSpec& exec, const ContainerSpec& container, const DigestKey& key) {
  nlohmann::json watched = nlohmann::json::object();
  for (const auto& path : exec.watch) {
    const auto it = container.files.find(path);
    if (it == container.files.end()) return std::nullopt;  // the config layer refuses this
    const auto d = file_digest(it->second, key);
    if (!d) return std::nullopt;
    watched[path] = *d;
  }
  const nlohmann::json material = {{"command", exec.command}, {"environment", exec.environment},
                                   {"cwd", exec.cwd},         {"uid", exec.uid},
                                   {"gid", exec.gid},         {"watch", watched}};
  return digest(util::json_text(material), !exec.sensitive_environment.empty(), key);
}

std::string record_text(const DigestRecord& record) {
  return util::json_text(nlohmann::json(record));
}

std::optional<DigestRecord> parse_digest_record(std::string_view text) {
  const auto parsed = util::parse_bounded_json(text);
  if (parsed.problem != util::JsonProblem::none || !parsed.value.is_object()) return std::nullopt;
  DigestRecord out;
  for (const auto& [k, v] : parsed.value.items()) {
    if (!v.is_string()) return std::nullopt;
    out.emplace(k, v.get<std::string>());
  }
  return out;
}

std::string short_digest(std::string_view digest) {
  const auto colon = digest.find(':');
  const std::size_t keep = colon == std::string_view::npos ? 12 : colon + 1 + 12;
  return util::printable(digest.substr(0, keep));
}

}  // namespace berth::model
