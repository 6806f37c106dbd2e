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
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

#include "daemon/api/api.hpp"
#include "daemon/api/exec_api.hpp"
#include "daemon/api/files_api.hpp"
#include "daemon/api/host_api.hpp"
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

// A thread of berthd's own: it runs posted jobs in order and, when `period` passes without one,
// the periodic job. stop() lets the running job finish (it sees the stop token), drops the rest
// and joins.
class Worker {
 public:
  using Job = std::function<void(const std::stop_token&)>;
  Worker(std::chrono::seconds period, Job every) : period_(period), every_(std::move(every)) {
    thread_ = std::jthread([this](const std::stop_token& stop) { run(stop); });
  }
  ~Worker() { stop(); }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void post(Job job) {
    {
      const std::lock_guard guard(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }
  void stop() {
    if (!thread_.joinable()) return;
    {
      // Under the mutex, so that the wait cannot miss it between its check and its sleep.
      const std::lock_guard guard(mu_);
      thread_.request_stop();
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  void run(const std::stop_token& stop) {
    auto next_tick = std::chrono::steady_clock::now() + period_;
    while (!stop.stop_requested()) {
      Job job;
      {
        std::unique_lock guard(mu_);
        cv_.wait_until(guard, next_tick, [&] { return stop.stop_requested() || !jobs_.empty(); });
        if (stop.stop_requested()) return;
        if (!jobs_.empty()) {
          job = std::move(jobs_.front());
          jobs_.pop_front();
        }
      }
      if (!job) {
        job = every_;
        next_tick = std::chrono::steady_clock::now() + period_;
      }
      try {
        job(stop);
      } catch (const std::exception& e) {
        spdlog::error("berthd: a background job failed: {}", e.what());
      }
    }
  }

  std::chrono::seconds period_;
  Job every_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  std::jthread thread_;  // last: it uses the members above
};

using Endpoint = std::pair<std::string, std::uint16_t>;

// The addresses clients reach an HTTPS listener on.
std::vector<std::string> reachable_addresses(const std::string& host, std::uint16_t port) {
  if (host == "0.0.0.0" || host == "::") return interface_addresses(host == "::", port);
  return {(host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port)};
}

// Task operations are journalled in the database while they run (DocumentKind::operation).
OperationJournal operation_journal(Database& db) {
  OperationJournal journal;
  journal.begun = [&db](const nlohmann::json& operation) {
    const auto id = operation.value("id", "");
    if (auto r = db.change({{DocumentChange::Op::insert, DocumentKind::operation, id, operation, {}}}); !r) {
      spdlog::error("berthd: cannot journal operation {}: {}", id, r.error().message);
    }
  };
  journal.ended = [&db](const std::string& id) {
    if (auto r = db.change({{DocumentChange::Op::remove, DocumentKind::operation, id, {}, {}}}); !r) {
      spdlog::error("berthd: cannot clear operation {} from the journal: {}", id, r.error().message);
    }
  };
  return journal;
}

// The tasks an earlier run began and never ended: Failure, readable for an hour.
void recover_operations(Database& db, Operations& operations) {
  auto left = db.documents(DocumentKind::operation);
  if (!left) {
    spdlog::error("berthd: cannot read the operation journal: {}", left.error().message);
    return;
  }
  for (const auto& entry : *left) {
    spdlog::warn("berthd: operation {} ({}) did not finish before berthd stopped: reported failed", entry.key,
                 entry.body.is_object() ? entry.body.value("description", "") : std::string{});
    operations.add_interrupted(entry.body,
                               "berthd stopped before this operation finished (anything it had half made was "
                               "removed when berthd started again)",
                               std::chrono::hours{1});
    if (auto r = db.change({{DocumentChange::Op::remove, DocumentKind::operation, entry.key, {}, {}}}); !r) {
      spdlog::error("berthd: cannot clear operation {} from the journal: {}", entry.key, r.error().message);
    }
  }
}

}  // namespace

struct Daemon::Impl {
  ~Impl() {
    if (lock_fd >= 0) ::close(lock_fd);
  }
  int lock_fd = -1;  // flock'ed while this berthd runs
  bool stopped = false;
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
  // Commands running in containers; killed when berthd stops, before the operations go.
  api::ExecSessions exec_sessions;
  // Migrations in either direction; ended when berthd stops, before the operations go.
  std::unique_ptr<api::Migrations> migrations;
  std::unique_ptr<http::Server> unix_server;
  // The HTTPS listener, and those core.https_address moved away from (still serving their open
  // connections for a while): the listener worker's after start.
  std::unique_ptr<http::Server> https_server;
  std::optional<Endpoint> https_endpoint;
  std::vector<std::unique_ptr<http::Server>> retired;  // kept until stop
  http::Handler handler;
  http::ServerOptions server_options;
  http::TlsIdentity tls;

  mutable std::mutex addresses_mu;
  std::vector<std::string> addresses;  // where HTTPS is reached; the API threads read it

  std::vector<std::string> current_addresses() const {
    const std::lock_guard guard(addresses_mu);
    return addresses;
  }

  // A started HTTPS listener on `at`, or why not.
  std::variant<std::unique_ptr<http::Server>, std::string> open_https(const Endpoint& at) {
    auto made = http::Server::listen_tls(at.first, at.second, tls, handler, server_options);
    if (auto* server = std::get_if<std::unique_ptr<http::Server>>(&made)) (*server)->start();
    return made;
  }

  void use_https(std::unique_ptr<http::Server> server, std::optional<Endpoint> at) {
    if (https_server) {
      https_server->stop_accepting();
      retired.push_back(std::move(https_server));
    }
    https_server = std::move(server);
    https_endpoint = std::move(at);
    auto now_reached =
        https_endpoint ? reachable_addresses(https_endpoint->first, https_server->port()) : std::vector<std::string>{};
    const std::lock_guard guard(addresses_mu);
    addresses = std::move(now_reached);
  }

  // On the listener worker: HTTPS moves to `text` (core.https_address; "" stops it).
  std::optional<std::string> relisten(const std::string& text) {
    std::optional<Endpoint> at;
    if (!text.empty()) {
      auto parsed = api::https_listen_address(text);
      if (auto* error = std::get_if<std::string>(&parsed)) return *error;
      at = std::get<Endpoint>(parsed);
    }
    if (at == https_endpoint) return std::nullopt;
    if (!at) {
      use_https(nullptr, std::nullopt);
      spdlog::info("berthd: no longer listening on the network");
      return std::nullopt;
    }
    auto made = open_https(*at);
    if (std::holds_alternative<std::string>(made) && https_server) {
      // The new address overlaps the old one (the same port on every interface): as LXD does, the
      // old listener closes first, and opens again when the new one still cannot be had.
      https_server->stop_accepting();
      made = open_https(*at);
      if (std::holds_alternative<std::string>(made)) {
        auto back = open_https(*https_endpoint);
        if (auto* server = std::get_if<std::unique_ptr<http::Server>>(&back)) {
          use_https(std::move(*server), https_endpoint);
        } else {
          spdlog::error("berthd: cannot listen on the old address again: {}", std::get<std::string>(back));
          use_https(nullptr, std::nullopt);
        }
      }
    }
    if (auto* error = std::get_if<std::string>(&made)) return *error;
    use_https(std::move(std::get<std::unique_ptr<http::Server>>(made)), at);
    spdlog::info("berthd: listening on {}", text);
    return std::nullopt;
  }

  // At berthd's stop: the listeners moved away from. They are kept until then, serving the
  // connections they had, because websockets they accepted (an exec's, the events') may be held
  // elsewhere and must not outlive their server.
  void stop_retired() {
    for (auto& server : retired) server->stop();
    retired.clear();
  }

  // Last: they use everything above, and stop before it goes.
  std::unique_ptr<Worker> listener;
  std::unique_ptr<Worker> housekeeping;
};

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Daemon::~Daemon() {
  stop();
}

void Daemon::stop() {
  if (std::exchange(impl_->stopped, true)) return;
  // Each step is logged: a stop that never ends (main gives up on it) shows where it waits.
  const auto step = [](const char* what) { spdlog::debug("berthd: stopping: {}", what); };
  step("background jobs");
  if (impl_->housekeeping) impl_->housekeeping->stop();
  if (impl_->listener) impl_->listener->stop();
  step("commands running in containers");
  impl_->exec_sessions.stop();
  step("migrations");
  if (impl_->migrations) impl_->migrations->stop();
  // Running tasks finish first (their clients still see the end through events and /wait); queued
  // ones and any asked for from now on are cancelled.
  step("tasks");
  if (!impl_->operations.shutdown(std::chrono::steady_clock::now() + std::chrono::seconds{60})) {
    spdlog::warn("berthd: tasks still running after 60 s; stopping anyway");
  }
  step("listeners");
  if (impl_->https_server) impl_->https_server->stop();
  impl_->stop_retired();
  if (impl_->unix_server) impl_->unix_server->stop();
  step("done");
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

  // --listen must work; a stored address that cannot be had (taken, or gone with an interface)
  // leaves berthd on its unix socket, from which it can be changed, as LXD does.
  std::optional<Endpoint> listen;
  bool listen_required = false;
  if (options.listen) {
    auto parsed = http::parse_listen_address(*options.listen);
    if (auto* error = std::get_if<std::string>(&parsed)) return "the listen address " + *error;
    listen = std::get<Endpoint>(parsed);
    listen_required = true;
  } else if (const auto it = config->find("core.https_address"); it != config->end() && !it->second.empty()) {
    auto parsed = api::https_listen_address(it->second);
    if (auto* error = std::get_if<std::string>(&parsed)) {
      spdlog::error("berthd: core.https_address: {}; not listening on the network", *error);
    } else {
      listen = std::get<Endpoint>(parsed);
    }
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
  // What an earlier run was in the middle of when it died: half-made volumes go, and its
  // unfinished tasks are reported failed; from now on every task is journalled while it runs.
  for (const auto& line : impl->instances->recover()) spdlog::warn("berthd: at start: {}", line);
  recover_operations(*impl->db, impl->operations);
  impl->operations.set_journal(operation_journal(*impl->db));

  Impl* raw = impl.get();
  api::ServerIdentity identity{host_name(), *cert_pem, *fingerprint, [raw] { return raw->current_addresses(); }};
  impl->api = std::make_unique<api::Api>(*impl->db, impl->operations, impl->events, std::move(identity));
  impl->migrations = std::make_unique<api::Migrations>(*impl->instances, *impl->pool, impl->operations,
                                                       impl->api->sockets(), options.start_helper);
  impl->api->add_routes(
      [raw](api::Router& router) {
        api::add_instance_routes(
            router, *raw->instances, raw->operations, *raw->db, *raw->pool,
            [raw](const PullSource& source) {
              api::FetchOptions fetch;
              fetch.cached = true;  // as LXD marks an image fetched for a launch
              return api::fetch_image(*raw->images, *raw->db, source, fetch);
            },
            *raw->migrations);
        api::add_exec_routes(router, *raw->instances, raw->operations, raw->api->sockets(), raw->exec_sessions);
        api::add_file_routes(router, *raw->instances);
        api::add_host_routes(router, *raw->instances);
        api::add_image_routes(router, *raw->images, raw->operations, *raw->db,
                              [raw](const std::string& instance, const std::string& snapshot,
                                    const std::optional<std::map<std::string, std::string>>& properties) {
                                return raw->instances->publish(instance, snapshot, properties);
                              });
      },
      [] {
        auto extensions = api::instance_extensions();
        for (const auto* more :
             {&api::image_extensions(), &api::exec_extensions(), &api::file_extensions(), &api::host_extensions()}) {
          extensions.insert(extensions.end(), more->begin(), more->end());
        }
        return extensions;
      }());
  impl->api->set_metrics([raw] {
    std::vector<std::pair<std::string, ContainerUsage>> usage;
    if (auto names = raw->instances->names()) {
      for (const auto& name : *names) {
        if (auto u = raw->instances->usage(name)) usage.emplace_back(name, std::move(*u));
      }
    }
    return api::metrics_text(usage);
  });
  impl->handler = [raw](const http::Request& r) { return raw->api->handle(r); };
  auto& handler = impl->handler;

  http::ServerOptions& server_options = impl->server_options;
  server_options.timeout = std::chrono::seconds{60};
  server_options.max_connections = 256;
  server_options.body_limit = 64 * 1024;
  // Only image uploads and file pushes need more, and only from a trusted client: an untrusted one is answered
  // 403 after its body is read, so it gets no more than any other request.
  server_options.body_limit_for = [raw](const http::Request& head) -> std::size_t {
    const std::string_view target = head.target;
    if (head.method == "POST" && target.substr(0, target.find('?')) == "/1.0/images") {
      return raw->api->trusts(head) ? api::max_image_upload : 0;
    }
    if (api::is_file_push(head.method, head.target)) return raw->api->trusts(head) ? api::max_file_transfer : 0;
    return 0;
  };

  const auto socket_path = (dir / "unix.socket").string();
  auto unix_server = http::Server::listen_unix(socket_path, handler, server_options);
  if (auto* error = std::get_if<std::string>(&unix_server)) return *error;
  impl->unix_server = std::move(std::get<std::unique_ptr<http::Server>>(unix_server));
  if (::chmod(socket_path.c_str(), 0660) != 0) return "cannot set the mode of " + socket_path;

  impl->tls = {*cert_pem, *key_pem};
  // The listener worker moves HTTPS when core.https_address changes; set before any request can
  // ask for it.
  impl->listener = std::make_unique<Worker>(std::chrono::hours{1}, [](const std::stop_token&) {});
  impl->api->set_relisten([raw](const std::string& address, std::function<void(std::optional<std::string>)> done) {
    raw->listener->post(
        [raw, address, done = std::move(done)](const std::stop_token&) { done(raw->relisten(address)); });
  });
  if (listen) {
    auto https = impl->open_https(*listen);
    if (auto* error = std::get_if<std::string>(&https)) {
      if (listen_required) return *error;
      spdlog::error("berthd: core.https_address: {}; not listening on the network", *error);
    } else {
      impl->use_https(std::move(std::get<std::unique_ptr<http::Server>>(https)), listen);
      const auto addresses = impl->current_addresses();
      spdlog::info("berthd: listening on {}", addresses.empty() ? listen->first : addresses.front());
    }
  }
  impl->unix_server->start();
  // Instances that should run are started, then what happened without berthd is noticed every
  // few seconds: containers that stopped by themselves, snapshots that expired.
  impl->housekeeping = std::make_unique<Worker>(std::chrono::seconds{5}, [raw](const std::stop_token&) {
    raw->instances->housekeep(std::chrono::system_clock::now());
  });
  impl->housekeeping->post([raw](const std::stop_token& stop) { raw->instances->autostart(stop); });
  spdlog::info("berthd: serving {} (schema {})", socket_path, impl->db->schema_version());
  return std::unique_ptr<Daemon>(new Daemon(std::move(impl)));
}

}  // namespace berth::daemon
