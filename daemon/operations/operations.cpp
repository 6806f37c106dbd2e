#include "daemon/operations/operations.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <array>
#include <stdexcept>

#include "engine/util/time.hpp"

namespace berth::daemon {
namespace {

constexpr int running = 103;
constexpr int success = 200;
constexpr int failure = 400;
constexpr int cancelled = 401;

std::string hex(const unsigned char* bytes, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(digits[bytes[i] >> 4]);
    out.push_back(digits[bytes[i] & 0x0f]);
  }
  return out;
}

template <std::size_t N>
std::array<unsigned char, N> random_bytes() {
  std::array<unsigned char, N> out{};
  if (RAND_bytes(out.data(), static_cast<int>(N)) != 1) throw std::runtime_error("no random bytes from OpenSSL");
  return out;
}

std::string class_name(OperationClass c) {
  switch (c) {
    case OperationClass::task: return "task";
    case OperationClass::websocket: return "websocket";
    case OperationClass::token: return "token";
  }
  return "task";
}

std::string timestamp(Operations::Clock::time_point t) {
  return util::rfc3339_utc(t);
}

}  // namespace

std::string status_name(int code) {
  switch (code) {
    case 100: return "Operation created";
    case 101: return "Started";
    case 102: return "Stopped";
    case 103: return "Running";
    case 104: return "Cancelling";
    case 105: return "Pending";
    case 106: return "Starting";
    case 107: return "Stopping";
    case 108: return "Aborting";
    case 109: return "Freezing";
    case 110: return "Frozen";
    case 111: return "Thawed";
    case 112: return "Error";
    case 113: return "Ready";
    case 200: return "Success";
    case 400: return "Failure";
    case 401: return "Cancelled";
    default: return "Unknown";
  }
}

std::string random_uuid() {
  auto b = random_bytes<16>();
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  const auto h = hex(b.data(), b.size());
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20);
}

std::string random_secret() {
  const auto b = random_bytes<32>();
  return hex(b.data(), b.size());
}

Operations::Operations(std::string location, std::chrono::seconds keep_finished, std::function<Clock::time_point()> now,
                       std::function<void(const nlohmann::json&)> changed)
    : location_(std::move(location)),
      keep_finished_(keep_finished),
      now_(std::move(now)),
      changed_(std::move(changed)) {}

Operations::~Operations() {
  {
    const std::lock_guard lock(mu_);
    shutting_down_ = true;
  }
  work_ready_.notify_all();
  for (auto& worker : workers_) worker.join();
}

nlohmann::json Operations::new_object(const std::string& id, OperationClass c, const std::string& description,
                                      nlohmann::json metadata, nlohmann::json resources, bool may_cancel) const {
  const auto now = timestamp(now_());
  return nlohmann::json{{"id", id},
                        {"class", class_name(c)},
                        {"description", description},
                        {"created_at", now},
                        {"updated_at", now},
                        {"status", status_name(running)},
                        {"status_code", running},
                        {"resources", resources.is_object() ? resources : nlohmann::json::object()},
                        {"metadata", std::move(metadata)},
                        {"may_cancel", may_cancel},
                        {"err", ""},
                        {"location", location_}};
}

nlohmann::json Operations::add_token(TokenKind kind, const std::string& description, nlohmann::json metadata,
                                     nlohmann::json resources) {
  std::lock_guard lock(mu_);
  forget_old();
  const auto id = random_uuid();
  Entry entry;
  entry.object = new_object(id, OperationClass::token, description, std::move(metadata), std::move(resources), true);
  entry.token = kind;
  auto object = entry.object;
  table_.emplace(id, std::move(entry));
  if (changed_) changed_(object);
  return object;
}

nlohmann::json Operations::add_task(const std::string& description, nlohmann::json resources, TaskWork work,
                                    nlohmann::json metadata) {
  const auto id = random_uuid();
  Entry entry;
  entry.object = new_object(id, OperationClass::task, description, std::move(metadata), std::move(resources), false);
  // Written down before it can begin, so that no step of its work happens unrecorded.
  if (journal_.begun) journal_.begun(entry.object);
  std::unique_lock lock(mu_);
  forget_old();
  auto [it, inserted] = table_.emplace(id, std::move(entry));
  if (changed_) changed_(it->second.object);
  if (shutting_down_) {
    it->second.object["err"] = "berthd is stopping";
    set_status(it->second, cancelled);
    auto object = it->second.object;
    lock.unlock();
    if (journal_.ended) journal_.ended(id);
    return object;
  }
  queue_.push_back(Queued{id, std::move(work)});
  if (workers_.size() < worker_count && busy_ + queue_.size() > workers_.size()) {
    workers_.emplace_back([this] { work_loop(); });
  }
  auto object = it->second.object;
  lock.unlock();
  work_ready_.notify_one();
  return object;
}

