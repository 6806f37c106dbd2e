#include "daemon/instances/lxc_driver.hpp"

#include "daemon/instances/lxc_plumbing.hpp"
#include "engine/util/quantity.hpp"

#include <fcntl.h>
#include <lxc/lxccontainer.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <system_error>

namespace berth::daemon {
namespace {

namespace fs = std::filesystem;
using lxd::Error;
using lxd::ErrorKind;
using lxd::make_error;
using CgroupVersion = HostFacts::CgroupVersion;

constexpr unsigned long cgroup_v1_magic = 0x27e0ebUL;
constexpr unsigned long cgroup_v2_magic = 0x63677270UL;
constexpr int start_wait_seconds = 30;
constexpr int kill_wait_seconds = 30;
// What the start helper may say that start() keeps for its message.
constexpr std::size_t helper_output_limit = 64 * 1024;
constexpr const char* default_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// lxc.* templates shipped with liblxc: seccomp, capabilities, device rules, lxcfs; and the
// unprivileged adjustments. LXD includes only common.conf.d and writes the rest itself; berthd
// keeps the distribution's defaults and overrides what LXD sets differently.
constexpr const char* lxc_template_dir = "/usr/share/lxc/config";

Error invalid(std::string message) {
  return make_error(ErrorKind::invalid_argument, std::move(message));
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::optional<std::int64_t> parse_int(std::string_view s) {
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<bool> parse_bool(std::string_view value) {
  const std::string v = lower(value);
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  return std::nullopt;
}

// "0-1,3" → {0,1,3}; nullopt when malformed.
std::optional<std::vector<int>> parse_cpu_list(std::string_view s) {
  std::vector<int> cpus;
  while (!s.empty()) {
    const std::size_t comma = s.find(',');
    const std::string_view part = s.substr(0, comma);
    s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
    if (comma != std::string_view::npos && s.empty()) return std::nullopt;  // trailing comma
    const std::size_t dash = part.find('-');
    const auto first = parse_int(part.substr(0, dash));
    const auto last = dash == std::string_view::npos ? first : parse_int(part.substr(dash + 1));
    if (!first || !last || *first < 0 || *last < *first || *last > 8191) return std::nullopt;
    for (std::int64_t c = *first; c <= *last; ++c) cpus.push_back(static_cast<int>(c));
  }
  if (cpus.empty()) return std::nullopt;
  return cpus;
}

std::string cpu_list_text(const std::vector<int>& cpus) {
  std::string out;
  for (const int c : cpus) {
    // Appended piece by piece: GCC 12 -O3 mistakes the concatenated form for an overlapping memcpy.
    if (!out.empty()) out += ',';
    out += std::to_string(c);
  }
  return out;
}

// One rule per supported key: its value check (empty values are "unset" and always valid).
Result<void> validate_value(const std::string& key, const std::string& value) {
  const auto bad = [&](const std::string& expected) {
    // "Invalid value" as LXD words it, so that what users and scripts look for is there.
    return invalid("Invalid value for instance config key \"" + key + "\": \"" + value + "\" is not " + expected);
  };
  if (value.empty()) return {};
  if (key == "limits.memory") {
    if (!value.empty() && value.back() == '%') {
      const auto percent = parse_int(std::string_view(value).substr(0, value.size() - 1));
      if (!percent || *percent <= 0 || *percent > 100) return bad("a percentage from 1% to 100%");
      return {};
    }
    const auto bytes = util::parse_byte_size(value);
    if (!bytes || *bytes == 0) return bad("a memory size (for example 256MB, 1GiB or 50%)");
    return {};
  }
  if (key == "limits.cpu") {
    const auto count = parse_int(value);
    if (count) return *count >= 1 ? Result<void>{} : bad("a number of cpus (1 or more) or a cpu list like 0-1,3");
    if (!parse_cpu_list(value)) return bad("a number of cpus or a cpu list like 0-1,3");
    return {};
  }
  if (key == "limits.processes") {
    const auto n = parse_int(value);
    if (!n || *n < 1) return bad("a positive number of processes");
    return {};
  }
  if (key == "security.privileged" || key == "security.nesting" || key == "boot.autostart") {
    if (!parse_bool(value)) return bad("a boolean (true or false)");
    return {};
  }
  return {};
}

bool supported_key(const std::string& key) {
  static const std::set<std::string, std::less<>> exact = {
      "limits.memory", "limits.cpu", "limits.processes", "security.privileged", "security.nesting", "boot.autostart"};
  if (exact.count(key) != 0) return true;
  for (const std::string_view prefix : {"user.", "environment.", "image.", "volatile."}) {
    if (starts_with(key, prefix) && key.size() > prefix.size()) return true;
  }
  return false;
}

bool valid_interface_name(std::string_view s) {
  if (s.empty() || s.size() > 15 || s == "." || s == "..") return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c != '/' && c != ':' && std::isspace(static_cast<unsigned char>(c)) == 0; });
}

bool valid_mac(std::string_view s) {
  if (s.size() != 17) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i % 3 == 2 ? s[i] != ':' : std::isxdigit(static_cast<unsigned char>(s[i])) == 0) return false;
  }
  return true;
}

bool has_space(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; });
}

std::string device_value(const std::map<std::string, std::string>& device, const char* key) {
  const auto it = device.find(key);
  return it == device.end() ? std::string{} : it->second;
}

// ---- liblxc ----

// liblxc's last error lines from the container's log, for a failure message.
std::string log_tail(const fs::path& log) {
  std::ifstream in(log);
  std::vector<std::string> errors;
  for (std::string line; std::getline(in, line);) {
    if (line.find(" ERROR ") != std::string::npos) errors.push_back(line);
  }
  if (errors.empty()) return "no error in the log";
  if (errors.size() > 3) errors.erase(errors.begin(), errors.end() - 3);
  std::string out;
  for (std::string& e : errors) {
    // "lxc NAME DATE ERROR   file - where - message": keep from the level on.
    const std::size_t at = e.find(" ERROR ");
    out += (out.empty() ? "" : " | ") + e.substr(at + 1);
  }
  return out;
}

