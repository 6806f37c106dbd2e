#include "daemon/api/exec_api.hpp"

#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "daemon/api/requests.hpp"
#include "daemon/api/response.hpp"
#include "engine/util/random.hpp"

namespace berth::daemon::api {
namespace {

namespace fs = std::filesystem;
using lxd::ErrorKind;

constexpr auto connect_timeout = std::chrono::seconds{5};          // as LXD waits for the channels
constexpr std::uintmax_t max_recorded = std::uintmax_t{64} << 20;  // per stream; the rest is dropped
constexpr std::uintmax_t max_served_log = std::uintmax_t{256} << 20;
// Output queued for a client beyond which the command is held back.
constexpr std::size_t output_window = std::size_t{4} << 20;
const char* const control_fd = "control";

std::string instance_url(const std::string& name) {
  return "/1.0/instances/" + name;
}

nlohmann::json resources_of(const std::string& name) {
  return {{"instances", {instance_url(name)}}, {"containers", {"/1.0/containers/" + name}}};
}

// "exec_<hex>.stdout" / ".stderr": the recorded output berthd writes and lets a client delete.
bool exec_log_name(const std::string& file) {
  if (!file.starts_with("exec_")) return false;
  const auto dot = file.rfind('.');
  if (dot == std::string::npos) return false;
  const auto ext = file.substr(dot);
  const auto id = file.substr(5, dot - 5);
  return (ext == ".stdout" || ext == ".stderr") && !id.empty() &&
         id.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// Appends what a command writes to a log file, up to max_recorded.
class Recorder {
 public:
  explicit Recorder(const fs::path& path) : out_(path, std::ios::binary | std::ios::trunc) {}
  [[nodiscard]] bool ok() const { return static_cast<bool>(out_); }
  void write(std::string_view bytes) {
    const auto room = max_recorded - std::min(max_recorded, written_);
    const auto n = std::min<std::uintmax_t>(room, bytes.size());
    out_.write(bytes.data(), static_cast<std::streamsize>(n));
    out_.flush();
    written_ += n;
  }

 private:
  std::ofstream out_;
  std::uintmax_t written_ = 0;
};

// One websocket exec: its channels, filled in as the client connects them, and the command.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Instances& instances, Operations& operations, ExecSessions& sessions, std::string name, ExecRequest request)
      : instances_(instances),
        operations_(operations),
        sessions_(sessions),
        name_(std::move(name)),
        request_(std::move(request)) {}

  // The channels' secrets, as the operation's metadata names them.
  std::map<std::string, std::string> make_secrets() {
    std::vector<std::string> fds{"0", control_fd};
    if (!request_.interactive) fds.insert(fds.begin() + 1, {"1", "2"});
    for (const auto& fd : fds) secrets_[fd] = random_secret();
    return secrets_;
  }

  // Called on the server thread when the client connects channel `fd`.
  void attach(const std::string& fd, const std::shared_ptr<http::WebSocket>& ws) {
    std::weak_ptr<Session> weak = shared_from_this();
    if (fd == "0") {
      ws->on_message = [weak, interactive = request_.interactive](const std::string& message, bool text) {
        auto self = weak.lock();
        if (!self) return;
        if (!text) {
          self->input_.push(message);
        } else if (message.empty() && !interactive) {
          self->input_.close();  // the barrier: stdin ended
        }
      };
      ws->on_close = [weak, interactive = request_.interactive] {
        if (auto self = weak.lock(); self && !interactive) self->input_.close();
      };
    } else if (fd == control_fd) {
      ws->on_message = [weak](const std::string& message, bool) {
        if (auto self = weak.lock()) self->control(message);
      };
      // Closing control kills the command (lxc closes it when it is interrupted).
      ws->on_close = [weak] {
        if (auto self = weak.lock()) self->kill_unless_done("the control channel closed");
      };
    } else {
      // Nothing comes from the client on stdout or stderr; their closing before the command ended
      // means the client went away, and without a control channel nothing else would notice.
      ws->on_close = [weak] {
        auto self = weak.lock();
        if (self && !self->has_control()) self->kill_unless_done("an output channel closed");
      };
    }
    {
      const std::lock_guard guard(mu_);
      if (done_) {
        // Too late: the command ran already (or never will).
        ws->close();
        return;
      }
      sockets_[fd] = ws;
    }
    cv_.notify_all();
  }

  // On its ExecSessions thread: waits for the channels, runs the command, ends the operation.
  void run(const std::string& op_id) {
    if (!wait_for_channels()) {
      close_all();
      operations_.finish(op_id, lxd::make_error(ErrorKind::timeout, "Timed out waiting for websockets to connect"));
      return;
    }
    auto started = instances_.exec(name_, request_);
    if (!started) {
      close_all();
      operations_.finish(op_id, started.error());
      return;
    }
    std::shared_ptr<ExecProcess> process = std::move(*started);
    auto tracked = sessions_.track(*process);
    {
      const std::lock_guard guard(mu_);
      process_ = process;
      if (kill_asked_ || !tracked) process->signal(SIGKILL);
    }
    const int code = process->pump(input_, [this](int fd, std::string_view bytes) {
      std::shared_ptr<http::WebSocket> ws;
      {
        const std::lock_guard guard(mu_);
        const auto it = sockets_.find(request_.interactive ? "0" : std::to_string(fd));
        if (it != sockets_.end()) ws = it->second;
      }
      if (!ws) return;
      // A command that writes faster than the client reads is held back (its pipe fills and it
      // waits), rather than its output queued until the socket gives up on the client.
      while (ws->is_open() && (ws->queued_messages() >= http::WebSocket::max_queued_messages / 4 ||
                               ws->queued_bytes() >= output_window)) {
        std::this_thread::sleep_for(std::chrono::milliseconds{2});
      }
      ws->send_binary(std::string(bytes));
    });
    {
      const std::lock_guard guard(mu_);
      done_ = true;
      process_.reset();
    }
    close_all();
    operations_.finish(op_id, nlohmann::json{{"return", code}});
  }

 private:
  bool has_control() {
    const std::lock_guard guard(mu_);
    return sockets_.count(control_fd) != 0;
  }

  bool wait_for_channels() {
    std::unique_lock guard(mu_);
    return cv_.wait_for(guard, connect_timeout, [&] {
      for (const auto& [fd, secret] : secrets_) {
        // Control is optional for a non-interactive command (older clients never connect it).
        if (fd == control_fd && !request_.interactive) continue;
        if (sockets_.count(fd) == 0) return false;
      }
      return true;
    });
  }

  void control(const std::string& message) {
    const auto command = parse_exec_control(message);
    if (!command) return;
    std::shared_ptr<ExecProcess> process;
    {
      const std::lock_guard guard(mu_);
      process = process_;
    }
    if (!process) return;
    if (command->kind == ExecControl::Kind::resize) {
      process->resize(command->width, command->height);
    } else {
      process->signal(command->signal);
    }
  }

  void kill_unless_done(const char* why) {
    const std::lock_guard guard(mu_);
    if (done_) return;
    kill_asked_ = true;
    if (process_) {
      spdlog::info("exec in {}: {}; killing the command", name_, why);
      process_->signal(SIGKILL);
    }
  }

  // Output ends with a barrier (an empty text message), then every channel closes.
  void close_all() {
    std::map<std::string, std::shared_ptr<http::WebSocket>> sockets;
    {
      const std::lock_guard guard(mu_);
      sockets = sockets_;
      done_ = true;
    }
    for (const auto& [fd, ws] : sockets) {
      if (fd == "1" || fd == "2") ws->send_text("");
      ws->close();
    }
  }

  Instances& instances_;
  Operations& operations_;
  ExecSessions& sessions_;
  std::string name_;
  ExecRequest request_;
  std::map<std::string, std::string> secrets_;  // fixed before any channel connects
  ExecProcess::Input input_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::shared_ptr<http::WebSocket>> sockets_;
  std::shared_ptr<ExecProcess> process_;
  bool kill_asked_ = false;
  bool done_ = false;
};

class ExecRoutes {
 public:
  ExecRoutes(Instances& instances, Operations& operations, OperationSockets& sockets, ExecSessions& sessions)
      : instances_(instances), operations_(operations), sockets_(sockets), sessions_(sessions) {}

