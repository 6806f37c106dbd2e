#include "daemon/events/events.hpp"

#include "engine/util/time.hpp"

namespace berth::daemon {

void Events::subscribe(std::shared_ptr<http::WebSocket> socket, std::set<std::string> types, std::string project,
                       bool all_projects) {
  if (types.empty()) types = {"operation", "lifecycle"};
  // What the client sends is not read; a close from it ends the subscription.
  socket->on_message = [](const std::string&, bool) {};
  std::lock_guard lock(mu_);
  subscribers_.push_back(Subscriber{socket, std::move(types), std::move(project), all_projects});
}

void Events::publish(const std::string& type, const nlohmann::json& metadata, const std::string& project) {
  const std::string text = nlohmann::json{
      {"type", type},
      {"timestamp", util::rfc3339_utc_now()},
      {"metadata", metadata},
      {"location", location_},
      {"project", project}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::lock_guard lock(mu_);
  std::erase_if(subscribers_, [](const Subscriber& s) {
    const auto socket = s.socket.lock();
    return !socket || !socket->is_open();
  });
  for (const auto& s : subscribers_) {
    if (!s.types.contains(type) || (!s.all_projects && s.project != project)) continue;
    if (const auto socket = s.socket.lock()) socket->send_text(text);
  }
}

std::size_t Events::subscribers() {
  std::lock_guard lock(mu_);
  return subscribers_.size();
}

}  // namespace berth::daemon
