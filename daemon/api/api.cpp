#include "daemon/api/api.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <variant>

#include <spdlog/spdlog.h>

#include "daemon/api/requests.hpp"
#include "daemon/api/response.hpp"
#include "daemon/api/trust.hpp"
#include "engine/util/sha256.hpp"
#include "engine/util/time.hpp"
#include "providers/lxd/token.hpp"

namespace berth::daemon::api {
namespace {

constexpr const char* api_version = "1.0";
constexpr const char* hidden_password_key = "core.trust_password";
constexpr const char* https_address_key = "core.https_address";

// Extensions whose endpoints berthd serves (lxd-protocol.md §3.0); the list grows with them.
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

X509Ptr x509_of_der(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  return X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

std::string pem_of(X509* cert) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return {};
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string{};
}

std::string der_of(X509* cert) {
  const int length = i2d_X509(cert, nullptr);
  if (length <= 0) return {};
  std::string der(static_cast<std::size_t>(length), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_X509(cert, &out) != length) return {};
  return der;
}

// Why LXD would not add this certificate (lxd/certificates.go certificateValidate), "" if it would.
std::string invalid_certificate(X509* cert) {
  // X509_cmp_current_time answers 0 for a time it cannot read: never valid.
  const int from = X509_cmp_current_time(X509_get0_notBefore(cert));
  const int until = X509_cmp_current_time(X509_get0_notAfter(cert));
  if (from == 0 || until == 0) return "The provided certificate has an unreadable validity period";
  if (from > 0) return "The provided certificate isn't valid yet";
  if (until < 0) return "The provided certificate is expired";
  EVP_PKEY* key = X509_get0_pubkey(cert);
  if (key != nullptr && EVP_PKEY_base_id(key) == EVP_PKEY_RSA && EVP_PKEY_bits(key) < 2048) {
    return "RSA key is too weak (minimum of 2048)";
  }
  return {};
}

// A client sends the same certificate with every request: each is parsed once (parsing, public key
// included, was a tenth of a list request's time) and kept among the last few, by DER.
bool within_validity(const std::string& der) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<X509>, std::less<>> parsed;
  constexpr std::size_t keep = 64;
  std::shared_ptr<X509> cert;
  {
    const std::lock_guard guard(mu);
    if (const auto it = parsed.find(der); it != parsed.end()) cert = it->second;
  }
  if (!cert) {
    cert = x509_of_der(der);
    if (!cert) return false;
    const std::lock_guard guard(mu);
    if (parsed.size() >= keep) parsed.clear();
    parsed.emplace(der, cert);
  }
  return X509_cmp_current_time(X509_get0_notBefore(cert.get())) < 0 &&
         X509_cmp_current_time(X509_get0_notAfter(cert.get())) > 0;
}

std::string common_name(X509* cert) {
  X509_NAME* subject = X509_get_subject_name(cert);
  const int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (i < 0) return {};
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) return {};
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

nlohmann::json certificate_json(const TrustedCertificate& c) {
  return {{"name", c.name},
          {"type", c.type},
          {"restricted", c.restricted},
          {"projects", c.projects},
          {"certificate", c.certificate},
          {"fingerprint", c.fingerprint},
          {"description", ""}};
}

// The config as GET /1.0 shows it: the password hidden as `true`.
nlohmann::json shown_config(const std::map<std::string, std::string>& config) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [key, value] : config) {
    if (key == hidden_password_key) {
      out[key] = true;
    } else {
      out[key] = value;
    }
  }
  return out;
}

// A stored password no password matches (hex of zeros), for the constant-time check without one.
const std::string& unmatchable_hash() {
  static const std::string zeros(2 * (32 + 64), '0');
  return zeros;
}

http::Response db_failure(const lxd::Error& error) {
  spdlog::error("api: {}", error.message);
  return error_response(500, "database error");
}

std::string host_of_peer(const std::string& peer) {
  const auto colon = peer.rfind(':');
  auto host = colon == std::string::npos ? peer : peer.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  return host;
}

}  // namespace

