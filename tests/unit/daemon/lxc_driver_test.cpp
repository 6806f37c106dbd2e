// The liblxc driver against real containers (root only): a busybox rootfs owned by the shifted
// ids, started unprivileged with the host's default map, seen by lxc-info and lxc-attach, limited
// through its cgroup, frozen, stopped cleanly and by force, renamed and removed; started through
// berthd's forkstart helper (a clean process: PATH only, stdin /dev/null, no inherited descriptor;
// reaped; killed at its timeout), also from several threads at once. Every container a test starts
// is killed and removed by a guard, whatever the test's outcome. Validation tests need no root.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "../lxd/temp_dir.hpp"
#include "daemon/instances/lxc_driver.hpp"
#include "daemon/instances/shift.hpp"

namespace berth::daemon {
namespace {

namespace fs = std::filesystem;
using lxd::ErrorKind;
using lxd::testing::TempDir;

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Output of a shell command (stdout only).
std::string run(const std::string& cmd) {
  std::unique_ptr<FILE, decltype(&pclose)> p(popen(cmd.c_str(), "r"), pclose);
  std::string out;
  std::array<char, 4096> buf{};
  while (p && fgets(buf.data(), static_cast<int>(buf.size()), p.get()) != nullptr) out += buf.data();
  return out;
}

std::string squeeze_spaces(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (c == ' ' || c == '\t') {
      if (!out.empty() && out.back() != ' ' && out.back() != '\n') out += ' ';
    } else {
      if (c == '\n' && !out.empty() && out.back() == ' ') out.pop_back();
      out += c;
    }
  }
  return out;
}

// The cgroup v1 directory of a process for one controller.
fs::path v1_cgroup_dir(std::int64_t pid, const std::string& controller) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find(':');
    const auto second = line.find(':', first + 1);
    std::stringstream controllers(line.substr(first + 1, second - first - 1));
    for (std::string c; std::getline(controllers, c, ',');) {
      if (c == controller) return fs::path("/sys/fs/cgroup") / controller / line.substr(second + 2);
    }
  }
  return {};
}

// A busybox rootfs as testbed.md builds one, owned by the map's root.
void make_busybox_rootfs(const fs::path& rootfs, const Idmap& map) {
  for (const char* d : {"bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root"}) fs::create_directories(rootfs / d);
  fs::copy_file("/bin/busybox", rootfs / "bin/busybox");
  for (const char* a : {"sh", "ls", "cat", "echo", "sleep", "hostname", "ps", "mount"}) {
    fs::create_symlink("busybox", rootfs / "bin" / a);
  }
  fs::create_symlink("../bin/busybox", rootfs / "sbin/init");
  std::ofstream(rootfs / "etc/inittab") << "::respawn:/bin/sleep 100000\n";
  auto shifted = shift_tree(rootfs, {}, map);
  ASSERT_TRUE(shifted.ok()) << shifted.error().message;
}

// berthd, the start helper: BERTHD_BIN (set by ctest for integration tests), else the build tree's
// (build/tests/berth_unit_tests → build/daemon/berthd); empty when neither exists.
fs::path berthd_binary() {
  if (const char* env = std::getenv("BERTHD_BIN"); env != nullptr && *env != '\0' && fs::exists(env)) return env;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  fs::path candidate = self.parent_path().parent_path() / "daemon" / "berthd";
  return fs::exists(candidate, ec) ? candidate : fs::path{};
}

// True when this process has a child it has not reaped (a zombie or a live one).
bool has_unreaped_child() {
  errno = 0;
  const pid_t r = ::waitpid(-1, nullptr, WNOHANG | __WALL);
  return !(r == -1 && errno == ECHILD);
}

// Pids whose command line contains every one of `parts` (NUL-separated arguments joined by ' ').
std::vector<int> processes_with(const std::vector<std::string>& parts) {
  std::vector<int> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = read_file(entry.path() / "cmdline");
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    bool all = !cmdline.empty();
    for (const std::string& p : parts) all = all && cmdline.find(p) != std::string::npos;
    if (all) out.push_back(std::stoi(pid));
  }
  return out;
}

class LxcDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "real containers need root";
    if (!fs::exists("/bin/busybox")) GTEST_SKIP() << "no /bin/busybox to build a rootfs from";
    map_ = default_idmap(read_file("/etc/subuid"), read_file("/etc/subgid"));
    ASSERT_FALSE(map_.empty());
    // The container's root must traverse to its rootfs: 0711 as the pool makes volumes.
    fs::permissions(tmp_.path(), fs::perms(0711));
    fs::create_directories(tmp_.path() / "vol");
    fs::permissions(tmp_.path() / "vol", fs::perms(0711));
    make_busybox_rootfs(tmp_.path() / "vol/rootfs", map_);
    driver_ = std::make_unique<LxcDriver>(tmp_.path() / "containers");
  }

  // Unique per test and process, so tests may run in parallel.
  static std::string unique_name(const char* base) {
    static int counter = 0;
    return std::string(base) + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
  }

  ContainerSpec spec(std::string name) const {
    ContainerSpec s;
    s.name = std::move(name);
    s.rootfs = tmp_.path() / "vol/rootfs";
    s.idmap = map_;
    return s;
  }

  // Kills and removes a container whatever happens in the test.
  class Guard {
   public:
    Guard(LxcDriver& driver, std::string name) : driver_(driver), name_(std::move(name)) {}
    ~Guard() {
      (void)driver_.stop(name_, 0, true);
      (void)driver_.remove(name_);
    }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    void renamed(std::string to) { name_ = std::move(to); }

   private:
    LxcDriver& driver_;
    std::string name_;
  };

  std::string lxc_cmd(const char* tool, const std::string& name, const std::string& rest) const {
    return run(std::string(tool) + " -P " + driver_->lxcpath().string() + " -n " + name + " " + rest + " 2>&1");
  }

  TempDir tmp_;
  Idmap map_;
  std::unique_ptr<LxcDriver> driver_;
};

TEST_F(LxcDriverTest, RunsUnprivilegedWithLimitsFreezesAndShutsDown) {
  ContainerSpec s = spec(unique_name("c"));
  Guard guard(*driver_, s.name);
  s.config = {{"limits.memory", "256MB"}, {"limits.cpu", "1"}, {"environment.GREETING", "hello"}};
  auto started = driver_->start(s);
  ASSERT_TRUE(started.ok()) << started.error().message;

  ContainerState st = driver_->state(s.name);
  EXPECT_EQ(st.status, "Running");
  EXPECT_EQ(st.status_code, 103);
  ASSERT_GT(st.pid, 1);
  EXPECT_GE(st.processes, 1);
  EXPECT_GT(st.memory_usage, 0);
  const std::string info = squeeze_spaces(lxc_cmd("lxc-info", s.name, "-s -p"));
  EXPECT_NE(info.find("State: RUNNING"), std::string::npos) << info;
  EXPECT_NE(info.find("PID: " + std::to_string(st.pid)), std::string::npos) << info;
  EXPECT_EQ(driver_->running(), std::vector<std::string>{s.name});

  // Inside: the id map, the environment, the hostname, no network but loopback.
  const std::string uid_map = squeeze_spaces(lxc_cmd("lxc-attach", s.name, "-- cat /proc/1/uid_map"));
  EXPECT_EQ(trim(uid_map), "0 " + std::to_string(map_[0].hostid) + " " + std::to_string(map_[0].maprange));
  EXPECT_EQ(trim(lxc_cmd("lxc-attach", s.name, "-- hostname")), s.name);
  EXPECT_EQ(trim(lxc_cmd("lxc-attach", s.name, "-- cat /proc/1/environ | tr '\\0' '\\n' | grep GREETING")),
            "GREETING=hello");
  EXPECT_EQ(trim(lxc_cmd("lxc-attach", s.name, "-- ls /sys/class/net")), "lo");
  // Host side: init runs as the shifted root.
  EXPECT_NE(read_file("/proc/" + std::to_string(st.pid) + "/status").find("Uid:\t" + std::to_string(map_[0].hostid)),
            std::string::npos);

  // limits.memory and limits.cpu in the cgroups liblxc made (v1 controllers on this hybrid host).
  const fs::path memory = v1_cgroup_dir(st.pid, "memory");
  ASSERT_FALSE(memory.empty()) << "no v1 memory cgroup for the container's init";
  EXPECT_EQ(trim(read_file(memory / "memory.limit_in_bytes")), "256000000");
  EXPECT_EQ(trim(read_file(v1_cgroup_dir(st.pid, "cpuset") / "cpuset.cpus")), "0");

  // Live change: a new memory limit, and the cpu limit lifted.
  auto applied = driver_->apply_limits(s.name, {{"limits.memory", "128MiB"}});
  ASSERT_TRUE(applied.ok()) << applied.error().message;
  EXPECT_EQ(trim(read_file(memory / "memory.limit_in_bytes")), "134217728");
  EXPECT_NE(trim(read_file(v1_cgroup_dir(st.pid, "cpuset") / "cpuset.cpus")), "0");

  ASSERT_TRUE(driver_->freeze(s.name).ok());
  EXPECT_EQ(driver_->state(s.name).status, "Frozen");
  EXPECT_EQ(driver_->state(s.name).status_code, 110);
  ASSERT_TRUE(driver_->unfreeze(s.name).ok());
  EXPECT_EQ(driver_->state(s.name).status, "Running");

  auto stopped = driver_->stop(s.name, 30, false);  // SIGPWR to busybox init
  ASSERT_TRUE(stopped.ok()) << stopped.error().message;
  st = driver_->state(s.name);
  EXPECT_EQ(st.status, "Stopped");
  EXPECT_EQ(st.status_code, 102);
  EXPECT_EQ(st.pid, -1);
  EXPECT_TRUE(driver_->running().empty());
  EXPECT_EQ(driver_->stop(s.name, 30, false).error().kind, ErrorKind::conflict);
}

