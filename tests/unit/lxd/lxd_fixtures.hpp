#pragma once
// Canned LXD 5.0.2 answers, shaped like what a real daemon returned (trimmed).

#include <nlohmann/json.hpp>

namespace berth::lxd::testing {

inline nlohmann::json instance_json(const std::string& name, int status_code,
                                    nlohmann::json config = nlohmann::json::object(),
                                    nlohmann::json devices = nlohmann::json::object()) {
  return {{"architecture", "x86_64"},
          {"config", config},
          {"devices", devices},
          {"ephemeral", false},
          {"profiles", {"default"}},
          {"stateful", false},
          {"description", ""},
          {"created_at", "2026-11-26T17:41:30.379772145Z"},
          {"expanded_config", config},
          {"expanded_devices", devices},
          {"name", name},
          {"status", status_code == 103   ? "Running"
                     : status_code == 110 ? "Frozen"
                                          : "Stopped"},
          {"status_code", status_code},
          {"last_used_at", "0001-01-01T00:00:00Z"},
          {"location", "none"},
          {"type", "container"},
          {"project", "default"}};
}

inline nlohmann::json volume_json(const std::string& name, const std::string& type = "container",
                                  const std::string& project = "default") {
  return {{"config", nlohmann::json::object()},
          {"description", ""},
          {"name", name},
          {"type", type},
          {"used_by", nullptr},
          {"location", "none"},
          {"content_type", "filesystem"},
          {"project", project},
          {"created_at", "0001-01-01T00:00:00Z"}};
}

inline nlohmann::json instances_fixture() {
  return nlohmann::json::array(
      {instance_json("c1", 103, {{"limits.memory", "256MiB"}, {"volatile.uuid", "x"}, {"user.berth.fleet", "default"}}),
       instance_json("c2", 102, nlohmann::json::object(),
                     {{"data", {{"type", "disk"}, {"path", "/mnt"}, {"source", "/tmp"}, {"readonly", true}}}}),
       instance_json("c3", 110)});
}

// GET /1.0/resources of a small host (most of it left out): 4 threads, 8 GiB.
inline nlohmann::json resources_fixture() {
  return {{"cpu",
           {{"architecture", "x86_64"},
            {"sockets", nlohmann::json::array({{{"socket", 0}, {"cores", nlohmann::json::array()}}})},
            {"total", 4}}},
          {"memory",
           {{"hugepages_total", 0},
            {"hugepages_used", 0},
            {"hugepages_size", 2097152},
            {"used", 1073741824},
            {"total", 8589934592}}},
          {"gpu", {{"cards", nullptr}, {"total", 0}}},
          {"system", {{"type", "physical"}}}};
}

inline nlohmann::json volumes_fixture() {
  return nlohmann::json::array({volume_json("c1"), volume_json("c1/snap1"), volume_json("c1/snap0"), volume_json("c2"),
                                volume_json("c2/zz"), volume_json("c2/aa"), volume_json("c3"),
                                volume_json("data", "custom"), volume_json("data/snap0", "custom"),
                                volume_json("gone/snap0"), volume_json("p1/snap0", "container", "other")});
}

}  // namespace berth::lxd::testing