std::variant<std::pair<std::string, std::uint16_t>, std::string> https_listen_address(const std::string& text) {
  constexpr const char* default_port = "8443";  // LXD's (shared.HTTPSDefaultPort)
  std::string full = text;
  const auto colons = std::count(text.begin(), text.end(), ':');
  if (text.empty()) return "empty address";
  if (text.front() == ':' && colons == 1) {
    full = "[::]" + text;  // ":PORT": every interface
  } else if (text.front() == '[' && text.back() == ']') {
    full = text + ":" + default_port;
  } else if (text.front() != '[' && colons >= 2) {
    full = "[" + text + "]:" + default_port;  // a bare IPv6 address
  } else if (colons == 0) {
    full = text + ":" + default_port;
  } else if (text.back() == ':') {
    full = text + default_port;
  }
  auto parsed = http::parse_listen_address(full);
  if (auto* error = std::get_if<std::string>(&parsed)) return "'" + text + "' is no listen address: " + *error;
  return parsed;
}

bool AttemptLimiter::try_take() {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
  last_ = now;
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

bool Api::known_config_key(const std::string& key) {
  return key == https_address_key || key == hidden_password_key || key == "core.remote_token_expiry" ||
         (key.starts_with("user.") && key.size() > 5);
}

Api::Api(Database& db, Operations& operations, Events& events, ServerIdentity identity)
    : db_(db),
      operations_(operations),
      events_(events),
      sockets_(operations),
      identity_(std::move(identity)),
      router_([this](const http::Request& r, const std::string& fp) { return trusted(r, fp); }) {
  auto bind = [this](auto method) { return [this, method](const Call& call) { return (this->*method)(call); }; };
  router_.add("/", "GET", Access::untrusted, bind(&Api::get_root));
  router_.add("/1.0", "GET", Access::untrusted, bind(&Api::get_server));
  router_.add("/1.0", "PUT", Access::trusted, [this](const Call& call) { return update_server(call, false); });
  router_.add("/1.0", "PATCH", Access::trusted, [this](const Call& call) { return update_server(call, true); });
  router_.add("/1.0/certificates", "GET", Access::trusted, bind(&Api::list_certificates));
  router_.add("/1.0/certificates", "POST", Access::untrusted, bind(&Api::add_certificate));
  router_.add("/1.0/certificates/{fingerprint}", "GET", Access::trusted, bind(&Api::get_certificate));
  router_.add("/1.0/certificates/{fingerprint}", "DELETE", Access::trusted, bind(&Api::delete_certificate));
  router_.add("/1.0/operations", "GET", Access::trusted, bind(&Api::list_operations));
  router_.add("/1.0/operations/{id}", "GET", Access::trusted, bind(&Api::get_operation));
  router_.add("/1.0/operations/{id}", "DELETE", Access::trusted, bind(&Api::cancel_operation));
  router_.add("/1.0/operations/{id}/wait", "GET", Access::trusted, bind(&Api::wait_operation));
  // The secret is the credential: other servers' daemons connect without a trusted certificate.
  router_.add("/1.0/operations/{id}/websocket", "GET", Access::untrusted, bind(&Api::connect_operation));
  router_.add("/1.0/events", "GET", Access::trusted, bind(&Api::get_events));
  // Trusted clients and metrics certificates (which are trusted for nothing else): decided inside.
  router_.add("/1.0/metrics", "GET", Access::untrusted, bind(&Api::get_metrics));
}

http::Response Api::get_metrics(const Call& call) const {
  bool allowed = call.trusted;
  if (!allowed && !call.client_fingerprint.empty()) {
    auto found = db_.certificate(call.client_fingerprint);
    allowed =
        found && found->has_value() && (*found)->type == "metrics" && within_validity(call.request.peer_certificate);
  }
  if (!allowed) return error_response(403, "not authorized");
  http::Response response;
  response.content_type = "text/plain; version=0.0.4";
  response.body = metrics_ ? metrics_() : std::string{};
  return response;
}

void Api::add_routes(const std::function<void(Router&)>& add, const std::vector<std::string>& extensions) {
  add(router_);
  extensions_.insert(extensions_.end(), extensions.begin(), extensions.end());
}

bool Api::trusts(const http::Request& request) const {
  return trusted(request,
                 request.peer_certificate.empty() ? std::string{} : util::sha256_hex(request.peer_certificate));
}

bool Api::trusted(const http::Request& request, const std::string& fingerprint) const {
  if (request.local) return true;
  if (fingerprint.empty()) return false;
  auto found = db_.certificate(fingerprint);
  if (!found) {
    spdlog::error("api: {}", found.error().message);
    return false;
  }
  return found->has_value() && (*found)->type != "metrics" && within_validity(request.peer_certificate);
}

http::Response Api::get_root(const Call&) const {
  return sync_response(nlohmann::json::array({"/1.0"}));
}

http::Response Api::get_server(const Call& call) const {
  nlohmann::json out = {{"api_extensions", extensions_},
                        {"api_status", "stable"},
                        {"api_version", api_version},
                        {"auth", call.trusted ? "trusted" : "untrusted"},
                        {"public", false},
                        {"auth_methods", {"tls"}}};
  if (!call.trusted) return sync_response(out);
  auto config = db_.config();
  if (!config) return db_failure(config.error());
  const auto shown = shown_config(*config);
  out["config"] = shown;
  out["environment"] = {{"addresses", identity_.addresses()},
                        {"architectures", {"x86_64"}},
                        {"certificate", identity_.certificate_pem},
                        {"certificate_fingerprint", identity_.certificate_fingerprint},
                        {"driver", "lxc"},
                        {"driver_version", ""},
                        {"firewall", ""},
                        {"kernel", "Linux"},
                        {"kernel_architecture", "x86_64"},
                        {"kernel_features", nlohmann::json::object()},
                        {"kernel_version", ""},
                        {"lxc_features", nlohmann::json::object()},
                        {"os_name", ""},
                        {"os_version", ""},
                        {"project", "default"},
                        {"server", "lxd"},
                        {"server_clustered", false},
                        {"server_event_mode", "full-mesh"},
                        {"server_name", identity_.server_name},
                        {"server_pid", static_cast<long>(::getpid())},
                        {"server_version", "5.0.2"},
                        {"storage", "dir"},
                        {"storage_version", "1"},
                        {"storage_supported_drivers", nlohmann::json::array()}};
  return sync_response(out, etag_of(shown));
}

http::Response Api::update_server(const Call& call, bool patch) const {
  std::string error;
  const auto body = call.json_object(error);
  if (!body) return error_response(400, error);
  const auto request = parse_server_put(*body);
  if (!request) return error_response(request.error());
  // The slow hash is made before the database is locked.
  std::optional<std::string> new_password_hash;
  for (const auto& [key, value] : request->config) {
    if (key == hidden_password_key && value && !value->empty()) new_password_hash = hash_trust_password(*value);
  }
  std::string want;
  if (const auto match = call.request.header("If-Match"); !match.empty()) {
    want = match;
    if (want.size() >= 2 && want.front() == '"' && want.back() == '"') want = want.substr(1, want.size() - 2);
  }
  // Read, check and write in one transaction: the unix socket's and HTTPS's threads may both update.
  std::optional<http::Response> refused;
  std::string old_address;
  std::string new_address;
  auto updated = db_.update_config([&](std::map<std::string, std::string>& config) {
    if (!want.empty() && want != etag_of(shown_config(config))) {
      refused = error_response(412, "ETag doesn't match: " + want);
      return false;
    }
    if (request->invalid) {
      refused = error_response(*request->invalid);
      return false;
    }
    std::map<std::string, std::string> next = patch ? config : std::map<std::string, std::string>{};
    // A PUT that leaves the password out removes it, as LXD does; one that sends `true` keeps it.
    for (const auto& [key, value] : request->config) {
      if (!value) {
        if (const auto old = config.find(key); old != config.end()) next[key] = old->second;
      } else if (value->empty()) {
        next.erase(key);
      } else {
        next[key] = key == hidden_password_key ? *new_password_hash : *value;
      }
    }
    const auto address = [](const std::map<std::string, std::string>& c) {
      const auto it = c.find(https_address_key);
      return it == c.end() ? std::string{} : it->second;
    };
    old_address = address(config);
    new_address = address(next);
    config = std::move(next);
    return true;
  });
  if (refused) return *refused;
  if (!updated) return db_failure(updated.error());
  if (new_address == old_address || !relisten_) return sync_response(nullptr);

  // The listener moves as LXD moves it: the answer comes when it listens at the new address; when
  // it cannot, the old address is put back (unless it changed again meanwhile) and kept.
  http::Response response;
  response.deferred = std::make_shared<http::Deferred>();
  response.deferred->timeout = std::chrono::seconds{30};
  response.deferred->on_timeout = [] { return error_response(500, "Moving the HTTPS listener took too long"); };
  response.deferred->start = [this, old_address, new_address](std::function<void(http::Response)> reply) {
    relisten_(new_address, [this, old_address, new_address, reply](std::optional<std::string> failure) {
      if (!failure) return reply(sync_response(nullptr));
      auto restored = db_.update_config([&](std::map<std::string, std::string>& config) {
        const auto it = config.find(https_address_key);
        if ((it == config.end() ? std::string{} : it->second) != new_address) return false;
        if (old_address.empty()) {
          config.erase(https_address_key);
        } else {
          config[https_address_key] = old_address;
        }
        return true;
      });
      if (!restored) spdlog::error("api: putting core.https_address back: {}", restored.error().message);
      reply(error_response(400, "Invalid config key \"" + std::string(https_address_key) + "\": " + *failure));
    });
  };
  return response;
}

http::Response Api::list_certificates(const Call& call) const {
  auto all = db_.certificates();
  if (!all) return db_failure(all.error());
  const bool recursive = call.query.contains("recursion") && call.query.at("recursion") != "0";
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : *all) {
    if (recursive) {
      out.push_back(certificate_json(c));
    } else {
      out.push_back("/1.0/certificates/" + c.fingerprint);
    }
  }
  return sync_response(out);
}