// The list's statuses (one look at the active containers, a handle kept for each) say what
// state() says, through start, freeze, stop, rename and remove.
TEST_F(LxcDriverTest, StatusesAgreeWithStateForEveryLifeCycleStep) {
  ContainerSpec run_spec = spec(unique_name("r"));
  ContainerSpec idle_spec = spec(unique_name("i"));
  Guard run_guard(*driver_, run_spec.name);
  Guard idle_guard(*driver_, idle_spec.name);
  ASSERT_TRUE(driver_->define(idle_spec).ok());
  auto started = driver_->start(run_spec);
  ASSERT_TRUE(started.ok()) << started.error().message;
  const std::string undefined = unique_name("u");
  const std::vector<std::string> names{run_spec.name, idle_spec.name, undefined};
  const auto expect = [&](const std::string& name, const char* status, int code) {
    const auto all = driver_->statuses(names);
    ASSERT_EQ(all.size(), 3U);
    EXPECT_EQ(all.at(name).status, status) << name;
    EXPECT_EQ(all.at(name).status_code, code) << name;
    EXPECT_EQ(driver_->status(name).status, status) << name;
    EXPECT_EQ(driver_->state(name).status, status) << name;
  };
  for (int i = 0; i < 2; ++i) expect(run_spec.name, "Running", 103);  // the second from the kept handle
  expect(idle_spec.name, "Stopped", 102);
  expect(undefined, "Stopped", 102);
  EXPECT_FALSE(fs::exists(driver_->lxcpath() / undefined)) << "asking about a name must not create it";

  ASSERT_TRUE(driver_->freeze(run_spec.name).ok());
  expect(run_spec.name, "Frozen", 110);
  ASSERT_TRUE(driver_->unfreeze(run_spec.name).ok());
  expect(run_spec.name, "Running", 103);
  ASSERT_TRUE(driver_->stop(run_spec.name, 0, true).ok());
  expect(run_spec.name, "Stopped", 102);

  // Started again under a new name: the old name's handle must not answer for it.
  const std::string renamed = unique_name("n");
  ASSERT_TRUE(driver_->rename(run_spec.name, renamed).ok());
  run_guard.renamed(renamed);
  run_spec.name = renamed;
  started = driver_->start(run_spec);
  ASSERT_TRUE(started.ok()) << started.error().message;
  const auto after = driver_->statuses({renamed, names[0]});
  EXPECT_EQ(after.at(renamed).status, "Running");
  EXPECT_EQ(after.at(names[0]).status, "Stopped");
}