// ---- the start helper's plumbing ----

// Appends what is readable now (or until EOF with a blocking fd); false at EOF or on an error.
bool read_available(int fd, std::string& out) {
  std::array<char, 4096> buf{};
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0) {
      if (out.size() < helper_output_limit) out.append(buf.data(), static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
}

// The helper's output on one line, its last part when long.
std::string one_line(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!text.empty() && text.back() == ' ') text.pop_back();
  constexpr std::size_t keep = 1000;
  if (text.size() > keep) text = "..." + text.substr(text.size() - keep);
  return text;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// liblxc's state names to LXD's status and code (lxd-protocol.md §1.4); anything else is Error.
ContainerStatus status_of(const char* raw) {
  static const std::array<std::pair<std::string_view, std::pair<const char*, int>>, 8> codes = {{
      {"STOPPED", {"Stopped", 102}},
      {"STARTING", {"Starting", 106}},
      {"RUNNING", {"Running", 103}},
      {"STOPPING", {"Stopping", 107}},
      {"ABORTING", {"Aborting", 108}},
      {"FREEZING", {"Freezing", 109}},
      {"FROZEN", {"Frozen", 110}},
      {"THAWED", {"Thawed", 111}},
  }};
  for (const auto& [lxc_state, status] : codes) {
    if (raw != nullptr && lxc_state == raw) return {status.first, status.second};
  }
  return {"Error", 112};
}

std::optional<std::int64_t> cgroup_number(lxc_container* c, const char* key) {
  std::array<char, 4096> buf{};
  const int n = c->get_cgroup_item(c, key, buf.data(), static_cast<int>(buf.size() - 1));
  if (n <= 0) return std::nullopt;
  std::string_view text(buf.data(), static_cast<std::size_t>(n));
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) text.remove_suffix(1);
  return parse_int(text);
}

std::optional<std::int64_t> cgroup_stat_field(lxc_container* c, const char* key, std::string_view field) {
  std::array<char, 4096> buf{};
  const int n = c->get_cgroup_item(c, key, buf.data(), static_cast<int>(buf.size() - 1));
  if (n <= 0) return std::nullopt;
  std::istringstream in(std::string(buf.data(), static_cast<std::size_t>(n)));
  std::string name;
  std::int64_t value = 0;
  while (in >> name >> value) {
    if (name == field) return value;
  }
  return std::nullopt;
}

CgroupVersion controller_version(const char* controller) {
  struct statfs sfs {};
  if (::statfs("/sys/fs/cgroup", &sfs) == 0 && static_cast<unsigned long>(sfs.f_type) == cgroup_v2_magic) {
    return CgroupVersion::v2;  // unified only
  }
  const std::string v1 = std::string("/sys/fs/cgroup/") + controller;
  if (::statfs(v1.c_str(), &sfs) == 0 && static_cast<unsigned long>(sfs.f_type) == cgroup_v1_magic) {
    return CgroupVersion::v1;
  }
  return CgroupVersion::v2;  // hybrid host with this controller on the unified hierarchy
}

std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

// ---- the plumbing shared with exec (lxc_plumbing.hpp) ----

int set_helper_attributes(SpawnAttr& attr) {
  sigset_t none;
  sigemptyset(&none);
  sigset_t all;  // back to default: berthd ignores SIGPIPE and blocks SIGTERM/SIGINT
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  int err = posix_spawnattr_setflags(
      &attr.value, static_cast<short>(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));
  if (err == 0) err = posix_spawnattr_setpgroup(&attr.value, 0);
  if (err == 0) err = posix_spawnattr_setsigmask(&attr.value, &none);
  if (err == 0) err = posix_spawnattr_setsigdefault(&attr.value, &all);
  return err;
}

std::string errno_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

Result<ContainerPtr> open_container(const std::filesystem::path& lxcpath, const std::string& name) {
  ContainerPtr c(lxc_container_new(name.c_str(), lxcpath.c_str()));
  if (!c) {
    return make_error(ErrorKind::io, "container " + name + ": liblxc could not load it from " +
                                         (lxcpath / name / "config").string() + " (unreadable or invalid config)");
  }
  return c;
}

Result<ContainerPtr> open_defined(const std::filesystem::path& lxcpath, const std::string& name) {
  if (auto r = validate_instance_name(name); !r) return r.error();
  // liblxc makes LXCPATH/NAME/NAME.log for any name it is asked about: look before asking.
  std::error_code ec;
  if (!fs::exists(lxcpath / name / "config", ec)) {
    return make_error(ErrorKind::not_found, "container " + name + ": not defined in " + lxcpath.string());
  }
  auto c = open_container(lxcpath, name);
  if (!c) return c.error();
  if (!(*c)->is_defined(c->get())) {
    return make_error(ErrorKind::not_found, "container " + name + ": not defined in " + lxcpath.string());
  }
  return c;
}

std::optional<int> wait_child(pid_t pid, int flags, bool& exited) {
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, flags);
    if (r == pid) {
      exited = true;
      return status;
    }
    if (r == 0) {
      exited = false;
      return status;
    }
    if (errno != EINTR) {
      exited = false;
      return std::nullopt;
    }
  }
}

// ---- validation ----

bool config_true(const std::map<std::string, std::string>& config, const std::string& key) {
  const auto it = config.find(key);
  return it != config.end() && parse_bool(it->second).value_or(false);
}

