#include "daemon/api/host_api.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "daemon/api/response.hpp"

namespace berth::daemon::api {
namespace {

namespace fs = std::filesystem;

std::string first_line(const fs::path& p) {
  std::ifstream in(p);
  std::string line;
  std::getline(in, line);
  return line;
}

std::int64_t number_in(const fs::path& p, std::int64_t fallback = 0) {
  try {
    return std::stoll(first_line(p));
  } catch (const std::exception&) {
    return fallback;
  }
}

// "key : value" lines (cpuinfo) or "Key: value kB" (meminfo), first value per key per block.
std::vector<std::map<std::string, std::string>> colon_blocks(const fs::path& p) {
  std::vector<std::map<std::string, std::string>> blocks(1);
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) {
      if (!blocks.back().empty()) blocks.emplace_back();
      continue;
    }
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    auto trim = [](std::string s) {
      const auto b = s.find_first_not_of(" \t");
      const auto e = s.find_last_not_of(" \t");
      return b == std::string::npos ? std::string{} : s.substr(b, e - b + 1);
    };
    blocks.back().try_emplace(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
  }
  if (blocks.back().empty()) blocks.pop_back();
  return blocks;
}

std::int64_t kib(const std::map<std::string, std::string>& m, const char* key) {
  const auto it = m.find(key);
  if (it == m.end()) return 0;
  try {
    return std::stoll(it->second) * 1024;
  } catch (const std::exception&) {
    return 0;
  }
}

nlohmann::json cpu_resources(const fs::path& root, const std::string& architecture) {
  const auto cpuinfo = colon_blocks(root / "proc/cpuinfo");
  std::map<int, std::map<std::string, std::string>> info;  // by processor number
  for (const auto& block : cpuinfo) {
    if (const auto it = block.find("processor"); it != block.end()) {
      try {
        info[std::stoi(it->second)] = block;
      } catch (const std::exception&) {
      }
    }
  }
  // socket -> core -> threads
  std::map<std::int64_t, std::map<std::int64_t, nlohmann::json>> sockets;
  std::map<std::int64_t, std::map<std::string, std::string>> socket_info;
  int total = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root / "sys/devices/system/cpu", ec)) {
    const auto name = entry.path().filename().string();
    if (name.size() < 4 || !name.starts_with("cpu") || name.find_first_not_of("0123456789", 3) != std::string::npos) {
      continue;
    }
    const int id = std::stoi(name.substr(3));
    const auto topology = entry.path() / "topology";
    const auto socket = number_in(topology / "physical_package_id");
    const auto core = number_in(topology / "core_id");
    const bool online = !fs::exists(entry.path() / "online") || number_in(entry.path() / "online", 1) == 1;
    auto& threads = sockets[socket][core];
    if (threads.is_null()) threads = nlohmann::json::array();
    threads.push_back({{"id", id},
                       {"numa_node", 0},
                       {"thread", static_cast<int>(threads.size())},
                       {"online", online},
                       {"isolated", false}});
    if (info.count(id) != 0) socket_info.try_emplace(socket, info[id]);
    ++total;
  }
  nlohmann::json out_sockets = nlohmann::json::array();
  for (const auto& [socket, cores] : sockets) {
    const auto& si = socket_info[socket];
    const auto value = [&](const char* key) {
      const auto it = si.find(key);
      return it == si.end() ? std::string{} : it->second;
    };
    std::int64_t mhz = 0;
    try {
      mhz = static_cast<std::int64_t>(std::stod(value("cpu MHz")));
    } catch (const std::exception&) {
    }
    nlohmann::json out_cores = nlohmann::json::array();
    for (const auto& [core, threads] : cores) {
      out_cores.push_back({{"core", core}, {"die", 0}, {"threads", threads}, {"frequency", mhz}});
    }
    out_sockets.push_back({{"name", value("model name")},
                           {"vendor", value("vendor_id")},
                           {"socket", socket},
                           {"cache", nlohmann::json::array()},
                           {"cores", out_cores},
                           {"frequency", mhz},
                           {"frequency_minimum", 0},
                           {"frequency_turbo", 0}});
  }
  return {{"architecture", architecture}, {"sockets", out_sockets}, {"total", total}};
}