http::Response Api::add_certificate(const Call& call) const {
  std::string error;
  const auto body = call.json_object(error);
  if (!body) return error_response(400, error);
  const auto asked = parse_certificate_add(*body);
  std::string name = asked.name;
  std::string type = asked.type;
  std::string certificate_b64 = asked.certificate;
  const std::string& password = asked.password;
  const bool want_token = asked.token;
  bool restricted = asked.restricted;
  std::vector<std::string> projects = asked.projects;

  if (call.trusted && certificate_b64.empty() && !want_token) return error_response(400, "Client is already trusted");
  // Restricted certificates are confined to projects, which berthd does not have yet: refused
  // rather than trusted as admins.
  if (restricted) return error_response(400, "Restricted certificates are not supported by berthd yet");
  if (!call.trusted) {
    if (want_token || password.empty()) return error_response(403, "not authorized");
    bool allowed = false;
    // A certificate add token first: used up at once (single use), then checked for expiry.
    if (auto token = lxd::decode_token(password)) {
      if (auto used = operations_.consume_token(TokenKind::certificate_add, token->secret)) {
        if (const auto expires = used->find("expiresAt"); expires != used->end() && expires->is_string()) {
          const auto when = util::parse_rfc3339_utc(expires->get<std::string>());
          if (!when || std::chrono::system_clock::now() > *when) return error_response(403, "Token has expired");
        }
        // The stored request replaces the caller's: the token admits the client that presents it.
        certificate_b64.clear();
        const auto& request = (*used)["request"];
        if (request.is_object()) {
          name = request.value("name", std::string{});
          type = request.value("type", std::string{"client"});
          restricted = request.value("restricted", false);
          projects = request.value("projects", std::vector<std::string>{});
        }
        allowed = true;
      }
    }
    if (!allowed) {
      if (!password_attempts_.try_take()) return error_response(503, "Too many password attempts; try again later");
      auto config = db_.config();
      if (!config) return db_failure(config.error());
      // Without a password set the check still runs, against nothing that matches: the time an
      // answer takes does not tell whether a password is set.
      const auto stored = config->find(hidden_password_key);
      const bool matches =
          check_trust_password(password, stored != config->end() ? stored->second : unmatchable_hash());
      allowed = stored != config->end() && matches;
    }
    if (!allowed) return error_response(403, "not authorized");
  }
  if (type.empty()) type = "client";
  if (type != "client" && type != "server" && type != "metrics") return error_response(400, "Invalid certificate type");

  if (call.trusted && want_token) {
    if (type != "client") return error_response(400, "Tokens can only be issued for client certificates");
    const auto addresses = identity_.addresses();
    if (addresses.empty()) return error_response(400, "Can't issue token when server isn't listening on network");
    nlohmann::json metadata = {{"secret", random_secret()},
                               {"fingerprint", identity_.certificate_fingerprint},
                               {"addresses", addresses},
                               {"request",
                                {{"name", name},
                                 {"type", "client"},
                                 {"restricted", restricted},
                                 {"projects", projects},
                                 {"certificate", ""},
                                 {"password", ""},
                                 {"token", true}}}};
    auto config = db_.config();
    if (!config) return db_failure(config.error());
    if (const auto expiry = config->find("core.remote_token_expiry"); expiry != config->end()) {
      const auto when = expiry_after(std::chrono::system_clock::now(), expiry->second);
      if (!when) return error_response(500, "core.remote_token_expiry is not a valid expiry expression");
      metadata["expiresAt"] = util::rfc3339_utc(*when);
    }
    return async_response(operations_.add_token(TokenKind::certificate_add, "Generating certificate add token",
                                                std::move(metadata), nlohmann::json::object()));
  }

  X509Ptr cert;
  if (!certificate_b64.empty()) {
    auto der = lxd::base64_decode(certificate_b64);
    if (!der) return error_response(400, "the certificate is not base64");
    cert = x509_of_der(*der);
    if (!cert) return error_response(400, "the certificate is not a DER X.509 certificate");
  } else if (!call.request.peer_certificate.empty()) {
    cert = x509_of_der(call.request.peer_certificate);
    if (!cert) return error_response(400, "the client certificate cannot be read");
  } else if (call.request.local) {
    return error_response(400, "Can't use TLS data on non-TLS link");
  } else {
    return error_response(400, "No client certificate provided");
  }
  if (const auto why = invalid_certificate(cert.get()); !why.empty()) return error_response(400, why);
  TrustedCertificate entry;
  entry.fingerprint = util::sha256_hex(der_of(cert.get()));
  entry.type = type;
  entry.name = !name.empty() ? name : common_name(cert.get());
  if (entry.name.empty()) entry.name = host_of_peer(call.request.peer);
  entry.certificate = pem_of(cert.get());
  entry.restricted = restricted;
  entry.projects = projects;
  if (auto added = db_.add_certificate(entry); !added) {
    if (added.error().kind == lxd::ErrorKind::conflict)
      return error_response(409, "Certificate already in trust store");
    return db_failure(added.error());
  }
  spdlog::info("api: trusted certificate {} ({}) added", entry.fingerprint.substr(0, 12), entry.name);
  return sync_response(nullptr, {}, "/1.0/certificates/" + entry.fingerprint);
}

