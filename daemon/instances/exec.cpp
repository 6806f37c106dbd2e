#include "daemon/instances/exec.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "daemon/instances/lxc_plumbing.hpp"

extern char** environ;

namespace berth::daemon {
namespace {

namespace fs = std::filesystem;
using lxd::ErrorKind;
using lxd::make_error;
using Clock = std::chrono::steady_clock;

constexpr int report_fd = 3;  // the helper's report: "pid N" or "error MESSAGE"
constexpr auto attach_timeout = std::chrono::seconds{30};
constexpr auto drain_after_exit = std::chrono::seconds{1};

lxd::Error invalid(const std::string& what) {
  return make_error(ErrorKind::invalid_argument, what);
}

// An exit status as LXD reports it.
int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) (void)::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

bool make_pipe(UniqueFd& read_end, UniqueFd& write_end) {
  std::array<int, 2> fds{-1, -1};
  if (::pipe2(fds.data(), O_CLOEXEC) != 0) return false;
  read_end = UniqueFd(fds[0]);
  write_end = UniqueFd(fds[1]);
  return true;
}

// ---- in the helper ----

struct Payload {
  std::vector<char*> argv;
  bool pty = false;
  const char* cwd = nullptr;
};

// Runs in the attached process, inside the container.
int run_in_container(void* data) {
  const auto* payload = static_cast<const Payload*>(data);
  if (payload->pty) {
    (void)::setsid();
    (void)::ioctl(STDIN_FILENO, TIOCSCTTY, 0);
  }
  if (payload->cwd != nullptr) {
    if (::chdir(payload->cwd) != 0) {
      std::fprintf(stderr, "berthd: cannot change to the directory %s: %s\n", payload->cwd, std::strerror(errno));
      return 1;
    }
  } else {
    const char* home = std::getenv("HOME");
    if (home == nullptr || ::chdir(home) != 0) (void)::chdir("/");
  }
  ::execvp(payload->argv[0], payload->argv.data());
  const int err = errno;
  std::fprintf(stderr, "berthd: cannot run %s: %s\n", payload->argv[0], std::strerror(err));
  return err == ENOENT ? 127 : 126;
}

void report(const std::string& line) {
  const std::string text = line + "\n";
  (void)!::write(report_fd, text.data(), text.size());
}

std::optional<std::uint32_t> parse_id(const std::string& text) {
  if (text.empty() || text.size() > 10 || text.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  const auto value = std::stoull(text);
  if (value > std::numeric_limits<std::uint32_t>::max()) return std::nullopt;
  return static_cast<std::uint32_t>(value);
}

}  // namespace

// ---- the request ----

lxd::Result<ExecRequest> parse_exec_request(const nlohmann::json& body) {
  if (!body.is_object()) return invalid("the exec request must be an object");
  ExecRequest r;
  const auto command = body.find("command");
  if (command == body.end() || !command->is_array() || command->empty()) {
    return invalid("command must be a list of strings with at least the program");
  }
  for (const auto& word : *command) {
    if (!word.is_string()) return invalid("command must be a list of strings");
    const auto& text = word.get_ref<const std::string&>();
    if (text.find('\0') != std::string::npos) return invalid("command holds a NUL byte");
    r.command.push_back(text);
  }
  if (r.command.front().empty()) return invalid("command's program is empty");
  if (const auto env = body.find("environment"); env != body.end() && !env->is_null()) {
    if (!env->is_object()) return invalid("environment must be an object of strings");
    for (const auto& [key, value] : env->items()) {
      if (!value.is_string()) return invalid("environment " + key + " must be a string");
      if (key.empty() || key.find_first_of(std::string_view("=\0", 2)) != std::string::npos) {
        return invalid("environment holds an invalid name \"" + key + "\"");
      }
      if (value.get_ref<const std::string&>().find('\0') != std::string::npos) {
        return invalid("environment " + key + " holds a NUL byte");
      }
      r.environment[key] = value.get<std::string>();
    }
  }
  const auto flag = [&](const char* key, bool& into) -> lxd::Result<void> {
    const auto it = body.find(key);
    if (it == body.end() || it->is_null()) return {};
    if (!it->is_boolean()) return invalid(std::string(key) + " must be true or false");
    into = it->get<bool>();
    return {};
  };
  for (const auto& [key, into] : {std::pair<const char*, bool*>{"interactive", &r.interactive},
                                  {"wait-for-websocket", &r.wait_for_websocket},
                                  {"record-output", &r.record_output}}) {
    if (auto ok = flag(key, *into); !ok) return ok.error();
  }
  const auto number = [&](const char* key, std::int64_t max, std::int64_t& into) -> lxd::Result<void> {
    const auto it = body.find(key);
    if (it == body.end() || it->is_null()) return {};
    if (!it->is_number_integer() || it->get<std::int64_t>() < 0 || it->get<std::int64_t>() > max) {
      return invalid(std::string(key) + " must be a whole number from 0 to " + std::to_string(max));
    }
    into = it->get<std::int64_t>();
    return {};
  };
  std::int64_t width = 0, height = 0, user = 0, group = 0;
  constexpr std::int64_t max_id = std::numeric_limits<std::uint32_t>::max() - 1;
  for (const auto& [key, max, into] : {std::tuple<const char*, std::int64_t, std::int64_t*>{"width", 65535, &width},
                                       {"height", 65535, &height},
                                       {"user", max_id, &user},
                                       {"group", max_id, &group}}) {
    if (auto ok = number(key, max, *into); !ok) return ok.error();
  }
  r.width = static_cast<int>(width);
  r.height = static_cast<int>(height);
  r.user = static_cast<std::uint32_t>(user);
  r.group = static_cast<std::uint32_t>(group);
  if (const auto cwd = body.find("cwd"); cwd != body.end() && !cwd->is_null()) {
    if (!cwd->is_string()) return invalid("cwd must be a string");
    r.cwd = cwd->get<std::string>();
    if (!r.cwd.empty() && (r.cwd.front() != '/' || r.cwd.find('\0') != std::string::npos)) {
      return invalid("cwd must be an absolute path");
    }
  }
  return r;
}

void add_default_environment(ExecRequest& request, const std::map<std::string, std::string>& expanded_config) {
  auto& env = request.environment;
  constexpr std::string_view prefix = "environment.";
  for (const auto& [key, value] : expanded_config) {
    if (key.starts_with(prefix) && key.size() > prefix.size()) env.try_emplace(key.substr(prefix.size()), value);
  }
  env.try_emplace("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  if (request.user == 0) {
    env.try_emplace("HOME", "/root");
    env.try_emplace("USER", "root");
  }
  env.try_emplace("LANG", "C.UTF-8");
}

// ---- the process ----

ExecProcess::Input::Input() : event_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

ExecProcess::Input::~Input() {
  if (event_fd_ >= 0) ::close(event_fd_);
}

void ExecProcess::Input::push(std::string bytes) {
  {
    const std::lock_guard guard(mu_);
    if (closed_ || bytes.empty()) return;
    queued_.push_back(std::move(bytes));
  }
  const std::uint64_t one = 1;
  (void)!::write(event_fd_, &one, sizeof one);
}

void ExecProcess::Input::close() {
  {
    const std::lock_guard guard(mu_);
    closed_ = true;
  }
  const std::uint64_t one = 1;
  (void)!::write(event_fd_, &one, sizeof one);
}

lxd::Result<std::unique_ptr<ExecProcess>> ExecProcess::start(const fs::path& helper, const fs::path& lxcpath,
                                                             const std::string& name, const ExecRequest& request,
                                                             std::pair<uid_t, gid_t> pty_owner, int devpts) {
  const std::string where = "exec in " + name;
  const auto io_error = [&](const std::string& what, int err) {
    return make_error(ErrorKind::io, where + ": " + what + ": " + errno_text(err));
  };
  std::unique_ptr<ExecProcess> p(new ExecProcess());
  p->interactive_ = request.interactive;

  // The command's ends (child_*) and ours.
  UniqueFd child_in, child_out, child_err, ours_in, ours_out, ours_err;
  if (request.interactive) {
    // A pty of the container's own devpts, so that the command sees its terminal in /dev/pts (tty,
    // ttyname), as LXD's OpenPtyInDevpts gives it; the host's when that cannot be opened.
    UniqueFd master;
    if (devpts >= 0) master = UniqueFd(::openat(devpts, "ptmx", O_RDWR | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC));
    if (master.get() < 0) master = UniqueFd(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (master.get() < 0) return io_error("open a pty", errno);
    int unlock = 0;
    if (::ioctl(master.get(), TIOCSPTLCK, &unlock) != 0) return io_error("unlock the pty", errno);
    UniqueFd slave(::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (slave.get() < 0) return io_error("open the pty", errno);
    // The container's root owns its terminal, as with LXD.
    if (::fchown(slave.get(), pty_owner.first, pty_owner.second) != 0) return io_error("chown the pty", errno);
    if (request.width > 0 && request.height > 0) {
      winsize size{};
      size.ws_col = static_cast<unsigned short>(request.width);
      size.ws_row = static_cast<unsigned short>(request.height);
      (void)::ioctl(master.get(), TIOCSWINSZ, &size);
    }
    UniqueFd master_read(::fcntl(master.get(), F_DUPFD_CLOEXEC, 0));
    if (master_read.get() < 0) return io_error("dup the pty", errno);
    child_in = UniqueFd(::fcntl(slave.get(), F_DUPFD_CLOEXEC, 0));
    child_out = std::move(slave);
    ours_in = std::move(master);
    ours_out = std::move(master_read);
    if (child_in.get() < 0) return io_error("dup the pty", errno);
  } else {
    if (!make_pipe(child_in, ours_in) || !make_pipe(ours_out, child_out) || !make_pipe(ours_err, child_err)) {
      return io_error("pipe", errno);
    }
  }
  UniqueFd report_read, report_write;
  if (!make_pipe(report_read, report_write)) return io_error("pipe", errno);

  SpawnActions actions;
  const int err_target = request.interactive ? child_out.get() : child_err.get();
  int err = posix_spawn_file_actions_adddup2(&actions.value, child_in.get(), STDIN_FILENO);
  if (err == 0) err = posix_spawn_file_actions_adddup2(&actions.value, child_out.get(), STDOUT_FILENO);
  if (err == 0) err = posix_spawn_file_actions_adddup2(&actions.value, err_target, STDERR_FILENO);
  if (err == 0) err = posix_spawn_file_actions_adddup2(&actions.value, report_write.get(), report_fd);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  if (err == 0) err = posix_spawn_file_actions_addclosefrom_np(&actions.value, report_fd + 1);
#endif
  if (err != 0) return io_error("file actions", err);
  SpawnAttr attr;
  err = set_helper_attributes(attr);
  if (err != 0) return io_error("spawn attributes", err);

  std::vector<std::string> args{helper.string(),
                                "forkexec",
                                lxcpath.string(),
                                name,
                                std::to_string(request.user),
                                std::to_string(request.group),
                                request.cwd.empty() ? "-" : request.cwd,
                                request.interactive ? "pty" : "pipes",
                                "--"};
  args.insert(args.end(), request.command.begin(), request.command.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env;
  for (const auto& [k, v] : request.environment) env.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  err = ::posix_spawn(&pid, args.front().c_str(), &actions.value, &attr.value, argv.data(), envp.data());
  if (err != 0) return io_error("run " + args.front(), err);
  p->helper_pid_ = pid;
  p->pid_fd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  child_in.reset();
  child_out.reset();
  child_err.reset();
  report_write.reset();

  // Its report: the command runs, or why it does not.
  std::string line;
  const auto deadline = Clock::now() + attach_timeout;
  while (line.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return make_error(ErrorKind::timeout, where + ": liblxc did not attach within 30 s");
    pollfd pfd{report_read.get(), POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(left));
    if (ready < 0 && errno != EINTR) return io_error("poll", errno);
    if (ready <= 0) continue;
    std::array<char, 256> buf{};
    const ssize_t n = ::read(report_read.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    line.append(buf.data(), static_cast<std::size_t>(n));
    if (line.size() > 4096) break;
  }
  line = line.substr(0, line.find('\n'));
  if (line.starts_with("pid ")) {
    try {
      p->command_pid_ = static_cast<pid_t>(std::stol(line.substr(4)));
    } catch (const std::exception&) {
      p->command_pid_ = -1;
    }
  }
  if (p->command_pid_ <= 0) {
    const std::string why = line.starts_with("error ") ? line.substr(6) : "the exec helper ended without a word";
    return make_error(ErrorKind::invalid_argument, why);
  }
  // Signals go to this very process, even once its pid is free again.
  p->command_pid_fd_ = static_cast<int>(::syscall(SYS_pidfd_open, p->command_pid_, 0));
  p->stdin_fd_ = ours_in.release();
  p->stdout_fd_ = ours_out.release();
  p->stderr_fd_ = ours_err.release();
  for (const int fd : {p->stdin_fd_, p->stdout_fd_, p->stderr_fd_}) {
    if (fd >= 0) set_nonblocking(fd);
  }
  return p;
}

ExecProcess::~ExecProcess() {
  if (!reaped_ && helper_pid_ > 0) {
    signal(SIGKILL);
    ::kill(helper_pid_, SIGKILL);
    bool exited = false;
    (void)wait_child(helper_pid_, 0, exited);
  }
  for (const int fd : {stdin_fd_, stdout_fd_, stderr_fd_, pid_fd_, command_pid_fd_}) {
    if (fd >= 0) ::close(fd);
  }
}

void ExecProcess::signal(int sig) const {
  if (sig <= 0 || sig >= NSIG) return;
  // Only through the pidfd: without one the command was gone already, and its pid may name
  // another process by now.
  if (command_pid_fd_ >= 0) (void)::syscall(SYS_pidfd_send_signal, command_pid_fd_, sig, nullptr, 0U);
}

void ExecProcess::resize(int width, int height) const {
  if (!interactive_ || width <= 0 || height <= 0 || width > 65535 || height > 65535) return;
  winsize size{};
  size.ws_col = static_cast<unsigned short>(width);
  size.ws_row = static_cast<unsigned short>(height);
  (void)::ioctl(stdin_fd_, TIOCSWINSZ, &size);
}

int ExecProcess::pump(Input& input, const std::function<void(int fd, std::string_view bytes)>& output) {
  std::string pending;  // taken from input, not yet written
  bool input_closed = false;
  int status = 0;
  bool wait_failed = false;  // no exit status to report: -1, as LXD reports a failed wait
  std::optional<Clock::time_point> exited_at;
  std::array<bool, 2> open{stdout_fd_ >= 0, stderr_fd_ >= 0};
  const std::array<int, 2> out_fds{stdout_fd_, stderr_fd_};
  std::array<char, 65536> buf{};
  for (;;) {
    if (!exited_at) {
      bool exited = false;
      if (auto st = wait_child(helper_pid_, WNOHANG, exited); exited || !st) {
        status = st.value_or(0);
        wait_failed = !st;
        exited_at = Clock::now();
        reaped_ = true;
      }
    }
    if (exited_at && ((!open[0] && !open[1]) || Clock::now() - *exited_at > drain_after_exit)) break;
    // What the client sent, in order.
    if (pending.empty() && !input_closed) {
      std::uint64_t count = 0;
      (void)!::read(input.event_fd_, &count, sizeof count);
      const std::lock_guard guard(input.mu_);
      while (!input.queued_.empty()) {
        pending += std::move(input.queued_.front());
        input.queued_.pop_front();
      }
      if (input.closed_ && pending.empty()) {
        input_closed = true;
        // EOF for a pipe; a pty has no EOF of its own (the command ends, or ^D is sent).
        if (!interactive_ && stdin_fd_ >= 0) {
          ::close(stdin_fd_);
          stdin_fd_ = -1;
        }
      }
    }
    std::array<pollfd, 5> fds{};
    nfds_t n = 0;
    for (std::size_t i = 0; i < 2; ++i) {
      if (open[i]) fds[n++] = {out_fds[i], POLLIN, 0};
    }
    const nfds_t first_extra = n;
    if (!pending.empty() && stdin_fd_ >= 0) fds[n++] = {stdin_fd_, POLLOUT, 0};
    if (pending.empty() && !input_closed) fds[n++] = {input.event_fd_, POLLIN, 0};
    if (!exited_at && pid_fd_ >= 0) fds[n++] = {pid_fd_, POLLIN, 0};
    const int wait_ms = exited_at ? 50 : (pid_fd_ >= 0 ? 1000 : 20);
    const int ready = ::poll(fds.data(), n, wait_ms);
    if (ready < 0 && errno != EINTR) break;
    for (nfds_t k = 0; k < first_extra; ++k) {
      if (fds[k].revents == 0) continue;
      const std::size_t i = fds[k].fd == out_fds[0] ? 0 : 1;
      const ssize_t got = ::read(out_fds[i], buf.data(), buf.size());
      if (got > 0) {
        output(static_cast<int>(i) + 1, std::string_view(buf.data(), static_cast<std::size_t>(got)));
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        open[i] = false;  // EOF; EIO on a pty whose other side is closed
      }
    }
    if (!pending.empty() && stdin_fd_ >= 0) {
      const ssize_t put = ::write(stdin_fd_, pending.data(), pending.size());
      if (put > 0) {
        pending.erase(0, static_cast<std::size_t>(put));
      } else if (put < 0 && errno != EAGAIN && errno != EINTR) {
        pending.clear();  // the command closed its stdin: what is left has nowhere to go
      }
    }
  }
  return wait_failed ? -1 : exit_code_of(status);
}

// ---- the helper ----

int forkexec_main(const std::vector<std::string>& args) {
  // Nothing inherited beyond stdin/stdout/stderr and the report reaches liblxc or the command.
  if (::syscall(SYS_close_range, static_cast<unsigned>(report_fd + 1), ~0U, 0U) != 0) {
    for (int fd = report_fd + 1; fd < 1024; ++fd) ::close(fd);
  }
  (void)::fcntl(report_fd, F_SETFD, FD_CLOEXEC);
  // LXCPATH NAME UID GID CWD MODE -- COMMAND...
  if (args.size() < 8 || args[6] != "--") {
    report("error usage: berthd forkexec LXCPATH NAME UID GID CWD pty|pipes -- COMMAND...");
    return 2;
  }
  const std::string& lxcpath = args[0];
  const std::string& name = args[1];
  const auto uid = parse_id(args[2]);
  const auto gid = parse_id(args[3]);
  const bool pty = args[5] == "pty";
  if (!uid || !gid || (args[5] != "pty" && args[5] != "pipes") || lxcpath.empty() || lxcpath.front() != '/') {
    report("error bad arguments for berthd forkexec");
    return 2;
  }
  auto c = open_defined(lxcpath, name);
  if (!c) {
    report("error " + c.error().message);
    return 2;
  }
  lxc_container* ct = c->get();
  if (!ct->is_running(ct)) {
    report("error Instance is not running");
    return 2;
  }
  std::vector<std::string> command(args.begin() + 7, args.end());
  Payload payload;
  for (auto& word : command) payload.argv.push_back(word.data());
  payload.argv.push_back(nullptr);
  payload.pty = pty;
  payload.cwd = args[4] == "-" ? nullptr : args[4].c_str();

  lxc_attach_options_t options = LXC_ATTACH_OPTIONS_DEFAULT;
  options.env_policy = LXC_ATTACH_CLEAR_ENV;
  options.extra_env_vars = environ;              // exactly what berthd gave us: the command's environment
  options.initial_cwd = const_cast<char*>("/");  // run_in_container changes to the real one
  options.uid = static_cast<uid_t>(*uid);
  options.gid = static_cast<gid_t>(*gid);
  options.stdin_fd = STDIN_FILENO;
  options.stdout_fd = STDOUT_FILENO;
  options.stderr_fd = STDERR_FILENO;
  pid_t pid = -1;
  if (ct->attach(ct, run_in_container, &payload, &options, &pid) < 0 || pid <= 0) {
    report("error liblxc could not attach to " + name);
    return 2;
  }
  report("pid " + std::to_string(pid));
  ::close(report_fd);
  bool exited = false;
  auto status = wait_child(pid, 0, exited);
  if (!status || !exited) return 1;
  const int code = exit_code_of(*status);
  return code < 0 ? 1 : code;
}

}  // namespace berth::daemon
