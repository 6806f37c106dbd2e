#include "daemon/daemon.hpp"

#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "daemon/api/api.hpp"
#include "daemon/api/images_api.hpp"
#include "daemon/api/instances_api.hpp"
#include "daemon/api/trust.hpp"
#include "daemon/db/database.hpp"
#include "daemon/events/events.hpp"
#include "daemon/images/image_store.hpp"
#include "daemon/instances/instances.hpp"
#include "daemon/instances/lxc_driver.hpp"
#include "daemon/operations/operations.hpp"
#include "daemon/storage/pool.hpp"
#include "http/server.hpp"
#include "providers/lxd/certificate.hpp"

namespace berth::daemon {
namespace {

namespace fs = std::filesystem;

std::string host_name() {
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) != 0) return "localhost";
  return name.data();
}

std::optional<std::string> read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool write_private(const fs::path& path, const std::string& text, mode_t mode) {
  const auto tmp = path.string() + ".tmp";
  ::unlink(tmp.c_str());
  const mode_t old = ::umask(077);
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  ::umask(old);
  if (!out || !(out << text) || !out.flush()) return false;
  out.close();
  if (::chmod(tmp.c_str(), mode) != 0) return false;
  return ::rename(tmp.c_str(), path.c_str()) == 0;
}

// Every address of this host's interfaces, for a wildcard listen address.
std::vector<std::string> interface_addresses(bool v6, std::uint16_t port) {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    // As LXD lists them: no loopback, no link-local (a client tries them in order).
    if (a->ifa_addr == nullptr || (a->ifa_flags & IFF_UP) == 0 || (a->ifa_flags & IFF_LOOPBACK) != 0) continue;
    std::array<char, INET6_ADDRSTRLEN> text{};
    if (a->ifa_addr->sa_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
      if ((ntohl(in->sin_addr.s_addr) >> 16) == 0xa9fe) continue;  // 169.254.0.0/16
      if (::inet_ntop(AF_INET, &in->sin_addr, text.data(), text.size()) == nullptr) continue;
      std::string address(text.data());
      address.append(":").append(std::to_string(port));
      out.push_back(std::move(address));
    } else if (v6 && a->ifa_addr->sa_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a->ifa_addr);
      if (IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr)) continue;
      if (::inet_ntop(AF_INET6, &in6->sin6_addr, text.data(), text.size()) == nullptr) continue;
      std::string address("[");
      address.append(text.data()).append("]:").append(std::to_string(port));
      out.push_back(std::move(address));
    }
  }
  ::freeifaddrs(list);
  return out;
}

}  // namespace

struct Daemon::Impl {
  ~Impl() {
    if (lock_fd >= 0) ::close(lock_fd);
  }
  int lock_fd = -1;  // flock'ed while this berthd runs
  std::unique_ptr<Database> db;
  // What instances are made of; declared before the operations, whose tasks use them.
  std::unique_ptr<StoragePool> pool;
  std::unique_ptr<LxcDriver> driver;
  std::unique_ptr<ImageStore> images;
  std::unique_ptr<Instances> instances;
  Events events;
  // Every transition goes out as an operation event (lxc waits on them).
  Operations operations{"none", std::chrono::seconds{10}, [] { return Operations::Clock::now(); },
                        [this](const nlohmann::json& op) { events.publish("operation", op); }};
  std::unique_ptr<api::Api> api;
  std::unique_ptr<http::Server> unix_server;
  std::unique_ptr<http::Server> https_server;
  std::vector<std::string> addresses;  // fixed once the listeners are up
};

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Daemon::~Daemon() {
  stop();
}

void Daemon::stop() {
  // Running tasks finish first (their clients still see the end through events and /wait); queued
  // ones and any asked for from now on are cancelled.
  if (!impl_->operations.shutdown(std::chrono::steady_clock::now() + std::chrono::seconds{60})) {
    spdlog::warn("berthd: tasks still running after 60 s; stopping anyway");
  }
  if (impl_->https_server) impl_->https_server->stop();
  if (impl_->unix_server) impl_->unix_server->stop();
}

