#include "providers/lxd/remote_store.hpp"

#include <nlohmann/json.hpp>

#include "engine/config/names.hpp"
#include "providers/lxd/certificate.hpp"
#include "providers/lxd/fs_util.hpp"

namespace berth::lxd {

Result<RemoteStore> RemoteStore::load(const ClientConfig& config) {
  RemoteStore store{config};
  const auto path = config.remotes_file();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return store;
  auto text = detail::read_file(path);
  if (!text) return text.error();
  const auto doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  const auto bad = [&](const std::string& why) {
    return make_error(ErrorKind::io, path.string() + ": " + why + "; fix or delete the file");
  };
  if (doc.is_discarded() || !doc.is_object()) return bad("not a JSON object");
  const auto it = doc.find("remotes");
  if (it == doc.end()) return store;
  if (!it->is_object()) return bad("\"remotes\" is not an object");
  for (const auto& [name, entry] : it->items()) {
    if (auto problem = config::remote_name_problem(name)) {
      return bad("invalid remote name \"" + name + "\" (it " + *problem + ")");
    }
    if (!entry.is_object() || !entry.contains("url") || !entry["url"].is_string()) {
      return bad("remote \"" + name + "\" has no url");
    }
    StoredRemote r;
    r.name = name;
    r.url = entry["url"].get<std::string>();
    if (const auto fp = entry.find("fingerprint"); fp != entry.end() && fp->is_string()) {
      r.fingerprint = fp->get<std::string>();
    }
    store.remotes_.emplace(name, std::move(r));
  }
  return store;
}

std::vector<StoredRemote> RemoteStore::list() const {
  std::vector<StoredRemote> out;
  out.reserve(remotes_.size());
  for (const auto& [name, r] : remotes_) out.push_back(r);
  return out;
}

std::optional<StoredRemote> RemoteStore::find(std::string_view name) const {
  const auto it = remotes_.find(name);
  if (it == remotes_.end()) return std::nullopt;
  return it->second;
}

Result<void> RemoteStore::save() const {
  nlohmann::json remotes = nlohmann::json::object();
  for (const auto& [name, r] : remotes_) {
    nlohmann::json entry = {{"url", r.url}};
    if (!r.fingerprint.empty()) entry["fingerprint"] = r.fingerprint;
    remotes[name] = std::move(entry);
  }
  const nlohmann::json doc = {{"remotes", remotes}};
  if (auto d = detail::ensure_private_dir(config_.config_dir); !d) return d;
  return detail::write_file_atomic(config_.remotes_file(), doc.dump(2) + "\n", 0644);
}

Result<void> RemoteStore::add(const StoredRemote& remote, std::string_view server_certificate_pem) {
  if (const auto existing = find(remote.name)) {
    if (*existing == remote) return {};
    return make_error(ErrorKind::conflict, "remote " + remote.name + " already exists (" + existing->url +
                                               "); remove it first with `berth remote remove " + remote.name + "`");
  }
  return put(remote, server_certificate_pem);
}

Result<void> RemoteStore::put(const StoredRemote& remote, std::string_view server_certificate_pem) {
  if (auto problem = config::remote_name_problem(remote.name)) {
    return make_error(ErrorKind::invalid_argument, "invalid remote name \"" + remote.name + "\": it " + *problem);
  }
  if (!server_certificate_pem.empty()) {
    auto fp = fingerprint_of_pem(server_certificate_pem);
    if (!fp) return fp.error();
    if (*fp != remote.fingerprint) {
      return make_error(
          ErrorKind::invalid_argument,
          "remote " + remote.name + ": the certificate to pin does not have fingerprint " + remote.fingerprint);
    }
    if (auto d = detail::ensure_private_dir(config_.config_dir); !d) return d;
    if (auto d = detail::ensure_private_dir(config_.server_certificates_dir()); !d) return d;
    if (auto w = detail::write_file_atomic(config_.server_certificate(remote.name), server_certificate_pem, 0644); !w) {
      return w;
    }
  }
  const auto previous = find(remote.name);
  remotes_.insert_or_assign(remote.name, remote);
  if (auto s = save(); !s) {
    if (previous) {
      remotes_.insert_or_assign(remote.name, *previous);
    } else {
      remotes_.erase(remote.name);
    }
    return s;
  }
  if (server_certificate_pem.empty() && previous && !previous->fingerprint.empty()) {
    // The remote replaced had a pinned certificate this one does not use (a unix socket now).
    std::error_code ec;
    std::filesystem::remove(config_.server_certificate(remote.name), ec);
  }
  return {};
}

Result<void> RemoteStore::remove(std::string_view name) {
  const auto it = remotes_.find(name);
  if (it == remotes_.end()) {
    return make_error(ErrorKind::not_found, "remote " + std::string{name} + " does not exist");
  }
  const StoredRemote removed = it->second;
  remotes_.erase(it);
  if (auto s = save(); !s) {
    remotes_.emplace(removed.name, removed);
    return s;
  }
  std::error_code ec;
  std::filesystem::remove(config_.server_certificate(removed.name), ec);
  if (ec) {
    return make_error(ErrorKind::io, "remote " + removed.name + " removed, but its certificate " +
                                         config_.server_certificate(removed.name).string() +
                                         " could not be deleted: " + ec.message());
  }
  return {};
}

Result<void> remove_remote(const ClientConfig& config, std::string_view name) {
  auto store = RemoteStore::load(config);
  if (!store) return store.error();
  return store->remove(name);
}

Result<std::vector<StoredRemote>> list_remotes(const ClientConfig& config) {
  auto store = RemoteStore::load(config);
  if (!store) return store.error();
  return store->list();
}

}  // namespace berth::lxd