  http::Response exec(const Call& call) const {
    const auto& name = call.params.at("name");
    std::string error;
    const auto body = call.json_object(error);
    if (!body) return error_response(400, error);
    auto request = parse_exec_request(*body);
    if (!request) return error_response(request.error());
    if (auto ok = instances_.check_exec(name); !ok) return error_response(ok.error());
    if (request->wait_for_websocket) return exec_with_websockets(name, std::move(*request));

    // A task: no stdin; the output recorded, or dropped.
    auto work = [&instances = instances_, &sessions = sessions_, name,
                 request = std::move(*request)]() -> lxd::Result<nlohmann::json> {
      nlohmann::json metadata = nlohmann::json::object();
      std::optional<Recorder> out;
      std::optional<Recorder> err;
      if (request.record_output) {
        const std::string id = util::random_hex(32);
        const auto dir = instances.log_dir(name);
        out.emplace(dir / ("exec_" + id + ".stdout"));
        err.emplace(dir / ("exec_" + id + ".stderr"));
        if (!out->ok() || !err->ok()) {
          return lxd::make_error(ErrorKind::io, "cannot record the output in " + dir.string());
        }
        metadata["output"] = {{"1", instance_url(name) + "/logs/exec_" + id + ".stdout"},
                              {"2", instance_url(name) + "/logs/exec_" + id + ".stderr"}};
      }
      auto process = instances.exec(name, request);
      if (!process) return process.error();
      auto tracked = sessions.track(**process);
      if (!tracked) (*process)->signal(SIGKILL);
      ExecProcess::Input input;
      input.close();
      metadata["return"] = (*process)->pump(input, [&](int fd, std::string_view bytes) {
        auto& into = fd == 2 ? err : out;
        if (into) into->write(bytes);
      });
      return metadata;
    };
    return async_response(operations_.add_task("Executing command", resources_of(name), std::move(work)));
  }