std::variant<std::unique_ptr<Daemon>, std::string> Daemon::start(DaemonOptions options) {
  const fs::path dir = options.dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return "cannot create the directory " + dir.string() + ": " + ec.message();
  // Others may reach the socket inside (by its own mode) but list nothing.
  ::chmod(dir.c_str(), 0711);

  // The server certificate: made once, kept.
  const auto cert_path = dir / "server.crt";
  const auto key_path = dir / "server.key";
  auto cert_pem = read_text(cert_path);
  auto key_pem = read_text(key_path);
  if (!cert_pem || !key_pem) {
    lxd::SelfSignedOptions cert_options;
    cert_options.common_name = "root@" + host_name();
    cert_options.dns_names = {host_name()};
    cert_options.ip_addresses = {"127.0.0.1", "::1"};
    if (options.listen) {
      auto parsed = http::parse_listen_address(*options.listen);
      if (const auto* hp = std::get_if<std::pair<std::string, std::uint16_t>>(&parsed)) {
        if (hp->first != "0.0.0.0" && hp->first != "::" && hp->first != "127.0.0.1" && hp->first != "::1" &&
            hp->first != "localhost") {
          cert_options.ip_addresses.push_back(hp->first);
        }
      }
    }
    auto made = lxd::generate_server_certificate(cert_options);
    if (!made) return "cannot make the server certificate: " + made.error().message;
    if (!write_private(key_path, made->private_key, 0600) || !write_private(cert_path, made->certificate, 0644)) {
      return "cannot write the server certificate to " + dir.string();
    }
    cert_pem = made->certificate;
    key_pem = made->private_key;
    spdlog::info("berthd: made a server certificate, {}", cert_path.string());
  }
  auto fingerprint = lxd::fingerprint_of_pem(*cert_pem);
  if (!fingerprint) return cert_path.string() + ": " + fingerprint.error().message;

  auto impl = std::make_unique<Impl>();
  // One berthd per directory: a second one would take the first one's socket and share its database.
  const auto lock_path = dir / "berthd.lock";
  impl->lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (impl->lock_fd < 0) return "cannot open " + lock_path.string() + ": " + std::strerror(errno);
  if (::flock(impl->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    return "another berthd is running on " + dir.string() + " (it holds " + lock_path.string() + "); stop it first";
  }
  auto db = Database::open(dir / "berthd.db");
  if (!db) return db.error().message;
  impl->db = std::move(*db);

  auto config = impl->db->config();
  if (!config) return config.error().message;
  if (options.trust_password) {
    (*config)["core.trust_password"] = api::hash_trust_password(*options.trust_password);
    if (auto stored = impl->db->set_config(*config); !stored) return stored.error().message;
  }

  std::string listen;
  if (options.listen) {
    listen = *options.listen;
  } else if (const auto it = config->find("core.https_address"); it != config->end()) {
    listen = it->second;
  }

  auto pool = StoragePool::open("default", options.storage_pool.value_or(dir / "storage"));
  if (!pool) return pool.error().message;
  impl->pool = std::move(*pool);
  const auto lxcpath = dir / "containers";
  fs::create_directories(lxcpath, ec);
  if (ec) return "cannot create " + lxcpath.string() + ": " + ec.message();
  // Containers start through "berthd forkstart" (a fresh process), never in a fork of this
  // multithreaded one.
  LxcDriverOptions driver_options;
  driver_options.start_helper = options.start_helper;
  if (driver_options.start_helper.empty()) return "no start helper: berthd cannot find its own executable";
  impl->driver = std::make_unique<LxcDriver>(lxcpath, driver_options);
  auto images = ImageStore::open(dir / "images");
  if (!images) return images.error().message;
  impl->images = std::move(*images);
  // Containers get the map LXD would give them: root's ranges in /etc/subuid and /etc/subgid.
  const auto idmap = default_idmap(read_text("/etc/subuid").value_or(""), read_text("/etc/subgid").value_or(""));
  impl->instances = std::make_unique<Instances>(*impl->db, *impl->pool, *impl->driver, *impl->images, idmap, "x86_64");
  spdlog::info("berthd: storage pool {} ({}) at {}", impl->pool->name(), impl->pool->driver(),
               impl->pool->path().string());

  Impl* raw = impl.get();
  api::ServerIdentity identity{host_name(), *cert_pem, *fingerprint, [raw] { return raw->addresses; }};
  impl->api = std::make_unique<api::Api>(*impl->db, impl->operations, impl->events, std::move(identity));
  impl->api->add_routes(
      [raw](api::Router& router) {
        api::add_instance_routes(router, *raw->instances, raw->operations, *raw->db, *raw->pool,
                                 [raw](const PullSource& source) {
                                   api::FetchOptions fetch;
                                   fetch.cached = true;  // as LXD marks an image fetched for a launch
                                   return api::fetch_image(*raw->images, *raw->db, source, fetch);
                                 });
        api::add_image_routes(router, *raw->images, raw->operations, *raw->db,
                              [raw](const std::string& instance, const std::string& snapshot,
                                    const std::optional<std::map<std::string, std::string>>& properties) {
                                return raw->instances->publish(instance, snapshot, properties);
                              });
      },
      [] {
        auto extensions = api::instance_extensions();
        const auto& more = api::image_extensions();
        extensions.insert(extensions.end(), more.begin(), more.end());
        return extensions;
      }());
  auto handler = [raw](const http::Request& r) { return raw->api->handle(r); };

  http::ServerOptions server_options;
  server_options.timeout = std::chrono::seconds{60};
  server_options.max_connections = 256;
  server_options.body_limit = 64 * 1024;
  // Only image uploads need more, and only from a trusted client: an untrusted one is answered
  // 403 after its body is read, so it gets no more than any other request.
  server_options.body_limit_for = [raw](const http::Request& head) -> std::size_t {
    const std::string_view target = head.target;
    if (head.method != "POST" || target.substr(0, target.find('?')) != "/1.0/images") return 0;
    return raw->api->trusts(head) ? api::max_image_upload : 0;
  };

  const auto socket_path = (dir / "unix.socket").string();
  auto unix_server = http::Server::listen_unix(socket_path, handler, server_options);
  if (auto* error = std::get_if<std::string>(&unix_server)) return *error;
  impl->unix_server = std::move(std::get<std::unique_ptr<http::Server>>(unix_server));
  if (::chmod(socket_path.c_str(), 0660) != 0) return "cannot set the mode of " + socket_path;

  if (!listen.empty()) {
    auto parsed = http::parse_listen_address(listen);
    if (auto* error = std::get_if<std::string>(&parsed)) return "the listen address " + *error;
    const auto [host, port] = std::get<std::pair<std::string, std::uint16_t>>(parsed);
    auto https = http::Server::listen_tls(host, port, {*cert_pem, *key_pem}, handler, server_options);
    if (auto* error = std::get_if<std::string>(&https)) return *error;
    impl->https_server = std::move(std::get<std::unique_ptr<http::Server>>(https));
    const auto bound = impl->https_server->port();
    if (host == "0.0.0.0" || host == "::") {
      impl->addresses = interface_addresses(host == "::", bound);
    } else {
      impl->addresses = {(host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(bound)};
    }
    impl->https_server->start();
    spdlog::info("berthd: listening on {}", impl->addresses.empty() ? listen : impl->addresses.front());
  }
  impl->unix_server->start();
  spdlog::info("berthd: serving {} (schema {})", socket_path, impl->db->schema_version());
  return std::unique_ptr<Daemon>(new Daemon(std::move(impl)));
}

}  // namespace berth::daemon