void Operations::add_interrupted(nlohmann::json operation, const std::string& err, std::chrono::seconds keep) {
  if (!operation.is_object() || !operation.contains("id") || !operation["id"].is_string()) return;
  const auto id = operation["id"].get<std::string>();
  const std::lock_guard lock(mu_);
  if (table_.count(id) != 0) return;
  Entry entry;
  entry.object = std::move(operation);
  entry.object["err"] = err;
  entry.object["location"] = location_;
  entry.keep = keep;
  auto& added = table_.emplace(id, std::move(entry)).first->second;
  set_status(added, failure);
}

void Operations::work_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    work_ready_.wait(lock, [this] { return shutting_down_ || !queue_.empty(); });
    if (queue_.empty()) return;  // shutting down, nothing left
    Queued task = std::move(queue_.front());
    queue_.pop_front();
    ++busy_;
    lock.unlock();
    lxd::Result<nlohmann::json> outcome = lxd::make_error(lxd::ErrorKind::io, "the task failed");
    try {
      outcome = task.work();
    } catch (const std::exception& e) {
      outcome = lxd::make_error(lxd::ErrorKind::io, std::string("internal error: ") + e.what());
    }
    finish_task(task.id, std::move(outcome));
    lock.lock();
    --busy_;
    work_done_.notify_all();
  }
}

nlohmann::json Operations::add_websocket(const std::string& description, nlohmann::json resources,
                                         nlohmann::json metadata, bool may_cancel) {
  std::lock_guard lock(mu_);
  forget_old();
  const auto id = random_uuid();
  Entry entry;
  entry.object =
      new_object(id, OperationClass::websocket, description, std::move(metadata), std::move(resources), may_cancel);
  auto object = entry.object;
  table_.emplace(id, std::move(entry));
  if (changed_) changed_(object);
  return object;
}

bool Operations::set_metadata(const std::string& id, const std::string& key, nlohmann::json value) {
  const std::lock_guard lock(mu_);
  const auto it = table_.find(id);
  if (it == table_.end() || it->second.object.value("status_code", 0) != running) return false;
  auto& object = it->second.object;
  if (!object["metadata"].is_object()) object["metadata"] = nlohmann::json::object();
  if (object["metadata"].value(key, nlohmann::json()) == value) return true;
  object["metadata"][key] = std::move(value);
  object["updated_at"] = timestamp(now_());
  if (changed_) changed_(object);
  return true;
}

bool Operations::finish(const std::string& id, lxd::Result<nlohmann::json> outcome) {
  const std::lock_guard lock(mu_);
  const auto it = table_.find(id);
  if (it == table_.end() || it->second.finished || it->second.object.value("class", "") != "websocket") return false;
  conclude(it->second, std::move(outcome));
  return true;
}

void Operations::finish_task(const std::string& id, lxd::Result<nlohmann::json> outcome) {
  {
    const std::lock_guard lock(mu_);
    const auto it = table_.find(id);
    if (it != table_.end() && !it->second.finished) conclude(it->second, std::move(outcome));
  }
  if (journal_.ended) journal_.ended(id);
}

void Operations::conclude(Entry& entry, lxd::Result<nlohmann::json> outcome) {
  auto& object = entry.object;
  if (outcome) {
    if (outcome.value().is_object()) {
      if (!object["metadata"].is_object()) object["metadata"] = nlohmann::json::object();
      object["metadata"].update(outcome.value());
    }
    set_status(entry, success);
  } else {
    object["err"] = outcome.error().message;
    set_status(entry, failure);
  }
}

bool Operations::when_finished(const std::string& id, std::function<void(const nlohmann::json&)> done, bool internal) {
  const std::lock_guard lock(mu_);
  forget_old();
  const auto it = table_.find(id);
  if (it == table_.end()) return false;
  if (it->second.finished) {
    done(it->second.object);
    return true;
  }
  if (internal) {
    it->second.internal_waiters.push_back(std::move(done));
    return true;
  }
  auto& waiters = it->second.waiters;
  if (waiters.size() >= max_waiters) waiters.erase(waiters.begin());
  waiters.push_back(std::move(done));
  return true;
}