Result<void> validate_instance_name(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= 63 && name.front() != '-' && name.back() != '-' &&
                  std::isdigit(static_cast<unsigned char>(name.front())) == 0 &&
                  std::all_of(name.begin(), name.end(),
                              [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-'; });
  if (!ok) {
    return invalid("instance name \"" + name +
                   "\": use 1-63 letters, digits and '-', starting with a letter and not ending with '-'");
  }
  return {};
}

Result<void> validate_instance_config(const std::map<std::string, std::string>& config) {
  for (const auto& [key, value] : config) {
    if (!supported_key(key)) {
      return invalid("instance config key \"" + key +
                     "\" is not supported by berthd (supported: limits.memory, limits.cpu, limits.processes, "
                     "security.privileged, security.nesting, boot.autostart, user.*, environment.*, image.*, "
                     "volatile.*)");
    }
    if (auto r = validate_value(key, value); !r) return r;
  }
  return {};
}

Result<void> validate_devices(const std::map<std::string, std::map<std::string, std::string>>& devices) {
  for (const auto& [name, device] : devices) {
    const std::string where = "device \"" + name + "\"";
    const auto get = [&dev = device](const char* key) { return device_value(dev, key); };
    const std::string type = get("type");
    std::set<std::string, std::less<>> allowed;
    if (type == "disk") {
      allowed = {"type", "path", "source", "readonly", "pool"};
      const std::string path = get("path");
      if (path.empty() || path.front() != '/') return invalid(where + ": key \"path\" must be an absolute path");
      if (path == "/") {
        if (!get("source").empty()) return invalid(where + ": the root disk (path /) takes \"pool\", not \"source\"");
      } else {
        const std::string source = get("source");
        if (source.empty() || source.front() != '/') {
          return invalid(where + ": key \"source\" must be an absolute host path");
        }
        if (has_space(source) || has_space(path)) {
          return invalid(where + ": \"source\" and \"path\" must not contain white space");
        }
        if (path.find("/../") != std::string::npos || (path.size() >= 3 && path.substr(path.size() - 3) == "/..")) {
          return invalid(where + ": key \"path\" must not contain \"..\"");
        }
      }
      if (!get("readonly").empty() && !parse_bool(get("readonly"))) {
        return invalid(where + ": key \"readonly\" must be a boolean (true or false)");
      }
    } else if (type == "nic") {
      allowed = {"type", "nictype", "parent", "name", "hwaddr"};
      if (get("nictype") != "bridged") {
        return invalid(where + ": key \"nictype\" must be \"bridged\" (the only nic type berthd supports)");
      }
      if (!valid_interface_name(get("parent"))) {
        return invalid(where + ": key \"parent\" must name the host bridge (1-15 characters)");
      }
      if (device.count("name") != 0 && !valid_interface_name(get("name"))) {
        return invalid(where + ": key \"name\" must be an interface name (1-15 characters)");
      }
      if (!get("hwaddr").empty() && !valid_mac(get("hwaddr"))) {
        return invalid(where + ": key \"hwaddr\" must be a MAC address like 00:16:3e:12:34:56");
      }
    } else {
      return invalid(where + ": type \"" + type + "\" is not supported by berthd (disk or nic)");
    }
    for (const auto& [key, value] : device) {
      if (allowed.count(key) == 0) {
        return invalid(where + ": key \"" + key + "\" is not supported by berthd for a " + type + " device");
      }
    }
  }
  return {};
}

// ---- host facts and limits ----

HostFacts HostFacts::probe() {
  HostFacts h;
  h.memory = controller_version("memory");
  h.cpuset = controller_version("cpuset");
  h.pids = controller_version("pids");
  h.cpu = controller_version("cpuacct");
  struct sysinfo si {};
  if (::sysinfo(&si) == 0) h.memory_total = static_cast<std::uint64_t>(si.totalram) * si.mem_unit;
  h.online_cpus = parse_cpu_list(read_first_line("/sys/devices/system/cpu/online")).value_or(std::vector<int>{0});
  h.apparmor = read_first_line("/sys/module/apparmor/parameters/enabled") == "Y";
  return h;
}

std::vector<CgroupSetting> limit_settings(const std::map<std::string, std::string>& config, const HostFacts& host,
                                          bool reset_unset) {
  const auto value_of = [&config](const char* key) {
    const auto it = config.find(key);
    return it == config.end() ? std::string{} : it->second;
  };
  std::vector<CgroupSetting> out;

  const std::string memory = value_of("limits.memory");
  if (!memory.empty() || reset_unset) {
    std::string bytes;
    if (memory.empty()) {
      bytes = host.memory == CgroupVersion::v1 ? "-1" : "max";
    } else if (memory.back() == '%') {
      const auto percent = parse_int(std::string_view(memory).substr(0, memory.size() - 1)).value_or(100);
      bytes = std::to_string(host.memory_total / 100 * static_cast<std::uint64_t>(percent));
    } else {
      bytes = std::to_string(util::parse_byte_size(memory).value_or(0));
    }
    out.push_back({host.memory == CgroupVersion::v1 ? "memory.limit_in_bytes" : "memory.max", bytes, host.memory});
  }

  const std::string cpu = value_of("limits.cpu");
  if (!cpu.empty() || reset_unset) {
    // LXD balances "N" cpus across containers; berthd pins to the first N online cpus.
    std::vector<int> cpus = host.online_cpus;
    if (const auto count = parse_int(cpu)) {
      cpus.resize(std::min(cpus.size(), static_cast<std::size_t>(*count)));
    } else if (!cpu.empty()) {
      cpus = parse_cpu_list(cpu).value_or(host.online_cpus);
    }
    out.push_back({"cpuset.cpus", cpu_list_text(cpus), host.cpuset});
  }

  const std::string processes = value_of("limits.processes");
  if (!processes.empty() || reset_unset) {
    out.push_back({"pids.max", processes.empty() ? "max" : processes, host.pids});
  }
  return out;
}

Result<std::vector<std::pair<std::string, std::string>>> lxc_config_items(const ContainerSpec& spec,
                                                                          const HostFacts& host,
                                                                          const fs::path& lxcpath) {
  if (auto r = validate_instance_name(spec.name); !r) return r.error();
  if (auto r = validate_instance_config(spec.config); !r) return r.error();
  if (auto r = validate_devices(spec.devices); !r) return r.error();
  const std::string where = "container " + spec.name;
  if (spec.config.count("security.privileged") != 0 &&
      config_true(spec.config, "security.privileged") != spec.privileged) {
    return invalid(where + ": security.privileged disagrees with the spec's privileged flag");
  }
  if (!spec.privileged && spec.idmap.empty()) {
    return invalid(where + ": an unprivileged container needs an id map (see default_idmap)");
  }
  std::error_code ec;
  const fs::path rootfs = fs::canonical(spec.rootfs, ec);
  if (ec || !fs::is_directory(rootfs, ec)) {
    return make_error(ErrorKind::not_found, where + ": rootfs " + spec.rootfs.string() + " is not a directory");
  }
  if (has_space(rootfs.string())) return invalid(where + ": rootfs path must not contain white space");

  std::vector<std::pair<std::string, std::string>> items;
  const auto set = [&items](std::string key, std::string value) {
    items.emplace_back(std::move(key), std::move(value));
  };
  const std::string templates = lxc_template_dir;
  if (fs::exists(templates + "/common.conf", ec)) set("lxc.include", templates + "/common.conf");
  if (!spec.privileged && fs::exists(templates + "/userns.conf", ec)) set("lxc.include", templates + "/userns.conf");

  set("lxc.uts.name", spec.name);
  set("lxc.rootfs.path", "dir:" + rootfs.string());
  set("lxc.log.file", (lxcpath / spec.name / (spec.name + ".log")).string());
  set("lxc.log.level", "warn");
  // With AppArmor on the host liblxc generates a profile per container; without it there is none
  // to load and "unconfined" is the only value liblxc accepts.
  set("lxc.apparmor.profile", host.apparmor ? "generated" : "unconfined");
  if (host.apparmor && config_true(spec.config, "security.nesting")) set("lxc.apparmor.allow_nesting", "1");

  // As LXD: /proc and /sys writable where the user namespace protects the host, mixed otherwise.
  set("lxc.mount.auto", "");
  set("lxc.mount.auto", spec.privileged ? "proc:mixed sys:mixed cgroup:mixed" : "proc:rw sys:rw cgroup:mixed");
  set("lxc.autodev", "1");
  set("lxc.pty.max", "1024");
  set("lxc.tty.max", "0");
  if (config_true(spec.config, "security.nesting")) {
    set("lxc.mount.entry", "proc dev/.lxc/proc proc create=dir,optional 0 0");
    set("lxc.mount.entry", "sys dev/.lxc/sys sysfs create=dir,optional 0 0");
  }
  if (!spec.privileged) {
    for (const std::string& line : idmap_to_lxc(spec.idmap)) set("lxc.idmap", line);
  }
  for (const auto& [key, value] : spec.config) {
    if (starts_with(key, "environment.")) set("lxc.environment", key.substr(12) + "=" + value);
  }
  for (const CgroupSetting& s : limit_settings(spec.config, host, false)) {
    set((s.version == CgroupVersion::v1 ? "lxc.cgroup." : "lxc.cgroup2.") + s.key, s.value);
  }

  int nic_index = 0;
  for (const auto& [name, device] : spec.devices) {
    const auto get = [&dev = device](const char* key) { return device_value(dev, key); };
    if (get("type") == "disk") {
      const std::string path = get("path");
      if (path == "/") continue;  // the rootfs itself
      const std::string source = get("source");
      const bool is_dir = fs::is_directory(source, ec);
      if (!is_dir && !fs::exists(source, ec)) {
        return make_error(ErrorKind::not_found,
                          where + ": device \"" + name + "\": source " + source + " does not exist");
      }
      // A directory is bound with what is mounted below it (rbind): in an unprivileged container's
      // user namespace those mounts are locked, and the kernel refuses a plain bind of a directory
      // that has any (EINVAL), as /tmp does whenever a loop device or tmpfs is mounted below it.
      std::string options = is_dir ? "rbind,create=dir" : "bind,create=file";
      if (parse_bool(get("readonly")).value_or(false)) options += ",ro";
      set("lxc.mount.entry", source + " " + path.substr(1) + " none " + options + " 0 0");
    } else {  // nic, bridged
      const std::string prefix = "lxc.net." + std::to_string(nic_index++) + ".";
      set(prefix + "type", "veth");
      set(prefix + "link", get("parent"));
      set(prefix + "name", get("name").empty() ? name : get("name"));
      if (!get("hwaddr").empty()) set(prefix + "hwaddr", get("hwaddr"));
      set(prefix + "flags", "up");
    }
  }
  if (nic_index == 0) set("lxc.net.0.type", "empty");  // a network namespace with loopback only
  return items;
}

// ---- the driver ----

LxcDriver::LxcDriver(fs::path lxcpath) : LxcDriver(std::move(lxcpath), HostFacts::probe()) {}

LxcDriver::LxcDriver(fs::path lxcpath, HostFacts host) : LxcDriver(std::move(lxcpath), std::move(host), {}) {}

LxcDriver::LxcDriver(fs::path lxcpath, LxcDriverOptions options)
    : LxcDriver(std::move(lxcpath), HostFacts::probe(), std::move(options)) {}

LxcDriver::LxcDriver(fs::path lxcpath, HostFacts host, LxcDriverOptions options)
    : lxcpath_(std::move(lxcpath)), host_(std::move(host)), options_(std::move(options)) {
  // Read here, once: getenv is not safe against a concurrent setenv, and starts run on any thread.
  const char* path = std::getenv("PATH");
  helper_path_env_ = std::string("PATH=") + (path != nullptr && *path != '\0' ? path : default_path);
}

fs::path LxcDriver::log_path(const std::string& name) const {
  return lxcpath_ / name / (name + ".log");
}

Result<void> LxcDriver::define(const ContainerSpec& spec) {
  forget_handle(spec.name);
  auto items = lxc_config_items(spec, host_, lxcpath_);
  if (!items) return items.error();
  const std::string where = "container " + spec.name;
  std::error_code ec;
  fs::create_directories(lxcpath_, ec);
  if (ec) return make_error(ErrorKind::io, where + ": create " + lxcpath_.string() + ": " + ec.message());
  const fs::path dir = lxcpath_ / spec.name;
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return make_error(ErrorKind::io, where + ": create " + dir.string() + ": " + errno_text(errno));
  }
  auto c = open_container(lxcpath_, spec.name);
  if (!c) return c.error();
  lxc_container* ct = c->get();
  ct->clear_config(ct);
  for (const auto& [key, value] : *items) {
    if (!ct->set_config_item(ct, key.c_str(), value.c_str())) {
      return make_error(ErrorKind::invalid_argument, where + ": liblxc refused \"" + key + " = " + value +
                                                         "\" (this liblxc is " + lxc_get_version() + ")");
    }
  }
  const fs::path config = dir / "config";
  if (!ct->save_config(ct, config.c_str())) {
    return make_error(ErrorKind::io, where + ": liblxc could not write " + config.string());
  }
  return {};
}

Result<void> LxcDriver::start(const ContainerSpec& spec) {
  const std::string where = "container " + spec.name;
  if (auto running_now = open_container(lxcpath_, spec.name);
      running_now && (*running_now)->is_running(running_now->get())) {
    return make_error(ErrorKind::conflict, where + ": already running");
  }
  // A fresh log per start, so a failure quotes this start's errors; the previous one stays as .old.
  // Before the config is loaded: loading it opens the log.
  const fs::path log = log_path(spec.name);
  std::error_code ec;
  fs::rename(log, fs::path(log).concat(".old"), ec);
  if (auto r = define(spec); !r) return r;
  if (options_.start_helper.empty()) return start_in_process(spec.name, log);
  return start_with_helper(spec.name, log);
}

Result<void> LxcDriver::start_in_process(const std::string& name, const fs::path& log) {
  const std::string where = "container " + name;
  auto c = open_defined(lxcpath_, name);
  if (!c) return c.error();
  lxc_container* ct = c->get();
  ct->want_daemonize(ct, true);
  ct->want_close_all_fds(ct, true);  // the caller's descriptors must not leak into the monitor
  if (!ct->start(ct, 0, nullptr)) {
    return make_error(ErrorKind::io,
                      where + ": liblxc could not start it: " + log_tail(log) + " (full log: " + log.string() + ")");
  }
  if (!ct->wait(ct, "RUNNING", start_wait_seconds)) {
    return make_error(ErrorKind::timeout, where + ": not RUNNING " + std::to_string(start_wait_seconds) +
                                              " s after start (state " + ct->state(ct) + "); see " + log.string());
  }
  return {};
}

Result<void> LxcDriver::start_with_helper(const std::string& name, const fs::path& log) {
  const std::string where = "container " + name;
  const std::string helper = options_.start_helper.string();
  const auto io_error = [&](const std::string& what, int err) {
    return make_error(ErrorKind::io, where + ": start helper " + helper + ": " + what + ": " + errno_text(err));
  };

  // Everything the child needs is prepared here: after posix_spawn's clone the child only applies
  // these actions and execs (glibc's posix_spawn runs nothing else in it).
  std::array<int, 2> pipe_fds{-1, -1};
  if (::pipe2(pipe_fds.data(), O_CLOEXEC) != 0) return io_error("pipe", errno);
  UniqueFd out_read(pipe_fds[0]);
  UniqueFd out_write(pipe_fds[1]);
  SpawnActions actions;
  int err = posix_spawn_file_actions_addopen(&actions.value, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (err == 0) err = posix_spawn_file_actions_adddup2(&actions.value, out_write.get(), STDOUT_FILENO);
  if (err == 0) err = posix_spawn_file_actions_adddup2(&actions.value, out_write.get(), STDERR_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  // Descriptors another thread opened without O_CLOEXEC must not reach the helper either.
  if (err == 0) err = posix_spawn_file_actions_addclosefrom_np(&actions.value, STDERR_FILENO + 1);
#endif
  if (err != 0) return io_error("file actions", err);
  // Its own process group, so a timeout kills the helper and whatever it forked that is still in it.
  SpawnAttr attr;
  err = set_helper_attributes(attr);
  if (err != 0) return io_error("spawn attributes", err);

  std::string arg0 = helper;
  std::string arg1 = "forkstart";
  std::string arg2 = lxcpath_.string();
  std::string arg3 = name;
  std::array<char*, 5> argv{arg0.data(), arg1.data(), arg2.data(), arg3.data(), nullptr};
  std::string path_env = helper_path_env_;
  std::array<char*, 2> envp{path_env.data(), nullptr};
  pid_t pid = -1;
  err = ::posix_spawn(&pid, helper.c_str(), &actions.value, &attr.value, argv.data(), envp.data());
  if (err != 0) return io_error("could not run it", err);
  out_write.reset();  // the helper's end; EOF once it (and anything it forked) closes it

  // Its output and its exit, until the deadline. A pidfd wakes us at the exit; without one (old
  // kernel) we look every 20 ms.
  const auto deadline = std::chrono::steady_clock::now() + options_.start_helper_timeout;
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  std::string output;
  bool pipe_open = true;
  bool exited = false;
  std::optional<int> status;
  int wait_errno = 0;  // waitpid or poll failed: treated as a timeout, with that error
  const char* failed_call = "";
  for (;;) {
    status = wait_child(pid, WNOHANG, exited);
    if (!status) {
      wait_errno = errno;
      failed_call = "waitpid";
    }
    if (exited || !status) break;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    std::array<pollfd, 2> fds{};
    nfds_t count = 0;
    if (pipe_open) fds[count++] = {out_read.get(), POLLIN, 0};
    if (pidfd.get() >= 0) fds[count++] = {pidfd.get(), POLLIN, 0};
    const int wait_ms = pidfd.get() >= 0 ? static_cast<int>(std::min<std::int64_t>(left.count(), 1000))
                                         : static_cast<int>(std::min<std::int64_t>(left.count(), 20));
    const int ready = ::poll(fds.data(), count, wait_ms);
    if (ready < 0 && errno != EINTR) {
      wait_errno = errno;
      failed_call = "poll";
      break;
    }
    if (ready > 0 && pipe_open && fds[0].revents != 0) {
      // A bounded read: what is there now. EOF (or an error) ends the reading, not the waiting.
      std::array<char, 4096> buf{};
      const ssize_t n = ::read(out_read.get(), buf.data(), buf.size());
      if (n > 0 && output.size() < helper_output_limit) output.append(buf.data(), static_cast<std::size_t>(n));
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) pipe_open = false;
    }
  }

  if (!exited) {
    // Overran its time (or waiting failed): kill the helper's group, reap it, and kill whatever
    // of the container liblxc got going, so nothing half-started is left behind.
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    bool reaped = false;
    (void)wait_child(pid, 0, reaped);
    if (auto c = open_container(lxcpath_, name); c && std::string_view((*c)->state(c->get())) != "STOPPED") {
      (*c)->stop(c->get());
      (void)(*c)->wait(c->get(), "STOPPED", kill_wait_seconds);
    }
    if (wait_errno != 0) return io_error(failed_call, wait_errno);
    (void)::fcntl(out_read.get(), F_SETFL, O_NONBLOCK);
    if (pipe_open) (void)read_available(out_read.get(), output);
    const std::string said = one_line(output);
    return make_error(ErrorKind::timeout,
                      where + ": start helper " + helper + " did not finish within " +
                          std::to_string(options_.start_helper_timeout.count()) + " s; killed it and the container" +
                          (said.empty() ? "" : " (it said: " + said + ")") + "; see " + log.string());
  }

  // The rest of its output without blocking: the container's monitor, forked by the helper, may
  // briefly still hold the pipe.
  if (pipe_open && ::fcntl(out_read.get(), F_SETFL, O_NONBLOCK) == 0) (void)read_available(out_read.get(), output);
  const int st = *status;
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return {};
  const std::string said = one_line(output);
  const std::string helper_said = said.empty() ? describe_status(st) : said + "; " + describe_status(st);
  if (WIFEXITED(st) && WEXITSTATUS(st) == forkstart_exit::conflict) {
    return make_error(ErrorKind::conflict, where + ": already running");
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == forkstart_exit::timeout) {
    return make_error(ErrorKind::timeout, where + ": not RUNNING " + std::to_string(start_wait_seconds) +
                                              " s after start (helper: " + helper_said + "); see " + log.string());
  }
  return make_error(ErrorKind::io, where + ": liblxc could not start it: " + log_tail(log) + " (helper " + helper +
                                       ": " + helper_said + "; full log: " + log.string() + ")");
}

Result<void> LxcDriver::stop(const std::string& name, int timeout_seconds, bool force) {
  auto c = open_defined(lxcpath_, name);
  if (!c) return c.error();
  lxc_container* ct = c->get();
  const std::string where = "container " + name;
  if (!ct->is_running(ct)) return make_error(ErrorKind::conflict, where + ": not running");
  if (force || timeout_seconds == 0) {
    if (!ct->stop(ct))
      return make_error(ErrorKind::io, where + ": liblxc could not kill it; see " + log_path(name).string());
    if (!ct->wait(ct, "STOPPED", kill_wait_seconds)) {
      return make_error(ErrorKind::timeout, where + ": killed but still " + ct->state(ct) + " after " +
                                                std::to_string(kill_wait_seconds) + " s");
    }
    return {};
  }
  if (!ct->shutdown(ct, timeout_seconds < 0 ? -1 : timeout_seconds)) {
    if (!ct->is_running(ct)) return {};
    return make_error(ErrorKind::timeout, where + ": did not shut down within " + std::to_string(timeout_seconds) +
                                              " s; stop it with force to kill it");
  }
  return {};
}

Result<void> LxcDriver::freeze(const std::string& name) {
  auto c = open_defined(lxcpath_, name);
  if (!c) return c.error();
  lxc_container* ct = c->get();
  if (!ct->is_running(ct)) return make_error(ErrorKind::conflict, "container " + name + ": not running");
  if (!ct->freeze(ct)) return make_error(ErrorKind::io, "container " + name + ": liblxc could not freeze it");
  return {};
}

Result<void> LxcDriver::unfreeze(const std::string& name) {
  auto c = open_defined(lxcpath_, name);
  if (!c) return c.error();
  lxc_container* ct = c->get();
  if (std::string_view(ct->state(ct)) != "FROZEN")
    return make_error(ErrorKind::conflict, "container " + name + ": not frozen");
  if (!ct->unfreeze(ct)) return make_error(ErrorKind::io, "container " + name + ": liblxc could not unfreeze it");
  return {};
}

ContainerState LxcDriver::state(const std::string& name) const {
  ContainerState s;
  auto c = open_defined(lxcpath_, name);
  if (!c) return s;
  lxc_container* ct = c->get();
  const ContainerStatus status = status_of(ct->state(ct));
  s.status = status.status;
  s.status_code = status.status_code;
  if (s.status_code == 102) return s;
  s.pid = ct->init_pid(ct);
  s.processes = cgroup_number(ct, "pids.current").value_or(0);
  s.memory_usage =
      cgroup_number(ct, host_.memory == CgroupVersion::v1 ? "memory.usage_in_bytes" : "memory.current").value_or(0);
  if (host_.cpu == CgroupVersion::v1) {
    s.cpu_usage_ns = cgroup_number(ct, "cpuacct.usage").value_or(0);
  } else {
    s.cpu_usage_ns = cgroup_stat_field(ct, "cpu.stat", "usage_usec").value_or(0) * 1000;
  }
  return s;
}

ContainerStatus LxcDriver::status(const std::string& name) const {
  auto c = open_defined(lxcpath_, name);
  if (!c) return {};
  return status_of((*c)->state(c->get()));
}

std::map<std::string, ContainerStatus> LxcDriver::statuses(const std::vector<std::string>& names) const {
  std::map<std::string, ContainerStatus> out;
  for (const auto& name : names) out[name];  // Stopped unless active
  const auto active = running();
  for (const auto& name : active) {
    if (out.count(name) == 0) continue;
    std::shared_ptr<lxc_container> handle;
    {
      const std::lock_guard guard(handles_mu_);
      handle = handles_[name];
    }
    if (!handle) {
      auto opened = open_defined(lxcpath_, name);
      if (!opened) continue;  // active but no longer defined: Stopped, as state() says
      handle = std::shared_ptr<lxc_container>(opened->release(), ContainerPut{});
      const std::lock_guard guard(handles_mu_);
      handles_[name] = handle;
    }
    out[name] = status_of(handle->state(handle.get()));
  }
  // Only active containers keep a handle (an empty slot too is dropped).
  const std::lock_guard guard(handles_mu_);
  for (auto it = handles_.begin(); it != handles_.end();) {
    const bool keep = it->second && std::binary_search(active.begin(), active.end(), it->first);
    it = keep ? std::next(it) : handles_.erase(it);
  }
  return out;
}

void LxcDriver::forget_handle(const std::string& name) const {
  const std::lock_guard guard(handles_mu_);
  handles_.erase(name);
}

int LxcDriver::devpts_fd(const std::string& name) const {
  auto c = open_defined(lxcpath_, name);
  if (!c || !(*c)->is_running(c->get())) return -1;
  return (*c)->devpts_fd(c->get());
}

std::optional<ContainerUsage> LxcDriver::usage(const std::string& name) const {
  auto c = open_defined(lxcpath_, name);
  if (!c) return std::nullopt;
  lxc_container* ct = c->get();
  if (!ct->is_running(ct)) return std::nullopt;
  const auto item = [ct](const char* key) -> std::optional<std::string> {
    std::array<char, 16384> buf{};
    const int n = ct->get_cgroup_item(ct, key, buf.data(), static_cast<int>(buf.size() - 1));
    if (n <= 0) return std::nullopt;
    return std::string(buf.data(), static_cast<std::size_t>(n));
  };
  ContainerUsage u;
  if (host_.cpu == CgroupVersion::v1) {
    // "cpu user system" then one line per cpu, in nanoseconds.
    std::istringstream in(item("cpuacct.usage_all").value_or(""));
    std::string line;
    std::getline(in, line);
    int cpu = 0;
    ContainerUsage::Cpu sample;
    while (in >> cpu >> sample.user_ns >> sample.system_ns) {
      sample.cpu = cpu;
      u.cpus.push_back(sample);
    }
  } else {
    ContainerUsage::Cpu sample;
    sample.user_ns = cgroup_stat_field(ct, "cpu.stat", "user_usec").value_or(0) * 1000;
    sample.system_ns = cgroup_stat_field(ct, "cpu.stat", "system_usec").value_or(0) * 1000;
    u.cpus.push_back(sample);
  }
  // memory.stat's names (v1 with the hierarchy's total_ ones) to LXD's.
  const bool v1 = host_.memory == CgroupVersion::v1;
  static const std::vector<std::pair<std::string, std::string>> v1_names = {{"total_active_anon", "Active_anon"},
                                                                            {"total_active_file", "Active_file"},
                                                                            {"total_inactive_anon", "Inactive_anon"},
                                                                            {"total_inactive_file", "Inactive_file"},
                                                                            {"total_unevictable", "Unevictable"},
                                                                            {"total_writeback", "Writeback"},
                                                                            {"total_dirty", "Dirty"},
                                                                            {"total_mapped_file", "Mapped"},
                                                                            {"total_rss", "RSS"},
                                                                            {"total_shmem", "Shmem"},
                                                                            {"total_cache", "Cached"}};
  static const std::vector<std::pair<std::string, std::string>> v2_names = {{"active_anon", "Active_anon"},
                                                                            {"active_file", "Active_file"},
                                                                            {"inactive_anon", "Inactive_anon"},
                                                                            {"inactive_file", "Inactive_file"},
                                                                            {"unevictable", "Unevictable"},
                                                                            {"file_writeback", "Writeback"},
                                                                            {"file_dirty", "Dirty"},
                                                                            {"file_mapped", "Mapped"},
                                                                            {"anon", "RSS"},
                                                                            {"shmem", "Shmem"},
                                                                            {"file", "Cached"}};
  std::map<std::string, std::int64_t> stat;
  {
    std::istringstream in(item("memory.stat").value_or(""));
    std::string key;
    std::int64_t value = 0;
    while (in >> key >> value) stat[key] = value;
  }
  for (const auto& [from, to] : v1 ? v1_names : v2_names) {
    if (const auto it = stat.find(from); it != stat.end()) u.memory[to] = it->second;
  }
  u.memory["Active"] = u.memory["Active_anon"] + u.memory["Active_file"];
  u.memory["Inactive"] = u.memory["Inactive_anon"] + u.memory["Inactive_file"];
  u.memory_usage = cgroup_number(ct, v1 ? "memory.usage_in_bytes" : "memory.current").value_or(0);
  const auto limit = cgroup_number(ct, v1 ? "memory.limit_in_bytes" : "memory.max");  // "max": none
  const auto host_total = static_cast<std::int64_t>(host_.memory_total);
  u.memory_limit = limit && *limit > 0 && (host_total == 0 || *limit < host_total) ? *limit : host_total;
  if (v1) {
    if (const auto both = cgroup_number(ct, "memory.memsw.usage_in_bytes")) u.swap_usage = *both - u.memory_usage;
  } else {
    u.swap_usage = cgroup_number(ct, "memory.swap.current");
  }
  u.processes = cgroup_number(ct, "pids.current").value_or(0);
  return u;
}

Result<void> LxcDriver::apply_limits(const std::string& name, const std::map<std::string, std::string>& config) {
  if (auto r = validate_instance_config(config); !r) return r;
  auto c = open_defined(lxcpath_, name);
  if (!c) return c.error();
  lxc_container* ct = c->get();
  if (!ct->is_running(ct)) return make_error(ErrorKind::conflict, "container " + name + ": not running");
  for (const CgroupSetting& s : limit_settings(config, host_, true)) {
    if (!ct->set_cgroup_item(ct, s.key.c_str(), s.value.c_str())) {
      return make_error(ErrorKind::io, "container " + name + ": could not set cgroup " + s.key + " to " + s.value +
                                           " (memory below current usage, or cpus not in the parent cgroup?)");
    }
  }
  return {};
}

Result<void> LxcDriver::remove(const std::string& name) {
  forget_handle(name);
  auto c = open_defined(lxcpath_, name);
  if (!c) return c.error();
  if ((*c)->is_running(c->get())) return make_error(ErrorKind::conflict, "container " + name + ": stop it first");
  c->reset();
  std::error_code ec;
  fs::remove_all(lxcpath_ / name, ec);
  if (ec)
    return make_error(ErrorKind::io,
                      "container " + name + ": remove " + (lxcpath_ / name).string() + ": " + ec.message());
  return {};
}

Result<void> LxcDriver::rename(const std::string& from, const std::string& to) {
  forget_handle(from);
  forget_handle(to);
  if (auto r = validate_instance_name(to); !r) return r;
  auto c = open_defined(lxcpath_, from);
  if (!c) return c.error();
  if ((*c)->is_running(c->get())) return make_error(ErrorKind::conflict, "container " + from + ": stop it first");
  c->reset();
  const fs::path dst = lxcpath_ / to;
  std::error_code ec;
  if (fs::exists(dst, ec))
    return make_error(ErrorKind::conflict, "container " + to + ": exists in " + lxcpath_.string());
  if (::rename((lxcpath_ / from).c_str(), dst.c_str()) != 0) {
    return make_error(ErrorKind::io, "container " + from + ": rename to " + to + ": " + errno_text(errno));
  }
  fs::rename(dst / (from + ".log"), dst / (to + ".log"), ec);  // best effort: there may be no log yet
  return {};
}

std::vector<std::string> LxcDriver::running() const {
  char** names = nullptr;
  const int n = list_active_containers(lxcpath_.c_str(), &names, nullptr);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    out.emplace_back(names[i]);
    std::free(names[i]);  // NOLINT: liblxc allocates with malloc
  }
  std::free(static_cast<void*>(names));  // NOLINT
  std::sort(out.begin(), out.end());
  return out;
}

// ---- the start helper's body ----

int forkstart_main(const std::string& lxcpath, const std::string& name) {
  // Nothing inherited beyond stdin/stdout/stderr reaches liblxc (posix_spawn closed them already
  // when berthd started us; this covers other callers).
  if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
    for (int fd = 3; fd < 1024; ++fd) ::close(fd);
  }
  const std::string where = "container " + name;
  const auto say = [](const std::string& line) { std::fprintf(stderr, "berthd forkstart: %s\n", line.c_str()); };
  if (auto r = validate_instance_name(name); !r) {
    say(r.error().message);
    return forkstart_exit::usage;
  }
  if (lxcpath.empty() || lxcpath.front() != '/') {
    say("LXCPATH must be an absolute path, not \"" + lxcpath + "\"");
    return forkstart_exit::usage;
  }
  auto c = open_defined(lxcpath, name);  // loads LXCPATH/NAME/config
  if (!c) {
    say(c.error().message);
    return forkstart_exit::usage;
  }
  lxc_container* ct = c->get();
  if (ct->is_running(ct)) {
    say(where + ": already running");
    return forkstart_exit::conflict;
  }
  ct->want_daemonize(ct, true);
  ct->want_close_all_fds(ct, true);  // our stdout/stderr pipe must not stay open in the monitor
  const fs::path log = fs::path(lxcpath) / name / (name + ".log");
  if (!ct->start(ct, 0, nullptr)) {
    say(where + ": liblxc could not start it; see " + log.string());
    return forkstart_exit::failed;
  }
  if (!ct->wait(ct, "RUNNING", start_wait_seconds)) {
    say(where + ": not RUNNING " + std::to_string(start_wait_seconds) + " s after start (state " + ct->state(ct) + ")");
    return forkstart_exit::timeout;
  }
  return 0;
}

}  // namespace berth::daemon