// The one certificate whose fingerprint starts with `prefix`, or the answer why there is none.
std::variant<TrustedCertificate, http::Response> Api::find_certificate(const std::string& prefix) const {
  auto found = db_.certificates_with_prefix(prefix);
  if (!found) return db_failure(found.error());
  if (found->empty()) return error_response(404, "Certificate not found");
  if (found->size() > 1) return error_response(400, "More than one certificate matches " + prefix);
  return found->front();
}

http::Response Api::get_certificate(const Call& call) const {
  auto found = find_certificate(call.params.at("fingerprint"));
  if (auto* answer = std::get_if<http::Response>(&found)) return *answer;
  const auto object = certificate_json(std::get<TrustedCertificate>(found));
  return sync_response(object, etag_of(object));
}

http::Response Api::delete_certificate(const Call& call) const {
  auto found = find_certificate(call.params.at("fingerprint"));
  if (auto* answer = std::get_if<http::Response>(&found)) return *answer;
  const auto fingerprint = std::get<TrustedCertificate>(found).fingerprint;
  auto removed = db_.remove_certificate(fingerprint);
  if (!removed) {
    if (removed.error().kind == lxd::ErrorKind::not_found) return error_response(404, "Certificate not found");
    return db_failure(removed.error());
  }
  spdlog::info("api: trusted certificate {} removed", fingerprint.substr(0, 12));
  return sync_response(nullptr);
}

