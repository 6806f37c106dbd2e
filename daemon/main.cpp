// berthd: a host daemon on liblxc speaking the subset of the LXD 5.0 REST API that the stock lxc
// client and berth use. See docs/berthd.md.

#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "daemon/daemon.hpp"
#include "daemon/instances/exec.hpp"
#include "daemon/instances/lxc_driver.hpp"
#include "daemon/migration/netcat.hpp"

namespace {

// How long berthd may take to stop after the signal: running tasks get 60 s (Daemon::stop), the
// rest is closing connections and joining threads, seconds at most. Past it berthd aborts, its
// clean-up unfinished (a core file, where they are kept, shows what each thread waited for),
// rather than let a thread that never returns (a bug) keep it, and whoever waits for it (systemd,
// a test), waiting forever. Nothing is lost that a crash would not lose: containers run on, the
// database holds its last transaction, and tasks that were still running are reported failed at
// the next start.
constexpr auto stop_limit = std::chrono::seconds{80};

// The password from a file (its first line) or the environment; never from the command line.
std::optional<std::string> trust_password(const std::string& file, std::string& error) {
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) {
      error = "cannot read --trust-password-file " + file;
      return std::nullopt;
    }
    std::string line;
    std::getline(in, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) {
      error = "--trust-password-file " + file + " is empty; write the password on its first line";
      return std::nullopt;
    }
    return line;
  }
  if (const char* env = std::getenv("BERTHD_TRUST_PASSWORD"); env != nullptr && *env != '\0') {
    std::string value = env;
    ::unsetenv("BERTHD_TRUST_PASSWORD");  // not passed on to anything berthd starts
    return value;
  }
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"berthd: a container host daemon speaking the LXD 5.0 API (liblxc, SQLite)"};
  std::string dir;
  std::string listen;
  std::string storage_pool;
  std::string password_file;
  std::string log_level = "info";
  // Required unless the internal forkstart runs (checked after parsing: CLI11 would require it there too).
  app.add_option("--dir", dir,
                 "Where berthd keeps its database, certificate, unix socket, images and containers (required)");
  app.add_option("--listen", listen, "HTTPS address ADDR:PORT for this run (overrides core.https_address)");
  app.add_option("--storage-pool", storage_pool, "Where containers' root filesystems live (default DIR/storage)");
  app.add_option("--trust-password-file", password_file,
                 "Set the trust password from this file's first line (or env BERTHD_TRUST_PASSWORD)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  // Internal, hidden from --help (no group): the start helper berthd runs for each container start,
  // as "berthd forkstart LXCPATH NAME", so liblxc forks a fresh single-threaded process rather than
  // the daemon (see daemon/instances/lxc_driver.hpp). It touches nothing of berthd's.
  std::string forkstart_lxcpath;
  std::string forkstart_name;
  CLI::App* forkstart =
      app.add_subcommand("forkstart", "Internal (run by berthd itself): start the container LXCPATH/NAME and exit")
          ->group("");
  forkstart->add_option("LXCPATH", forkstart_lxcpath, "The liblxc container path")->required();
  forkstart->add_option("NAME", forkstart_name, "The container's name")->required();
  // Internal too: "berthd forkexec LXCPATH NAME UID GID CWD MODE -- COMMAND...", the process a
  // command in a container runs through (daemon/instances/exec.hpp). Its arguments are its own.
  if (argc >= 3 && std::string_view(argv[1]) == "netcat")
    return berth::daemon::migration::netcat_main(std::atoi(argv[2]));
  if (argc >= 2 && std::string_view(argv[1]) == "forkexec") {
    return berth::daemon::forkexec_main(std::vector<std::string>(argv + 2, argv + argc));
  }
  try {
    app.parse(argc, argv);
    if (!*forkstart && dir.empty()) throw CLI::RequiredError("--dir");
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (*forkstart) return berth::daemon::forkstart_main(forkstart_lxcpath, forkstart_name);
  spdlog::set_level(spdlog::level::from_str(log_level));

  std::string error;
  berth::daemon::DaemonOptions options;
  options.dir = dir;
  if (!listen.empty()) options.listen = listen;
  if (!storage_pool.empty()) options.storage_pool = storage_pool;
  std::error_code ec;
  options.start_helper = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) options.start_helper = "/proc/self/exe";  // still this executable, when exec'd from here
  // The small helper next to this executable when there is one (each container's monitor is a
  // fork of it: daemon/helper_main.cpp); this executable otherwise, which answers the same jobs.
  if (!ec) {
    const auto helper = options.start_helper.parent_path() / "berthd-helper";
    if (::access(helper.c_str(), X_OK) == 0) options.start_helper = helper;
  }
  options.trust_password = trust_password(password_file, error);
  if (!error.empty()) {
    std::cerr << "berthd: " << error << "\n";
    return 1;
  }

  // Before any thread starts: glibc gives each thread that allocates an arena of its own (up to 8
  // per core), and memory freed in one is kept for that thread; berthd's threads mostly wait, and
  // two arenas keep its idle size down without making the few busy ones contend. Fixed thresholds
  // too: by default freeing one large block (an image upload's 16 MiB) raises the mmap threshold to
  // its size and the trim threshold to twice that, and a thread's arena then kept 16 MiB it no
  // longer used (malloc_trim does not shrink a thread arena's top). Large blocks are mapped and
  // unmapped on their own; a free top above 2 MiB goes back to the system.
  ::mallopt(M_ARENA_MAX, 2);
  ::mallopt(M_MMAP_THRESHOLD, 512 * 1024);
  ::mallopt(M_TRIM_THRESHOLD, 2 * 1024 * 1024);

  // Signals are taken by sigwait below, on this thread only: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  auto started = berth::daemon::Daemon::start(std::move(options));
  if (auto* failure = std::get_if<std::string>(&started)) {
    std::cerr << "berthd: " << *failure << "\n";
    return 1;
  }
  auto& daemon = std::get<std::unique_ptr<berth::daemon::Daemon>>(started);
  int signal = 0;
  sigwait(&signals, &signal);
  spdlog::info("berthd: {} received, stopping", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  // A watchdog ends berthd when the stop outlasts stop_limit.
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopped = false;
  std::thread watchdog([&] {
    std::unique_lock lock(stop_mu);
    if (stop_cv.wait_for(lock, stop_limit, [&] { return stopped; })) return;
    spdlog::error(
        "berthd: still stopping {} s after the signal; aborting, the rest of the clean-up undone (with "
        "--log-level debug, the last \"berthd: stopping:\" line names the step that did not end)",
        stop_limit.count());
    spdlog::default_logger()->flush();
    std::abort();
  });
  daemon->stop();
  daemon.reset();
  {
    const std::lock_guard lock(stop_mu);
    stopped = true;
  }
  stop_cv.notify_one();
  watchdog.join();
  spdlog::info("berthd: stopped");
  return 0;
}