TEST_F(LxcDriverTest, OutlivesTheProcessThatStartedItThenForceStopRenameRemove) {
  ContainerSpec s = spec(unique_name("d"));
  Guard guard(*driver_, s.name);
  // Started from a child process that then exits, as berthd exiting would.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(driver_->start(s).ok() ? 0 : 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(driver_->log_path(s.name));
  EXPECT_EQ(driver_->state(s.name).status, "Running");
  EXPECT_EQ(driver_->running(), std::vector<std::string>{s.name});

  auto again = driver_->start(s);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().kind, ErrorKind::conflict);
  EXPECT_EQ(driver_->rename(s.name, "elsewhere").error().kind, ErrorKind::conflict);  // running
  EXPECT_EQ(driver_->remove(s.name).error().kind, ErrorKind::conflict);

  auto killed = driver_->stop(s.name, -1, true);
  ASSERT_TRUE(killed.ok()) << killed.error().message;
  EXPECT_EQ(driver_->state(s.name).status, "Stopped");

  const std::string to = unique_name("r");
  auto renamed = driver_->rename(s.name, to);
  ASSERT_TRUE(renamed.ok()) << renamed.error().message;
  guard.renamed(to);
  EXPECT_FALSE(fs::exists(driver_->lxcpath() / s.name));
  EXPECT_EQ(driver_->stop(s.name, 0, true).error().kind, ErrorKind::not_found);
  s.name = to;
  auto restarted = driver_->start(s);  // the config is rewritten under the new name
  ASSERT_TRUE(restarted.ok()) << restarted.error().message;
  EXPECT_EQ(trim(lxc_cmd("lxc-attach", to, "-- hostname")), to);
  ASSERT_TRUE(driver_->stop(to, 0, false).ok());  // a zero timeout kills, as LXD

  ASSERT_TRUE(driver_->remove(to).ok());
  EXPECT_FALSE(fs::exists(driver_->lxcpath() / to));
  EXPECT_TRUE(fs::exists(s.rootfs / "sbin/init"));  // the rootfs belongs to the pool
  EXPECT_EQ(driver_->state(to).status, "Stopped");
}

TEST_F(LxcDriverTest, ShutdownTimesOutWhenInitIgnoresTheHaltSignalAndForceStillKills) {
  ContainerSpec s = spec(unique_name("t"));
  Guard guard(*driver_, s.name);
  // A plain sleep as PID 1 has no handler for SIGPWR, so the kernel drops it.
  fs::remove(s.rootfs / "sbin/init");
  fs::create_symlink("../bin/sleep-init", s.rootfs / "sbin/init");
  std::ofstream(s.rootfs / "bin/sleep-init") << "#!/bin/sh\nexec /bin/sleep 100000\n";
  fs::permissions(s.rootfs / "bin/sleep-init", fs::perms(0755));
  ASSERT_TRUE(shift_tree(s.rootfs, {}, map_).ok());  // the new files too
  auto started = driver_->start(s);
  ASSERT_TRUE(started.ok()) << started.error().message;

  const auto before = std::chrono::steady_clock::now();
  auto stopped = driver_->stop(s.name, 1, false);
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.error().kind, ErrorKind::timeout);
  EXPECT_NE(stopped.error().message.find("force"), std::string::npos) << stopped.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(10));
  EXPECT_EQ(driver_->state(s.name).status, "Running");  // nothing was killed

  auto killed = driver_->stop(s.name, 1, true);
  ASSERT_TRUE(killed.ok()) << killed.error().message;
  EXPECT_EQ(driver_->state(s.name).status, "Stopped");
}

TEST_F(LxcDriverTest, StartFailureSaysWhyAndWhereTheLogIs) {
  ContainerSpec s = spec(unique_name("f"));
  Guard guard(*driver_, s.name);
  fs::remove(s.rootfs / "sbin/init");
  auto started = driver_->start(s);
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.error().message.find(driver_->log_path(s.name).string()), std::string::npos)
      << started.error().message;
  EXPECT_NE(started.error().message.find("ERROR"), std::string::npos) << started.error().message << "\nlog:\n"
                                                                      << read_file(driver_->log_path(s.name));
  EXPECT_EQ(driver_->state(s.name).status, "Stopped");
}

// ---- through the start helper (berthd forkstart) ----

