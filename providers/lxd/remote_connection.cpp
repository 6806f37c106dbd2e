#include "providers/lxd/remote_connection.hpp"

#include "engine/config/names.hpp"
#include "engine/config/url.hpp"
#include "providers/lxd/certificate.hpp"
#include "providers/lxd/remote_store.hpp"

namespace berth::lxd {

Result<TlsOptions> tls_options_for(const ClientConfig& config, const model::RemoteSpec& remote) {
  TlsOptions tls;
  if (remote.fingerprint && !remote.fingerprint->empty()) {
    tls.pinned_fingerprint = config::normalize_fingerprint(*remote.fingerprint).value_or("");
    if (tls.pinned_fingerprint.empty()) {
      return make_error(ErrorKind::invalid_argument, "the fingerprint in the fleet file is not a sha256 fingerprint")
          .for_remote(remote.name);
    }
  } else {
    std::error_code ec;
    const auto pinned =
        !config::remote_name_problem(remote.name) ? config.server_certificate(remote.name) : std::filesystem::path{};
    if (pinned.empty() || !std::filesystem::exists(pinned, ec)) {
      return make_error(ErrorKind::not_found, "no pinned server certificate; run `berth remote add " + remote.name +
                                                  " " + remote.url + "` or set fingerprint: in the fleet file")
          .for_remote(remote.name);
    }
    auto fp = fingerprint_of_pem_file(pinned);
    if (!fp) return fp.error().for_remote(remote.name);
    tls.pinned_fingerprint = *fp;
  }
  auto identity = load_client_identity(config);
  if (!identity) {
    if (identity.error().kind == ErrorKind::not_found) {
      return make_error(ErrorKind::not_found, "no client certificate in " + config.config_dir.string() +
                                                  "; run `berth remote add " + remote.name + " " + remote.url +
                                                  "` (or set BERTH_CONFIG_DIR / --config-dir to the right directory)")
          .for_remote(remote.name);
    }
    return identity.error().for_remote(remote.name);
  }
  tls.client_certificate = identity->certificate;
  tls.client_key = identity->key;
  return tls;
}

Result<Client> connect_remote(const ClientConfig& config, const model::RemoteSpec& remote, const Timeouts& timeouts) {
  auto ep = parse_url(remote.url);
  if (!ep) return ep.error().for_remote(remote.name);
  if (ep->scheme == Scheme::unix_socket) {
    auto c = connect_unix(ep->socket_path, timeouts);
    if (!c) return c.error().for_remote(remote.name);
    return c;
  }
  auto tls = tls_options_for(config, remote);
  if (!tls) return tls.error();
  auto c = connect_https(remote.url, *tls, timeouts);
  if (!c) return c.error().for_remote(remote.name);
  return c;
}

Error untrusted_error(const ClientConfig& config, const model::RemoteSpec& remote) {
  std::string who = "this client";
  if (auto id = load_client_identity(config)) who = "this client's certificate (" + id->fingerprint + ")";
  Error e =
      make_error(ErrorKind::not_trusted, "the server does not trust " + who + "; run `berth remote add " + remote.name +
                                             " " + remote.url + " --password ...` (or --token) to get trusted");
  e.http_status = 403;
  return e.for_remote(remote.name);
}

}  // namespace berth::lxd
