#pragma once
// berthd's event stream, `GET /1.0/events` (lxd-protocol.md §1.5): each subscriber is a websocket
// that gets every event of the types it asked for, as JSON text frames. lxc waits for every async
// operation through it, so an operation event goes out at every transition.
//
// Thread-safe: publish() may be called from any thread; sending is the websocket's (queued, on
// the server thread). A subscriber that went away is dropped at the next publish.

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "http/server.hpp"

namespace berth::daemon {

class Events {
 public:
  explicit Events(std::string location = "none") : location_(std::move(location)) {}

  // `types`: of operation, lifecycle, logging; empty means operation and lifecycle. `project`:
  // only events of that project, unless `all_projects`.
  void subscribe(std::shared_ptr<http::WebSocket> socket, std::set<std::string> types, std::string project,
                 bool all_projects);

  // {"type", "timestamp", "metadata", "location", "project"} to every subscriber that wants it.
  void publish(const std::string& type, const nlohmann::json& metadata, const std::string& project = "default");

  [[nodiscard]] std::size_t subscribers();

 private:
  struct Subscriber {
    std::weak_ptr<http::WebSocket> socket;
    std::set<std::string> types;
    std::string project;
    bool all_projects = false;
  };
  std::mutex mu_;
  std::string location_;
  std::vector<Subscriber> subscribers_;
};

}  // namespace berth::daemon
