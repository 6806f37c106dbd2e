#include "daemon/api/operation_sockets.hpp"

#include <openssl/crypto.h>

namespace berth::daemon::api {

bool OperationSockets::add(const std::string& id, std::map<std::string, Accept> channels) {
  const auto op = operations_.get(id);
  if (!op || op->value("class", "") != "websocket" || op->value("status_code", 0) != 103) return false;
  {
    const std::lock_guard lock(state_->mu);
    state_->table[id] = std::move(channels);
  }
  // Forgotten when it ends (at once, should it have ended meanwhile).
  const auto forget = [weak = std::weak_ptr<State>(state_), id](const nlohmann::json&) {
    if (const auto state = weak.lock()) {
      const std::lock_guard lock(state->mu);
      state->table.erase(id);
    }
  };
  if (operations_.when_finished(id, forget, /*internal=*/true)) return true;
  forget(nullptr);  // gone meanwhile (and long enough ago to be forgotten)
  return false;
}

std::optional<OperationSockets::Accept> OperationSockets::take(const std::string& id, const std::string& secret) {
  const std::lock_guard lock(state_->mu);
  const auto op = state_->table.find(id);
  if (op == state_->table.end() || secret.empty()) return std::nullopt;
  for (auto it = op->second.begin(); it != op->second.end(); ++it) {
    const auto& known = it->first;
    if (known.size() != secret.size() || CRYPTO_memcmp(known.data(), secret.data(), secret.size()) != 0) continue;
    auto accept = std::move(it->second);
    op->second.erase(it);
    return accept;
  }
  return std::nullopt;
}

}  // namespace berth::daemon::api