TEST_F(LxcDriverTest, StartsThroughTheHelperInACleanProcessThatIsReaped) {
  const fs::path berthd = berthd_binary();
  if (berthd.empty()) GTEST_SKIP() << "no berthd to run as start helper (set BERTHD_BIN or build target berthd)";
  // A wrapper that records what the helper inherits, then becomes berthd.
  const fs::path record = tmp_.path() / "helper.record";
  const fs::path wrapper = tmp_.path() / "helper.sh";
  std::ofstream(wrapper) << "#!/bin/sh\n"
                         << "{ echo \"args: $*\"; echo \"stdin: $(readlink /proc/$$/fd/0)\";"
                         << " tr '\\0' '\\n' < /proc/$$/environ | sed 's/^/env: /';"
                         << " ls -l /proc/$$/fd/ | sed 's/^/fd: /'; } > " << record.string() << "\n"
                         << "exec " << berthd.string() << " \"$@\"\n";
  fs::permissions(wrapper, fs::perms(0755));
  // A descriptor without O_CLOEXEC, as a careless library might hold: it must not reach the helper.
  const fs::path marker = tmp_.path() / "leak-marker";
  std::ofstream(marker) << "x";
  const int leaky = ::open(marker.c_str(), O_RDONLY);  // NOLINT: deliberately without O_CLOEXEC
  ASSERT_GE(leaky, 0);
  ::setenv("BERTH_TEST_SECRET", "must-not-leak", 1);

  LxcDriver helper_driver(driver_->lxcpath(), LxcDriverOptions{.start_helper = wrapper});
  ContainerSpec s = spec(unique_name("h"));
  Guard guard(helper_driver, s.name);
  auto started = helper_driver.start(s);
  ::close(leaky);
  ::unsetenv("BERTH_TEST_SECRET");
  ASSERT_TRUE(started.ok()) << started.error().message;

  EXPECT_NE(squeeze_spaces(lxc_cmd("lxc-info", s.name, "-s")).find("State: RUNNING"), std::string::npos);
  EXPECT_FALSE(has_unreaped_child()) << "the helper was not waited for";
  EXPECT_TRUE(processes_with({"forkstart", driver_->lxcpath().string(), s.name}).empty());

  const std::string seen = read_file(record);
  EXPECT_NE(seen.find("args: forkstart " + driver_->lxcpath().string() + " " + s.name + "\n"), std::string::npos)
      << seen;
  EXPECT_NE(seen.find("stdin: /dev/null\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("env: PATH="), std::string::npos) << seen;
  EXPECT_EQ(seen.find("BERTH_TEST_SECRET"), std::string::npos) << seen;
  std::size_t env_lines = 0;
  for (std::size_t at = seen.find("env: "); at != std::string::npos; at = seen.find("env: ", at + 1)) ++env_lines;
  EXPECT_EQ(env_lines, 1U) << seen;
  EXPECT_EQ(seen.find(marker.string()), std::string::npos) << seen;
  EXPECT_NE(seen.find("pipe:"), std::string::npos) << seen;  // stdout and stderr, for the error message

  // The container outlives the helper, and a second start is a conflict (found before the helper).
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(helper_driver.state(s.name).status, "Running");
  auto again = helper_driver.start(s);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().kind, ErrorKind::conflict);
  // The helper itself refuses a running container with its conflict status.
  const std::string direct =
      run(berthd.string() + " forkstart " + driver_->lxcpath().string() + " " + s.name + " 2>&1; echo status=$?");
  EXPECT_NE(direct.find("already running"), std::string::npos) << direct;
  EXPECT_NE(direct.find("status=" + std::to_string(forkstart_exit::conflict)), std::string::npos) << direct;
  ASSERT_TRUE(helper_driver.stop(s.name, 0, true).ok());
  EXPECT_FALSE(has_unreaped_child());
}

TEST_F(LxcDriverTest, HelperStartFailureQuotesLiblxcAndNamesTheLog) {
  const fs::path berthd = berthd_binary();
  if (berthd.empty()) GTEST_SKIP() << "no berthd to run as start helper (set BERTHD_BIN or build target berthd)";
  LxcDriver helper_driver(driver_->lxcpath(), LxcDriverOptions{.start_helper = berthd});
  ContainerSpec s = spec(unique_name("hf"));
  Guard guard(helper_driver, s.name);
  fs::remove(s.rootfs / "sbin/init");
  auto started = helper_driver.start(s);
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.error().kind, ErrorKind::io);
  const std::string& message = started.error().message;
  EXPECT_NE(message.find(helper_driver.log_path(s.name).string()), std::string::npos) << message;
  EXPECT_NE(message.find("ERROR"), std::string::npos) << message << "\nlog:\n"
                                                      << read_file(helper_driver.log_path(s.name));
  EXPECT_NE(message.find("exit status " + std::to_string(forkstart_exit::failed)), std::string::npos) << message;
  EXPECT_EQ(helper_driver.state(s.name).status, "Stopped");
  EXPECT_FALSE(has_unreaped_child());

  // A helper that cannot be run says so, naming it.
  LxcDriver missing(driver_->lxcpath(), LxcDriverOptions{.start_helper = tmp_.path() / "no-such-berthd"});
  fs::create_symlink("../bin/busybox", s.rootfs / "sbin/init");
  auto not_run = missing.start(s);
  ASSERT_FALSE(not_run.ok());
  EXPECT_NE(not_run.error().message.find("no-such-berthd"), std::string::npos) << not_run.error().message;
  EXPECT_EQ(missing.state(s.name).status, "Stopped");
}