http::Response Api::list_operations(const Call& call) const {
  const bool recursive = call.query.contains("recursion") && call.query.at("recursion") != "0";
  nlohmann::json out = nlohmann::json::object();
  for (const auto& op : operations_.list()) {
    std::string group = op.value("status", std::string{"unknown"});
    for (auto& c : group) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!out.contains(group)) out[group] = nlohmann::json::array();
    if (recursive) {
      out[group].push_back(op);
    } else {
      out[group].push_back("/1.0/operations/" + op.value("id", std::string{}));
    }
  }
  return sync_response(out);
}

http::Response Api::get_operation(const Call& call) const {
  auto op = operations_.get(call.params.at("id"));
  if (!op) return error_response(404, "Operation not found");
  return sync_response(*op);
}

http::Response Api::wait_operation(const Call& call) const {
  // ?timeout=N seconds; -1 (the default) waits as long as it takes. Either way the answer is the
  // operation as it then is, as LXD answers.
  long long seconds = -1;
  if (const auto it = call.query.find("timeout"); it != call.query.end() && !it->second.empty()) {
    try {
      std::size_t used = 0;
      seconds = std::stoll(it->second, &used);
      if (used != it->second.size() || seconds < -1) throw std::invalid_argument("timeout");
    } catch (const std::exception&) {
      return error_response(400, "Invalid timeout: " + it->second);
    }
  }
  const std::string id = call.params.at("id");
  if (!operations_.get(id)) return error_response(404, "Operation not found");
  constexpr long long forever = 24LL * 3600;  // a wait without end still ends in a day; clients ask again
  auto deferred = std::make_shared<http::Deferred>();
  deferred->timeout = std::chrono::seconds(seconds < 0 ? forever : std::min(seconds, forever));
  deferred->start = [this, id](std::function<void(http::Response)> reply) {
    const bool found = operations_.when_finished(id, [reply](const nlohmann::json& op) { reply(sync_response(op)); });
    if (!found) reply(error_response(404, "Operation not found"));
  };
  deferred->on_timeout = [this, id] {
    auto op = operations_.get(id);
    return op ? sync_response(*op) : error_response(404, "Operation not found");
  };
  http::Response r;
  r.deferred = std::move(deferred);
  return r;
}