nlohmann::json memory_resources(const fs::path& root) {
  const auto blocks = colon_blocks(root / "proc/meminfo");
  const auto m = blocks.empty() ? std::map<std::string, std::string>{} : blocks.front();
  const auto total = kib(m, "MemTotal");
  const auto available = m.count("MemAvailable") != 0 ? kib(m, "MemAvailable") : kib(m, "MemFree");
  const auto page = kib(m, "Hugepagesize");
  std::int64_t pages_total = 0, pages_free = 0;
  try {
    pages_total = m.count("HugePages_Total") != 0 ? std::stoll(m.at("HugePages_Total")) : 0;
    pages_free = m.count("HugePages_Free") != 0 ? std::stoll(m.at("HugePages_Free")) : 0;
  } catch (const std::exception&) {
  }
  return {{"nodes", nlohmann::json::array()},
          {"hugepages_total", pages_total * page},
          {"hugepages_used", (pages_total - pages_free) * page},
          {"hugepages_size", page},
          {"used", total - available},
          {"total", total}};
}

nlohmann::json storage_resources(const fs::path& root) {
  nlohmann::json disks = nlohmann::json::array();
  std::error_code ec;
  std::vector<fs::path> entries;
  for (const auto& entry : fs::directory_iterator(root / "sys/block", ec)) entries.push_back(entry.path());
  std::sort(entries.begin(), entries.end());
  for (const auto& dir : entries) {
    const auto id = dir.filename().string();
    // As LXD lists them: real disks, not loop, ram or device-mapper devices.
    if (id.starts_with("loop") || id.starts_with("ram") || id.starts_with("zram") || id.starts_with("dm-")) continue;
    const auto sectors = number_in(dir / "size");
    nlohmann::json partitions = nlohmann::json::array();
    std::vector<fs::path> parts;
    for (const auto& sub : fs::directory_iterator(dir, ec)) {
      if (sub.path().filename().string().starts_with(id) && fs::exists(sub.path() / "partition")) {
        parts.push_back(sub.path());
      }
    }
    std::sort(parts.begin(), parts.end());
    for (const auto& part : parts) {
      partitions.push_back({{"id", part.filename().string()},
                            {"device", first_line(part / "dev")},
                            {"read_only", number_in(part / "ro") == 1},
                            {"size", number_in(part / "size") * 512},
                            {"partition", number_in(part / "partition")}});
    }
    const bool rotational = number_in(dir / "queue/rotational") == 1;
    disks.push_back({{"id", id},
                     {"device", first_line(dir / "dev")},
                     {"model", first_line(dir / "device/model")},
                     {"type", id.starts_with("nvme") ? "nvme" : (id.starts_with("vd") ? "virtio" : "scsi")},
                     {"read_only", number_in(dir / "ro") == 1},
                     {"size", sectors * 512},
                     {"removable", number_in(dir / "removable") == 1},
                     {"rpm", rotational ? 1 : 0},
                     {"block_size", number_in(dir / "queue/logical_block_size", 512)},
                     {"partitions", partitions}});
  }
  const auto count = disks.size();
  return {{"disks", disks}, {"total", count}};
}

std::string number_text(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  std::array<char, 64> buf{};
  std::snprintf(buf.data(), buf.size(), "%.9g", v);
  return buf.data();
}

}  // namespace

nlohmann::json host_resources(const fs::path& root, const std::string& architecture) {
  const nlohmann::json none = {{"cards", nlohmann::json::array()}, {"total", 0}};
  const nlohmann::json no_devices = {{"devices", nlohmann::json::array()}, {"total", 0}};
  return {{"cpu", cpu_resources(root, architecture)},
          {"memory", memory_resources(root)},
          {"storage", storage_resources(root)},
          {"gpu", none},
          {"network", none},
          {"pci", no_devices},
          {"usb", no_devices},
          {"system", {{"type", "physical"}}}};
}