TEST_F(LxcDriverTest, HelperThatOverrunsItsTimeoutIsKilledWithItsChildren) {
  // A helper that never finishes, with a child of its own in its process group.
  const fs::path wrapper = tmp_.path() / "stuck.sh";
  std::ofstream(wrapper) << "#!/bin/sh\necho stuck starting $4\nsleep 987653\n";
  fs::permissions(wrapper, fs::perms(0755));
  LxcDriver stuck(driver_->lxcpath(),
                  LxcDriverOptions{.start_helper = wrapper, .start_helper_timeout = std::chrono::seconds(2)});
  ContainerSpec s = spec(unique_name("hs"));
  Guard guard(stuck, s.name);
  const auto before = std::chrono::steady_clock::now();
  auto started = stuck.start(s);
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.error().kind, ErrorKind::timeout);
  EXPECT_NE(started.error().message.find("did not finish within 2 s"), std::string::npos) << started.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(20));
  EXPECT_FALSE(has_unreaped_child());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(processes_with({"sleep", "987653"}).empty()) << "the helper's child survived";
  EXPECT_EQ(stuck.state(s.name).status, "Stopped");
}

TEST_F(LxcDriverTest, FourThreadsStartFourContainersWhileAnotherChurnsMalloc) {
  const fs::path berthd = berthd_binary();
  if (berthd.empty()) GTEST_SKIP() << "no berthd to run as start helper (set BERTHD_BIN or build target berthd)";
  LxcDriver helper_driver(driver_->lxcpath(), LxcDriverOptions{.start_helper = berthd});
  constexpr int count = 4;
  std::vector<ContainerSpec> specs;
  std::vector<std::unique_ptr<Guard>> guards;
  for (int i = 0; i < count; ++i) {
    ContainerSpec s = spec(unique_name("m"));
    s.rootfs = tmp_.path() / ("vol/rootfs" + std::to_string(i));
    make_busybox_rootfs(s.rootfs, map_);
    guards.push_back(std::make_unique<Guard>(helper_driver, s.name));
    specs.push_back(std::move(s));
  }
  ASSERT_FALSE(HasFatalFailure());

  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> allocations{0};
  std::thread churn([&done, &allocations] {
    std::vector<std::unique_ptr<char[]>> held(256);
    std::uint64_t n = 0;
    while (!done.load()) {
      const std::size_t size = 16 + (n * 7919) % 65536;
      held[n % held.size()] = std::make_unique<char[]>(size);
      held[n % held.size()][0] = static_cast<char>(n);
      ++n;
    }
    allocations = n;
  });
  std::vector<std::string> errors(count);
  std::atomic<int> ready{0};
  std::vector<std::thread> starters;
  for (int i = 0; i < count; ++i) {
    starters.emplace_back([&, i] {
      ready.fetch_add(1);
      while (ready.load() < count) std::this_thread::yield();  // all at once
      auto r = helper_driver.start(specs[static_cast<std::size_t>(i)]);
      if (!r) errors[static_cast<std::size_t>(i)] = r.error().message;
    });
  }
  for (std::thread& t : starters) t.join();
  done = true;
  churn.join();
  EXPECT_GT(allocations.load(), 0U);

  for (int i = 0; i < count; ++i) {
    const ContainerSpec& s = specs[static_cast<std::size_t>(i)];
    EXPECT_TRUE(errors[static_cast<std::size_t>(i)].empty()) << s.name << ": " << errors[static_cast<std::size_t>(i)];
    EXPECT_NE(squeeze_spaces(lxc_cmd("lxc-info", s.name, "-s")).find("State: RUNNING"), std::string::npos) << s.name;
  }
  EXPECT_EQ(helper_driver.running().size(), static_cast<std::size_t>(count));
  EXPECT_FALSE(has_unreaped_child());
}