bool Operations::shutdown(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  shutting_down_ = true;
  std::vector<std::string> never_ran;
  for (auto& queued : queue_) {
    never_ran.push_back(queued.id);
    const auto it = table_.find(queued.id);
    if (it == table_.end()) continue;
    it->second.object["err"] = "berthd is stopping";
    set_status(it->second, cancelled);
  }
  queue_.clear();
  work_ready_.notify_all();
  if (journal_.ended) {
    lock.unlock();
    for (const auto& id : never_ran) journal_.ended(id);
    lock.lock();
  }
  return work_done_.wait_until(lock, deadline, [this] { return busy_ == 0; });
}

std::optional<nlohmann::json> Operations::get(const std::string& id) {
  std::lock_guard lock(mu_);
  forget_old();
  const auto it = table_.find(id);
  if (it == table_.end()) return std::nullopt;
  return it->second.object;
}

std::vector<nlohmann::json> Operations::list() {
  std::lock_guard lock(mu_);
  forget_old();
  std::vector<nlohmann::json> out;
  out.reserve(table_.size());
  for (const auto& [id, entry] : table_) out.push_back(entry.object);
  return out;
}

std::string Operations::cancel(const std::string& id, int& status) {
  std::lock_guard lock(mu_);
  forget_old();
  const auto it = table_.find(id);
  if (it == table_.end()) {
    status = 404;
    return "not found";
  }
  auto& entry = it->second;
  entry.used = false;  // a token its holder revokes answers no more, even in a used one's grace
  if (entry.object.value("status_code", 0) != running || !entry.object.value("may_cancel", false)) {
    status = 400;
    return "Only running operations can be cancelled";
  }
  set_status(entry, cancelled);
  status = 200;
  return {};
}

std::optional<nlohmann::json> Operations::consume_token(TokenKind kind, const std::string& secret,
                                                        const std::string& resource) {
  std::lock_guard lock(mu_);
  forget_old();
  if (secret.empty()) return std::nullopt;
  const auto lists = [&resource](const nlohmann::json& resources) {
    if (!resources.is_object()) return false;
    for (const auto& [name, urls] : resources.items()) {
      if (!urls.is_array()) continue;
      for (const auto& url : urls) {
        if (url.is_string() && url.get_ref<const std::string&>() == resource) return true;
      }
    }
    return false;
  };
  for (auto& [id, entry] : table_) {
    if (entry.token != kind) continue;
    const bool live = entry.object.value("status_code", 0) == running;
    const bool reusable = kind == TokenKind::image_download && entry.used;
    if (!live && !reusable) continue;
    const auto& metadata = entry.object["metadata"];
    if (!metadata.is_object() || !metadata.contains("secret") || !metadata["secret"].is_string()) continue;
    const auto& known = metadata["secret"].get_ref<const std::string&>();
    if (known.size() != secret.size() || CRYPTO_memcmp(known.data(), secret.data(), secret.size()) != 0) continue;
    if (!resource.empty() && !lists(entry.object["resources"])) continue;
    auto out = metadata;
    if (live) {
      entry.used = true;
      set_status(entry, cancelled);
    }
    return out;
  }
  return std::nullopt;
}

void Operations::set_status(Entry& entry, int code) {
  entry.object["status"] = status_name(code);
  entry.object["status_code"] = code;
  entry.object["updated_at"] = timestamp(now_());
  if (code >= 200) {
    entry.finished = now_();
    entry.object["may_cancel"] = false;
  }
  if (changed_) changed_(entry.object);
  if (code >= 200) {
    for (auto& waiter : entry.waiters) waiter(entry.object);
    for (auto& waiter : entry.internal_waiters) waiter(entry.object);
    entry.waiters.clear();
    entry.internal_waiters.clear();
  }
}

void Operations::forget_old() {
  const auto now = now_();
  // A token past its expiry (metadata.expiresAt) is cancelled, as if revoked.
  for (auto& [id, entry] : table_) {
    if (entry.finished || entry.object.value("class", "") != "token") continue;
    const auto& metadata = entry.object["metadata"];
    if (!metadata.is_object() || !metadata.contains("expiresAt") || !metadata["expiresAt"].is_string()) continue;
    const auto expires = util::parse_rfc3339_utc(metadata["expiresAt"].get_ref<const std::string&>());
    if (expires && now > *expires) set_status(entry, cancelled);
  }
  for (auto it = table_.begin(); it != table_.end();) {
    if (it->second.finished && now - *it->second.finished > it->second.keep.value_or(keep_finished_)) {
      it = table_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace berth::daemon