std::string metrics_text(const std::vector<std::pair<std::string, ContainerUsage>>& usage) {
  struct Sample {
    std::string labels;  // without name/project/type
    double value = 0;
  };
  // metric -> (help, samples per container)
  std::map<std::string, std::vector<std::pair<std::string, Sample>>> series;
  std::map<std::string, std::pair<std::string, std::string>> meta;  // metric -> help, type
  const auto add = [&](const std::string& metric, const char* help, const char* type, const std::string& name,
                       Sample s) {
    meta.try_emplace(metric, help, type);
    series[metric].emplace_back(name, std::move(s));
  };
  static const std::map<std::string, const char*> memory_help = {
      {"Active_anon", "The amount of anonymous memory on active LRU list."},
      {"Active_file", "The amount of file-backed memory on active LRU list."},
      {"Active", "The amount of memory on active LRU list."},
      {"Cached", "The amount of cached memory."},
      {"Dirty", "The amount of memory waiting to get written back to the disk."},
      {"Inactive_anon", "The amount of anonymous memory on inactive LRU list."},
      {"Inactive_file", "The amount of file-backed memory on inactive LRU list."},
      {"Inactive", "The amount of memory on inactive LRU list."},
      {"Mapped", "The amount of mapped memory."},
      {"RSS", "The amount of anonymous and swap cache memory."},
      {"Shmem", "The amount of cached filesystem data that is swap-backed."},
      {"Unevictable", "The amount of unevictable memory."},
      {"Writeback", "The amount of memory queued for syncing to disk."}};
  for (const auto& [name, u] : usage) {
    for (const auto& c : u.cpus) {
      const std::string cpu = "cpu=\"" + std::to_string(c.cpu) + "\",";
      add("lxd_cpu_seconds_total", "The total number of CPU time used in seconds.", "counter", name,
          {cpu + "mode=\"system\",", static_cast<double>(c.system_ns) / 1e9});
      add("lxd_cpu_seconds_total", "The total number of CPU time used in seconds.", "counter", name,
          {cpu + "mode=\"user\",", static_cast<double>(c.user_ns) / 1e9});
    }
    for (const auto& [key, value] : u.memory) {
      const auto help = memory_help.find(key);
      if (help == memory_help.end()) continue;
      add("lxd_memory_" + key + "_bytes", help->second, "gauge", name, {"", static_cast<double>(value)});
    }
    if (u.memory_limit > 0) {
      const auto cached = u.memory.count("Cached") != 0 ? u.memory.at("Cached") : 0;
      add("lxd_memory_MemTotal_bytes", "The amount of used memory.", "gauge", name,
          {"", static_cast<double>(u.memory_limit)});
      add("lxd_memory_MemAvailable_bytes", "The amount of available memory.", "gauge", name,
          {"", static_cast<double>(u.memory_limit - u.memory_usage + cached)});
      add("lxd_memory_MemFree_bytes", "The amount of free memory.", "gauge", name,
          {"", static_cast<double>(u.memory_limit - u.memory_usage)});
    }
    if (u.swap_usage) {
      add("lxd_memory_Swap_bytes", "The amount of used swap memory.", "gauge", name,
          {"", static_cast<double>(*u.swap_usage)});
    }
    add("lxd_procs_total", "The number of running processes.", "gauge", name, {"", static_cast<double>(u.processes)});
  }
  std::ostringstream out;
  for (const auto& [metric, samples] : series) {
    out << "# HELP " << metric << ' ' << meta[metric].first << '\n';
    out << "# TYPE " << metric << ' ' << meta[metric].second << '\n';
    for (const auto& [name, s] : samples) {
      out << metric << '{' << s.labels << "name=\"" << name << "\",project=\"default\",type=\"container\"} "
          << number_text(s.value) << '\n';
    }
  }
  return out.str();
}

void add_host_routes(Router& router, Instances& instances) {
  router.add("/1.0/resources", "GET", Access::trusted,
             [&instances](const Call&) { return sync_response(host_resources("/", instances.architecture())); });
}

const std::vector<std::string>& host_extensions() {
  // resources, resources_v2: /1.0/resources in the v2 shape (lxc info --resources needs it);
  // metrics: /1.0/metrics (trusted clients and metrics certificates).
  static const std::vector<std::string> list = {"resources", "resources_v2", "metrics"};
  return list;
}

}  // namespace berth::daemon::api
