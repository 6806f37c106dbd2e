#pragma once
// Commands run inside a container (POST /1.0/instances/NAME/exec, lxd-protocol.md §3.8): the
// request as LXD reads it, and the process side. A command runs through "berthd forkexec", a
// fresh process that attaches to the container with liblxc and waits for the command, never in a
// fork of the multithreaded daemon (as containers start through forkstart). Its streams are three
// pipes, or one pty for an interactive command; berthd holds the other ends.

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "providers/lxd/result.hpp"

namespace berth::daemon {

struct ExecRequest {
  std::vector<std::string> command;
  std::map<std::string, std::string> environment;
  std::string cwd;  // "": HOME, else /
  std::uint32_t user = 0;
  std::uint32_t group = 0;
  bool interactive = false;
  bool wait_for_websocket = false;
  bool record_output = false;
  int width = 0;
  int height = 0;
};

// The request body, checked: ErrorKind::invalid_argument naming the field that is wrong.
[[nodiscard]] lxd::Result<ExecRequest> parse_exec_request(const nlohmann::json& body);

// As LXD's instanceExecPost fills the environment in: the instance's environment.* keys the
// request does not set, then PATH, HOME and USER (for root) and LANG unless set.
void add_default_environment(ExecRequest& request, const std::map<std::string, std::string>& expanded_config);

// A command running in a container. Thread contract: one owner thread, except signal() and
// resize(), which any thread may call.
class ExecProcess {
 public:
  // Starts "HELPER forkexec" for the command; returns once it runs in the container, or with why
  // it cannot (the container is not running, liblxc could not attach). `pty_owner`: the host ids
  // of the container's root, who gets the pty of an interactive command; `devpts`: a descriptor
  // of the container's devpts mount (LxcDriver::devpts_fd), for a pty of its own, or -1.
  [[nodiscard]] static lxd::Result<std::unique_ptr<ExecProcess>> start(
      const std::filesystem::path& helper, const std::filesystem::path& lxcpath, const std::string& name,
      const ExecRequest& request, std::pair<uid_t, gid_t> pty_owner, int devpts = -1);
  // Kills the command and the helper if they still run, and reaps the helper.
  ~ExecProcess();
  ExecProcess(const ExecProcess&) = delete;
  ExecProcess& operator=(const ExecProcess&) = delete;

  [[nodiscard]] bool interactive() const { return interactive_; }
  [[nodiscard]] pid_t command_pid() const { return command_pid_; }

  void signal(int sig) const;
  void resize(int width, int height) const;

  // Moves the streams until the command exited and its output ended: EOF, or 1 s after the exit
  // when something it left running still holds them. `output(fd, bytes)` gets stdout (1) and
  // stderr (2) as they come (an interactive command's pty is 1); `input` is what the client
  // sends for stdin. Returns the exit code as LXD reports it: the command's, 128+N when signal N
  // ended it, 127 when it cannot be run.
  class Input;
  [[nodiscard]] int pump(Input& input, const std::function<void(int fd, std::string_view bytes)>& output);

  // What the client sends for stdin, from any thread; the pump writes it.
  class Input {
   public:
    Input();
    ~Input();
    Input(const Input&) = delete;
    Input& operator=(const Input&) = delete;
    void push(std::string bytes);
    void close();  // EOF for the command (a pty gets nothing: it ends with the command)

   private:
    friend class ExecProcess;
    std::mutex mu_;
    std::deque<std::string> queued_;
    bool closed_ = false;
    int event_fd_ = -1;
  };

 private:
  ExecProcess() = default;
  bool interactive_ = false;
  pid_t helper_pid_ = -1;
  pid_t command_pid_ = -1;
  std::atomic<bool> reaped_{false};
  int stdin_fd_ = -1;   // the pty master when interactive
  int stdout_fd_ = -1;  // the pty master when interactive (a second descriptor of it)
  int stderr_fd_ = -1;  // none when interactive
  int pid_fd_ = -1;     // readable once the helper exited
  int command_pid_fd_ = -1;
};

// The helper's body, for "berthd forkexec LXCPATH NAME UID GID CWD MODE -- COMMAND...", MODE
// "pty" or "pipes", its environment the command's: attaches to the running container, runs the
// command there on its stdin/stdout/stderr (with the pty as controlling terminal in pty mode),
// writes "pid N\n" (the command's host pid) or "error MESSAGE\n" on descriptor 3, and exits with
// the command's exit code as ExecProcess::pump reports it.
[[nodiscard]] int forkexec_main(const std::vector<std::string>& args);

}  // namespace berth::daemon