// ---- validation and config (no root) ----

TEST(LxcDriverConfig, UnknownKeysAndBadValuesNameTheKey) {
  const auto message = [](const std::map<std::string, std::string>& config) {
    auto r = validate_instance_config(config);
    EXPECT_FALSE(r.ok());
    return r.ok() ? std::string{} : r.error().message;
  };
  EXPECT_NE(message({{"limits.memroy", "1GB"}}).find("\"limits.memroy\""), std::string::npos);
  EXPECT_NE(message({{"raw.lxc", "lxc.x=1"}}).find("\"raw.lxc\""), std::string::npos);
  EXPECT_NE(message({{"limits.memory", "12XB"}}).find("\"limits.memory\""), std::string::npos);
  EXPECT_NE(message({{"limits.memory", "0%"}}).find("percentage"), std::string::npos);
  EXPECT_NE(message({{"limits.cpu", "0"}}).find("\"limits.cpu\""), std::string::npos);
  EXPECT_NE(message({{"limits.cpu", "1-0"}}).find("\"limits.cpu\""), std::string::npos);
  EXPECT_NE(message({{"limits.processes", "-5"}}).find("\"limits.processes\""), std::string::npos);
  EXPECT_NE(message({{"security.nesting", "maybe"}}).find("\"security.nesting\""), std::string::npos);
  EXPECT_NE(message({{"user.", "x"}}).find("\"user.\""), std::string::npos);

  EXPECT_TRUE(validate_instance_config({{"limits.memory", "256MB"},
                                        {"limits.cpu", "0-1,3"},
                                        {"limits.processes", "100"},
                                        {"security.privileged", "FALSE"},
                                        {"security.nesting", "on"},
                                        {"boot.autostart", "1"},
                                        {"user.note", "anything"},
                                        {"environment.A", "b"},
                                        {"image.os", "busybox"},
                                        {"volatile.idmap.base", "0"},
                                        {"limits.memory", ""}})
                  .ok());
  EXPECT_TRUE(validate_instance_config({{"limits.memory", "50%"}, {"limits.cpu", "2"}}).ok());
}

TEST(LxcDriverConfig, DevicesAreCheckedPerKey) {
  const auto message = [](const std::map<std::string, std::map<std::string, std::string>>& devices) {
    auto r = validate_devices(devices);
    EXPECT_FALSE(r.ok());
    return r.ok() ? std::string{} : r.error().message;
  };
  EXPECT_NE(message({{"gpu0", {{"type", "gpu"}}}}).find("\"gpu0\""), std::string::npos);
  EXPECT_NE(message({{"data", {{"type", "disk"}, {"path", "/data"}}}}).find("\"source\""), std::string::npos);
  EXPECT_NE(message({{"data", {{"type", "disk"}, {"path", "/d"}, {"source", "/s"}, {"readonly", "perhaps"}}}})
                .find("\"readonly\""),
            std::string::npos);
  EXPECT_NE(
      message({{"data", {{"type", "disk"}, {"path", "/d"}, {"source", "/s"}, {"shift", "true"}}}}).find("\"shift\""),
      std::string::npos);
  EXPECT_NE(message({{"eth0", {{"type", "nic"}, {"nictype", "macvlan"}, {"parent", "eth0"}}}}).find("\"nictype\""),
            std::string::npos);
  EXPECT_NE(message({{"eth0", {{"type", "nic"}, {"nictype", "bridged"}, {"parent", "br0"}, {"hwaddr", "zz"}}}})
                .find("\"hwaddr\""),
            std::string::npos);
  EXPECT_TRUE(
      validate_devices({{"root", {{"type", "disk"}, {"path", "/"}, {"pool", "default"}}},
                        {"data", {{"type", "disk"}, {"path", "/srv"}, {"source", "/tmp"}, {"readonly", "true"}}},
                        {"eth0",
                         {{"type", "nic"},
                          {"nictype", "bridged"},
                          {"parent", "lxdbr0"},
                          {"name", "eth0"},
                          {"hwaddr", "00:16:3e:aa:bb:cc"}}}})
          .ok());
  EXPECT_FALSE(validate_instance_name("9lives").ok());
  EXPECT_FALSE(validate_instance_name("a_b").ok());
  EXPECT_TRUE(validate_instance_name("web-1").ok());
}