  http::Response list_logs(const Call& call) const {
    const auto& name = call.params.at("name");
    if (auto found = instances_.writable(name); !found) return error_response(found.error());
    nlohmann::json out = nlohmann::json::array();
    std::error_code ec;
    if (fs::exists(instances_.lxc_log(name), ec)) out.push_back(instance_url(name) + "/logs/lxc.log");
    for (const auto& entry : fs::directory_iterator(instances_.log_dir(name), ec)) {
      const auto file = entry.path().filename().string();
      if (exec_log_name(file)) out.push_back(instance_url(name) + "/logs/" + file);
    }
    return sync_response(out);
  }

  http::Response get_log(const Call& call) const {
    const auto& name = call.params.at("name");
    if (auto found = instances_.writable(name); !found) return error_response(found.error());
    const auto path = log_path(name, call.params.at("file"));
    if (!path) return error_response(404, "Log file not found");
    std::error_code ec;
    const auto size = fs::file_size(*path, ec);
    if (ec) return error_response(404, "Log file not found");
    if (size > max_served_log) return error_response(500, "The log file is larger than 256 MiB");
    std::ifstream in(*path, std::ios::binary);
    http::Response response;
    response.content_type = "application/octet-stream";
    response.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return response;
  }

  http::Response delete_log(const Call& call) const {
    const auto& name = call.params.at("name");
    if (auto found = instances_.writable(name); !found) return error_response(found.error());
    const auto& file = call.params.at("file");
    if (!exec_log_name(file)) return error_response(400, "Only exec output files can be deleted");
    std::error_code ec;
    if (!fs::remove(instances_.log_dir(name) / file, ec)) {
      return error_response(ec ? 500 : 404, ec ? "Cannot delete the log file: " + ec.message() : "Log file not found");
    }
    return sync_response(nullptr);
  }

