#include "providers/lxd/remote_connection.hpp"

#include "engine/config/names.hpp"
#include "engine/config/url.hpp"
#include "providers/lxd/certificate.hpp"
#include "providers/lxd/remote_store.hpp"

namespace berth::lxd {

namespace {

// The certificate the server must present: the fleet file's `fingerprint:`, the certificate
// `berth remote add` pinned under the remote's name, or both when they name the same one. Either
// alone is enough, so a fleet file with fingerprints needs no config dir at all.
Result<std::string> server_pin(const ClientConfig& config, const model::RemoteSpec& remote) {
  std::optional<std::string> declared;
  if (remote.fingerprint && !remote.fingerprint->empty()) {
    declared = config::normalize_fingerprint(*remote.fingerprint);
    if (!declared) {
      return make_error(ErrorKind::invalid_argument, "the fingerprint in the fleet file is not a sha256 fingerprint");
    }
  }
  std::optional<std::string> stored;
  const auto pinned =
      !config::remote_name_problem(remote.name) ? config.server_certificate(remote.name) : std::filesystem::path{};
  std::error_code ec;
  if (!pinned.empty() && std::filesystem::exists(pinned, ec)) {
    auto fp = fingerprint_of_pem_file(pinned);
    if (!fp) return fp.error();
    stored = *fp;
  }
  if (declared && stored && *declared != *stored) {
    return make_error(ErrorKind::certificate_mismatch,
                      "the fleet file pins the server certificate sha256:" + *declared +
                          ", but `berth remote add` pinned another one under this name (sha256:" + *stored + ", " +
                          pinned.string() +
                          "); correct fingerprint: in the fleet file, or, if the host's certificate " +
                          "changed, run `berth remote remove " + remote.name + "` (and `berth remote add` again)");
  }
  if (declared) return *declared;
  if (stored) return *stored;
  return make_error(ErrorKind::not_found,
                    "no pinned server certificate; add fingerprint: (the sha256 fingerprint of the host's "
                    "certificate) to this remote in the fleet file, or run `berth remote add " +
                        remote.name + " " + remote.url + "`");
}

}  // namespace

Result<TlsOptions> tls_options_for(const ClientConfig& config, const model::RemoteSpec& remote) {
  TlsOptions tls;
  auto pin = server_pin(config, remote);
  if (!pin) return pin.error().for_remote(remote.name);
  tls.pinned_fingerprint = *pin;
  auto identity = load_client_identity(config);
  if (!identity) {
    if (identity.error().kind == ErrorKind::not_found) {
      return make_error(ErrorKind::not_found,
                        "no client certificate in " + config.config_dir.string() +
                            "; give one with --client-cert and --client-key (or BERTH_CLIENT_CERT and "
                            "BERTH_CLIENT_KEY), run `berth remote add " +
                            remote.name + " " + remote.url +
                            "`, or set BERTH_CONFIG_DIR / --config-dir to the directory that has one")
          .for_remote(remote.name);
    }
    return identity.error().for_remote(remote.name);
  }
  tls.client_certificate = identity->certificate;
  return tls;
}

namespace {

// Worth trying the next URL: this one did not answer (a member that is down, or one shutting down
// that drops the handshake), as opposed to one that answered wrongly (another certificate, a
// refused client), which the next would not mend.
bool unreachable(const Error& e) {
  return e.kind == ErrorKind::connect || e.kind == ErrorKind::timeout || e.kind == ErrorKind::tls;
}

}  // namespace

Result<Client> connect_remote(const ClientConfig& config, const model::RemoteSpec& remote, const Timeouts& timeouts) {
  const std::vector<std::string> single{remote.url};
  const auto& urls = remote.urls.size() > 1 ? remote.urls : single;
  std::optional<TlsOptions> tls;  // the same pin and identity for every URL: made once
  std::string tried;
  std::optional<Error> last;
  for (const auto& url : urls) {
    auto ep = parse_url(url);
    if (!ep) return ep.error().for_remote(remote.name);
    Result<Client> c = make_error(ErrorKind::connect, "not tried");
    if (ep->scheme == Scheme::unix_socket) {
      c = connect_unix(ep->socket_path, timeouts);
    } else {
      if (!tls) {
        auto made = tls_options_for(config, remote);
        if (!made) return made.error();  // names the remote already
        tls = std::move(*made);
      }
      c = connect_https(url, *tls, timeouts);
    }
    if (c) return c;
    if (urls.size() == 1 || !unreachable(c.error())) return c.error().for_remote(remote.name);
    // urls: the next one; the error names every one that did not answer.
    tried += (tried.empty() ? "" : "; ") + url + ": " + c.error().message;
    last = c.error();
  }
  Error e = *last;
  e.message = "none of its " + std::to_string(urls.size()) + " URLs answered (" + tried + ")";
  return e.for_remote(remote.name);
}

Error untrusted_error(const ClientConfig& config, const model::RemoteSpec& remote) {
  std::string who = "this client";
  std::string where;
  if (auto id = load_client_identity(config)) {
    who = "this client's certificate (" + id->fingerprint + ")";
    if (config.identity) where = ", given by " + id->certificate->source;
  }
  Error e = make_error(ErrorKind::not_trusted, "the server does not trust " + who + where + "; run `berth remote add " +
                                                   remote.name + " " + remote.url +
                                                   " --password ...` (or --token) to get trusted, or add the "
                                                   "certificate to the host's trust store (`lxc config trust add`)");
  e.http_status = 403;
  return e.for_remote(remote.name);
}

}  // namespace berth::lxd