TEST(LxcDriverConfig, ItemsFollowTheSpecAndTheHost) {
  TempDir tmp;
  fs::create_directories(tmp.path() / "rootfs");
  HostFacts v1;
  v1.memory = v1.cpuset = v1.pids = HostFacts::CgroupVersion::v1;
  v1.memory_total = 8000;
  v1.online_cpus = {0, 1, 2, 3};
  ContainerSpec s;
  s.name = "web";
  s.rootfs = tmp.path() / "rootfs";
  s.idmap = {{true, false, 100000, 0, 65536}, {false, true, 100000, 0, 65536}};
  s.config = {{"limits.memory", "50%"}, {"limits.cpu", "2"}, {"limits.processes", "50"}};
  s.devices = {
      {"eth0", {{"type", "nic"}, {"nictype", "bridged"}, {"parent", "br0"}}},
      {"data", {{"type", "disk"}, {"path", "/srv/data"}, {"source", tmp.path().string()}, {"readonly", "yes"}}}};
  auto items = lxc_config_items(s, v1, "/lxc");
  ASSERT_TRUE(items.ok()) << items.error().message;
  const auto has = [&](const std::string& key, const std::string& value) {
    for (const auto& [k, v] : *items) {
      if (k == key && v == value) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("lxc.idmap", "u 0 100000 65536"));
  EXPECT_TRUE(has("lxc.idmap", "g 0 100000 65536"));
  EXPECT_TRUE(has("lxc.rootfs.path", "dir:" + fs::canonical(s.rootfs).string()));
  EXPECT_TRUE(has("lxc.log.file", "/lxc/web/web.log"));
  EXPECT_TRUE(has("lxc.apparmor.profile", "unconfined"));
  EXPECT_TRUE(has("lxc.cgroup.memory.limit_in_bytes", "4000"));
  EXPECT_TRUE(has("lxc.cgroup.cpuset.cpus", "0,1"));
  EXPECT_TRUE(has("lxc.cgroup.pids.max", "50"));
  EXPECT_TRUE(has("lxc.net.0.type", "veth"));
  EXPECT_TRUE(has("lxc.net.0.link", "br0"));
  EXPECT_TRUE(has("lxc.net.0.name", "eth0"));
  EXPECT_TRUE(has("lxc.mount.entry", tmp.path().string() + " srv/data none rbind,create=dir,ro 0 0"));
  EXPECT_FALSE(has("lxc.net.0.type", "empty"));

  HostFacts v2 = v1;
  v2.memory = v2.cpuset = v2.pids = HostFacts::CgroupVersion::v2;
  s.privileged = true;
  s.devices.clear();
  s.config = {{"limits.memory", "1GiB"}, {"limits.cpu", "1-2"}};
  items = lxc_config_items(s, v2, "/lxc");
  ASSERT_TRUE(items.ok()) << items.error().message;
  EXPECT_TRUE(has("lxc.cgroup2.memory.max", "1073741824"));
  EXPECT_TRUE(has("lxc.cgroup2.cpuset.cpus", "1,2"));
  EXPECT_TRUE(has("lxc.net.0.type", "empty"));
  for (const auto& [k, v] : *items) EXPECT_NE(k, "lxc.idmap");  // privileged: no map

  s.config = {{"security.privileged", "false"}};  // disagrees with s.privileged
  EXPECT_EQ(lxc_config_items(s, v2, "/lxc").error().kind, ErrorKind::invalid_argument);
  s.privileged = false;
  s.idmap.clear();
  EXPECT_EQ(lxc_config_items(s, v2, "/lxc").error().kind, ErrorKind::invalid_argument);
}

}  // namespace
}  // namespace berth::daemon