 private:
  std::optional<fs::path> log_path(const std::string& name, const std::string& file) const {
    if (file == "lxc.log") return instances_.lxc_log(name);
    if (exec_log_name(file)) return instances_.log_dir(name) / file;
    return std::nullopt;
  }

  http::Response exec_with_websockets(const std::string& name, ExecRequest request) const {
    auto session = std::make_shared<Session>(instances_, operations_, sessions_, name, request);
    const auto secrets = session->make_secrets();
    nlohmann::json metadata = {{"fds", secrets},
                               {"command", request.command},
                               {"environment", request.environment},
                               {"interactive", request.interactive}};
    auto op = operations_.add_websocket("Executing command", resources_of(name), std::move(metadata));
    const std::string id = op.value("id", "");
    std::map<std::string, OperationSockets::Accept> channels;
    for (const auto& [fd, secret] : secrets) {
      channels[secret] = [session, fd = fd](std::shared_ptr<http::WebSocket> ws) { session->attach(fd, ws); };
    }
    if (!sockets_.add(id, std::move(channels)) || !sessions_.launch([session, id] { session->run(id); })) {
      operations_.finish(id, lxd::make_error(ErrorKind::conflict, "berthd is stopping"));
    }
    return async_response(op);
  }

  Instances& instances_;
  Operations& operations_;
  OperationSockets& sockets_;
  ExecSessions& sessions_;
};

}  // namespace

bool ExecSessions::launch(std::function<void()> session) {
  const std::lock_guard guard(mu_);
  if (stopping_) return false;
  // Threads of sessions that ended are joined here, so they do not pile up.
  std::erase_if(threads_, [](Thread& t) {
    if (!t.done->load()) return false;
    t.thread.join();
    return true;
  });
  auto done = std::make_shared<std::atomic<bool>>(false);
  threads_.push_back({std::thread([session = std::move(session), done] {
                        try {
                          session();
                        } catch (const std::exception& e) {
                          spdlog::error("exec: a session failed: {}", e.what());
                        }
                        done->store(true);
                      }),
                      done});
  return true;
}

std::shared_ptr<void> ExecSessions::track(ExecProcess& process) {
  const std::lock_guard guard(mu_);
  if (stopping_) return nullptr;
  running_.insert(&process);
  return std::shared_ptr<void>(static_cast<void*>(&process), [this](void* p) {
    const std::lock_guard inner(mu_);
    running_.erase(static_cast<ExecProcess*>(p));
  });
}

void ExecSessions::stop() {
  std::vector<Thread> threads;
  {
    const std::lock_guard guard(mu_);
    stopping_ = true;
    for (auto* process : running_) process->signal(SIGKILL);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.thread.join();
}

void add_exec_routes(Router& router, Instances& instances, Operations& operations, OperationSockets& sockets,
                     ExecSessions& sessions) {
  auto routes = std::make_shared<ExecRoutes>(instances, operations, sockets, sessions);
  auto bind = [routes](auto method) {
    return [routes, method](const Call& call) { return ((*routes).*method)(call); };
  };
  router.add("/1.0/instances/{name}/exec", "POST", Access::trusted, bind(&ExecRoutes::exec));
  router.add("/1.0/instances/{name}/logs", "GET", Access::trusted, bind(&ExecRoutes::list_logs));
  router.add("/1.0/instances/{name}/logs/{file}", "GET", Access::trusted, bind(&ExecRoutes::get_log));
  router.add("/1.0/instances/{name}/logs/{file}", "DELETE", Access::trusted, bind(&ExecRoutes::delete_log));
}

const std::vector<std::string>& exec_extensions() {
  // container_exec_recording: record-output; container_exec_signal_handling: control's "signal";
  // container_exec_user_group_cwd: user, group, cwd (lxc exec --user/--group/--cwd).
  static const std::vector<std::string> list = {"container_exec_recording", "container_exec_signal_handling",
                                                "container_exec_user_group_cwd"};
  return list;
}

}  // namespace berth::daemon::api
