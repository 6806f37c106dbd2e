#include "providers/lxd/remote_add.hpp"

#include <spdlog/spdlog.h>

#include "engine/config/names.hpp"
#include "providers/lxd/certificate.hpp"
#include "providers/lxd/token.hpp"
#include "providers/lxd/wire.hpp"

namespace berth::lxd {

namespace {

struct Candidate {
  std::string url;
};

struct FetchedCertificate {
  std::string url;
  std::string pem;
  std::string fingerprint;
};

// Step 1: the server's certificate, without verifying it and without presenting ours.
Result<FetchedCertificate> fetch_certificate(const std::string& url, const Timeouts& timeouts) {
  TlsOptions tls;
  tls.accept_any_server_certificate = true;
  auto client = connect_https(url, tls, timeouts);
  if (!client) return client.error();
  // As `lxc` does: GET / proves it speaks HTTP. Its answer does not matter, only that it answered.
  if (auto r = client->get("/"); !r && (r.error().kind == ErrorKind::connect || r.error().kind == ErrorKind::timeout)) {
    return r.error();
  }
  auto pem = client->server_certificate_pem();
  auto fp = client->server_fingerprint();
  if (!pem || !fp) return make_error(ErrorKind::tls, "the server at " + url + " presented no certificate");
  return FetchedCertificate{url, *pem, *fp};
}

Result<std::string> auth_of(Client& client) {
  auto info = client.get("/1.0");
  if (!info) return info.error();
  auto server = wire::parse_server(info->metadata);
  if (!server) return make_error(ErrorKind::protocol, "GET /1.0: " + server.error().message);
  return server->auth;
}

}  // namespace

Result<StoredRemote> add_remote(const ClientConfig& config, const AddRemoteRequest& request) {
  const std::string& name = request.name;
  const auto fail = [&](ErrorKind kind, const std::string& message) {
    return make_error(kind, message).for_remote(name);
  };

  if (auto problem = config::remote_name_problem(name)) {
    return make_error(ErrorKind::invalid_argument,
                      "invalid remote name \"" + name + "\": it " + *problem +
                          " (remote names are 1-63 ASCII letters, digits, '.', '-' and '_')");
  }
  if (request.password && request.token)
    return fail(ErrorKind::invalid_argument, "give a password or a token, not both");

  std::optional<CertificateToken> token;
  if (request.token) {
    auto t = decode_token(*request.token);
    if (!t) return t.error().for_remote(name);
    token = std::move(*t);
  }

  std::vector<Candidate> candidates;
  if (!request.url.empty()) {
    auto url = normalize_remote_url(request.url);
    if (!url) return url.error().for_remote(name);
    candidates.push_back({*url});
  } else if (token) {
    for (const auto& address : token->addresses) {
      if (address.starts_with(":")) continue;  // a wildcard listener, not somewhere to connect to
      if (auto url = normalize_remote_url(address)) candidates.push_back({*url});
    }
    if (candidates.empty())
      return fail(ErrorKind::invalid_argument, "the token lists no usable server address; give the URL");
  } else {
    return fail(ErrorKind::invalid_argument, "a URL is needed (or a token, which carries the server's addresses)");
  }

  auto store = RemoteStore::load(config);
  if (!store) return store.error();
  const auto existing = store->find(name);
  if (existing && !request.url.empty() && existing->url != candidates.front().url) {
    return fail(ErrorKind::conflict, "already exists with URL " + existing->url +
                                         "; remove it first with `berth remote remove " + name + "`");
  }

  // A local socket needs no pinning and no trust: the daemon trusts whoever can open it.
  if (auto ep = parse_url(candidates.front().url); ep && ep->scheme == Scheme::unix_socket) {
    auto client = connect_unix(ep->socket_path, request.timeouts);
    if (!client) return client.error().for_remote(name);
    if (auto info = client->get("/1.0"); !info) return info.error().for_remote(name);
    StoredRemote remote{name, ep->to_string(), ""};
    if (auto added = store->add(remote, ""); !added) return added.error();  // names the remote or the file
    return remote;
  }

  auto identity = ensure_client_identity(config);
  if (!identity) return identity.error().for_remote(name);

  // Step 1: the certificate. With a token, an address that does not answer is skipped.
  std::optional<FetchedCertificate> fetched;
  std::string connect_errors;
  for (const auto& candidate : candidates) {
    auto cert = fetch_certificate(candidate.url, request.timeouts);
    if (cert) {
      fetched = std::move(*cert);
      break;
    }
    if (cert.error().kind != ErrorKind::connect && cert.error().kind != ErrorKind::timeout &&
        cert.error().kind != ErrorKind::tls) {
      return cert.error().for_remote(name);
    }
    if (!connect_errors.empty()) connect_errors += "; ";
    connect_errors += cert.error().message;
  }
  if (!fetched) return fail(ErrorKind::connect, connect_errors);

  // Step 2: decide the one certificate that may ever receive the password or token.
  if (token) {
    if (fetched->fingerprint != token->fingerprint) {
      return fail(ErrorKind::rejected, "the server at " + fetched->url + " presents certificate fingerprint " +
                                           fetched->fingerprint + ", but the token was issued by " +
                                           token->fingerprint +
                                           "; refusing to send the token (wrong address, or someone in between)");
    }
  } else if (!request.accept_certificate) {
    if (!request.confirm) {
      return fail(ErrorKind::rejected, "the server's certificate fingerprint is " + fetched->fingerprint +
                                           "; confirm it or pass --accept-certificate");
    }
    if (!request.confirm(fetched->fingerprint)) {
      return fail(ErrorKind::rejected, "certificate fingerprint " + fetched->fingerprint + " not accepted");
    }
  }
  const std::string pin = fetched->fingerprint;
  const StoredRemote remote{name, fetched->url, pin};
  if (existing && *existing != remote) {
    return fail(ErrorKind::conflict, "already exists (" + existing->url + ", fingerprint " + existing->fingerprint +
                                         "); remove it first with `berth remote remove " + name + "`");
  }

  // Step 3: trust. The client checks `pin` inside every handshake, reconnects included, so a server
  // that presents another certificate from now on fails before any request reaches it.
  bool secret_sent = false;
  const auto pinned_error = [&](const Error& e) {
    if (e.kind != ErrorKind::certificate_mismatch) return e.for_remote(name);
    const std::string pinned_as = token ? "the one the token names" : "the one confirmed";
    const std::string outcome = secret_sent ? "nothing was saved (the password or token went only to the pinned server)"
                                            : "nothing was sent or saved";
    Error out = make_error(ErrorKind::certificate_mismatch,
                           "the server presented a different certificate (sha256:" + e.presented_fingerprint +
                               ") than " + pinned_as + " (sha256:" + pin + "); " + outcome);
    out.presented_fingerprint = e.presented_fingerprint;
    return out.for_remote(name);
  };
  TlsOptions tls;
  tls.client_certificate = identity->certificate;
  tls.pinned_fingerprint = pin;
  auto client = connect_https(fetched->url, tls, request.timeouts);
  if (!client) return pinned_error(client.error());
  auto auth = auth_of(*client);
  if (!auth) return pinned_error(auth.error());
  if (*auth != "trusted") {
    std::optional<std::string> secret = request.token ? request.token : request.password;
    if (!secret && request.ask_secret) secret = request.ask_secret();  // e.g. a prompt; the pin still holds
    if (!secret || secret->empty()) {
      return fail(ErrorKind::not_trusted,
                  "the server does not trust this client yet; give its trust password "
                  "(--password) or a token from `lxc config trust add` (--token)");
    }
    const nlohmann::json body = {{"type", "client"}, {"password", *secret}};
    auto added = client->request(Method::post, "/1.0/certificates", body);
    secret_sent = added || added.error().kind != ErrorKind::certificate_mismatch;
    if (!added) {
      const Error& e = added.error();
      if (e.kind == ErrorKind::server && e.http_status == 403) {
        Error out = make_error(ErrorKind::not_trusted, "the server refused the trust password or token (403)");
        out.http_status = 403;
        return out.for_remote(name);
      }
      // 409: our certificate is already in the trust store (e.g. added by hand); GET /1.0 decides.
      if (!(e.kind == ErrorKind::server && e.http_status == 409)) return pinned_error(e);
    }
    auto again = auth_of(*client);
    if (!again) return pinned_error(again.error());
    if (*again != "trusted") return fail(ErrorKind::not_trusted, "the server doesn't trust us after authentication");
  }

  // Step 4: record it.
  if (auto stored = store->add(remote, fetched->pem); !stored) return stored.error();  // names the remote or the file
  spdlog::info("remote {}: {} {} (fingerprint {})", name, existing ? "already present:" : "added", remote.url,
               remote.fingerprint);
  return remote;
}

}  // namespace berth::lxd