http::Response Api::cancel_operation(const Call& call) const {
  int status = 0;
  const auto why = operations_.cancel(call.params.at("id"), status);
  if (!why.empty()) return error_response(status, why);
  return sync_response(nullptr);
}

http::Response Api::connect_operation(const Call& call) const {
  const auto& id = call.params.at("id");
  const auto op = operations_.get(id);
  if (!op) return error_response(404, "Operation not found");
  if (op->value("class", "") != "websocket" || op->value("status_code", 0) != 103) {
    return error_response(400, "Only a running websocket operation takes connections");
  }
  const auto secret = call.query.find("secret");
  if (secret == call.query.end() || secret->second.empty()) return error_response(400, "Missing secret");
  // Checked before the secret is used up: a plain GET must not spend it.
  if (!call.request.websocket_upgrade) return error_response(400, "This endpoint is a websocket");
  auto accept = sockets_.take(id, secret->second);
  if (!accept) return error_response(403, "permission denied");
  http::Response r;
  r.accept_websocket = std::move(*accept);
  return r;
}

http::Response Api::get_events(const Call& call) const {
  // ?type=operation,lifecycle (logging is not sent: berthd has no log stream yet); ?project=P
  // (default "default"); ?all-projects=true.
  std::set<std::string> types;
  if (const auto it = call.query.find("type"); it != call.query.end()) {
    std::size_t start = 0;
    const auto& list = it->second;
    while (start <= list.size()) {
      const auto comma = list.find(',', start);
      const auto type = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!type.empty()) {
        if (type != "operation" && type != "lifecycle" && type != "logging") {
          return error_response(400, "Invalid event type: " + type);
        }
        types.insert(type);
      }
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  const auto project = call.query.contains("project") ? call.query.at("project") : std::string{"default"};
  const bool all_projects = call.query.contains("all-projects") && call.query.at("all-projects") == "true";
  http::Response r;
  r.accept_websocket = [this, types, project, all_projects](std::shared_ptr<http::WebSocket> socket) {
    events_.subscribe(std::move(socket), types, project, all_projects);
  };
  return r;
}

}  // namespace berth::daemon::api
