#include "daemon/migration/transfer.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "daemon/migration/netcat.hpp"
#include "daemon/migration/process.hpp"

namespace berth::daemon::migration {
namespace {

using lxd::ErrorKind;
using lxd::make_error;
using Clock = std::chrono::steady_clock;
using Kind = http::MessageChannel::Message::Kind;

// After the local rsync exited, how long the peer's barrier may take.
constexpr auto barrier_grace = std::chrono::seconds{30};

// The sender's remote shell hands over the two sockets rsync talks to it through (netcat.hpp):
// its stdin, which carries rsync's output, and its stdout, rsync's input. Waits while rsync runs
// (its end is `exit_fd`), at most 30 s. Empty when it worked, else why not.
std::string receive_rsync_sockets(int socket, int exit_fd, const std::atomic<bool>* cancelled,
                                  const std::filesystem::path& helper, Fd& from_rsync, Fd& to_rsync) {
  const auto deadline = Clock::now() + std::chrono::seconds{30};
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return "rsync's remote shell did not hand over its pipes within 30 s";
    if (cancelled != nullptr && *cancelled) return "cancelled";
    std::array<pollfd, 2> watched{{{socket, POLLIN, 0}, {exit_fd, POLLIN, 0}}};
    const int r = ::poll(watched.data(), exit_fd >= 0 ? 2 : 1, static_cast<int>(std::min<long long>(left, 250)));
    if (r < 0 && errno != EINTR) return errno_text("poll");
    if (watched[0].revents != 0) break;
    if (exit_fd >= 0 && watched[1].revents != 0) return "rsync ended before its remote shell handed over its pipes";
  }
  PipesMessage m;
  ssize_t n = 0;
  do {
    n = ::recvmsg(socket, &m.message, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno_text("recvmsg");
  const cmsghdr* header = CMSG_FIRSTHDR(&m.message);
  if (n != 1 || (m.message.msg_flags & MSG_CTRUNC) != 0 || header == nullptr || header->cmsg_level != SOL_SOCKET ||
      header->cmsg_type != SCM_RIGHTS || header->cmsg_len != CMSG_LEN(2 * sizeof(int))) {
    // Whatever descriptors did arrive are closed with the message's buffer left unread.
    if (header != nullptr && header->cmsg_type == SCM_RIGHTS) {
      const std::size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int fd = -1;
        std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
        ::close(fd);
      }
    }
    return "rsync's remote shell sent something other than its two sockets: is " + helper.string() +
           " the berthd-helper this berthd came with? Reinstall berthd, or restart it";
  }
  std::array<int, 2> fds{};
  std::memcpy(fds.data(), CMSG_DATA(header), sizeof(int) * fds.size());
  from_rsync.reset(fds[0]);
  to_rsync.reset(fds[1]);
  // rsync makes the sockets to its remote shell non-blocking (and only the shell's stdin blocking
  // again): berthd's threads block on them, so both are made blocking (only berthd holds these ends).
  for (const int fd : fds) {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) return errno_text("fcntl");
  }
  return {};
}

Result<void> run(const std::filesystem::path& dir, const std::vector<std::string>& args, bool sender,
                 http::MessageChannel& fs, const Session& session) {
  const char* verb = sender ? "send" : "receive";
  const auto failed = [&](const std::string& why) {
    return make_error(ErrorKind::io,
                      std::string("Rsync ") + verb + " failed: " + session.name + ", " + dir.string() + ": " + why);
  };
  std::array<int, 2> pair{};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair.data()) != 0) return failed(errno_text("socketpair"));
  Fd ours(pair[0]);
  Fd theirs(pair[1]);
  if (theirs.get() <= 3) {
    // Above 3, so that the sender's dup to fd 3 is a real copy (one without CLOEXEC).
    theirs.reset(::fcntl(theirs.get(), F_DUPFD_CLOEXEC, 10));
    if (theirs.get() < 0) return failed(errno_text("fcntl"));
  }
  std::array<int, 2> errs{};
  if (::pipe2(errs.data(), O_CLOEXEC) != 0) return failed(errno_text("pipe"));
  Fd err_read(errs[0]);
  Fd err_write(errs[1]);

  Spawned rsync;
  // The receiver talks on its stdin and stdout; the sender through its remote shell, which gets
  // the socket as fd 3 (and rsync's stdout, which rsync does not use, goes to stderr).
  const Spawned::Stdio stdio = sender ? Spawned::Stdio{-1, err_write.get(), err_write.get(), theirs.get()}
                                      : Spawned::Stdio{theirs.get(), theirs.get(), err_write.get(), -1};
  if (auto started = rsync.start("rsync", args, stdio); !started) {
    return failed(started.error().message);
  }
  theirs.reset();
  err_write.reset();

  // Where the threads read rsync's output and write its input: the socket (the receiver), or the
  // sockets the sender's remote shell handed over.
  Fd from_rsync;
  Fd to_rsync;
  if (sender) {
    const std::string why =
        receive_rsync_sockets(ours.get(), rsync.exit_fd(), session.cancelled, session.netcat, from_rsync, to_rsync);
    if (!why.empty()) {
      rsync.kill_all();
      rsync.wait(true);
      return failed(with_stderr(why, drain(err_read.get())));
    }
  }
  const int output = sender ? from_rsync.get() : ours.get();
  const int input = sender ? to_rsync.get() : ours.get();

  std::atomic<bool> abort{false};
  std::atomic<std::uint64_t> moved{0};
  std::atomic<bool> channel_failed{false};  // the channel ended before the peer's barrier
  std::atomic<bool> barrier_seen{false};
  std::atomic<bool> idle{false};

  // rsync's output to the peer, then the barrier.
  std::thread out([&] {
    bool sent_all = true;
    for (;;) {
      std::string buffer(chunk_size, '\0');
      const ssize_t n = ::read(output, buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      const auto size = static_cast<std::size_t>(n);
      // A full read goes as it is; a short one is copied to its size, as the channel may hold
      // many small messages and each would otherwise keep a whole chunk.
      if (size < chunk_size / 2) {
        buffer = buffer.substr(0, size);
      } else {
        buffer.resize(size);
      }
      if (!fs.send(std::move(buffer), false)) {
        sent_all = false;
        break;
      }
      if (sender) moved += size;
    }
    if (session.local_done) session.local_done();
    if (!sent_all || !fs.send("", true)) channel_failed = true;
  });
  // The peer's output to rsync, until its barrier (what rsync no longer takes is drained).
  std::thread in([&] {
    bool writable = true;
    auto last = Clock::now();
    for (;;) {
      auto m = fs.receive(Clock::now() + tick);
      if (m.kind == Kind::timeout) {
        if (abort) break;
        if (Clock::now() - last > idle_limit) {
          idle = true;
          break;
        }
        continue;
      }
      last = Clock::now();
      if (m.kind == Kind::closed) {
        channel_failed = true;
        break;
      }
      if (m.kind == Kind::text) {
        barrier_seen = true;
        break;
      }
      if (!sender) moved += m.data.size();
      if (writable && !write_all(input, m.data.data(), m.data.size())) writable = false;
    }
    ::shutdown(input, SHUT_WR);
  });

  std::string stderr_text;
  std::optional<Clock::time_point> exited_at;
  auto reported = Clock::now();
  std::uint64_t last_reported = 0;
  bool err_open = true;
  bool killed = false;
  const auto stop_everything = [&] {
    abort = true;
    rsync.kill_all();
    ::shutdown(output, SHUT_RDWR);
    ::shutdown(input, SHUT_RDWR);
    fs.abort();
  };
  for (;;) {
    // rsync's stderr and its end, or (once it is gone) the peer's barrier, awaited: looked for
    // often, as the caller (a frozen container's last pass) waits on it.
    std::array<pollfd, 2> watched{};
    nfds_t count = 0;
    if (err_open) watched[count++] = {err_read.get(), POLLIN, 0};
    if (!exited_at && rsync.exit_fd() >= 0) watched[count++] = {rsync.exit_fd(), POLLIN, 0};
    const bool short_wait = exited_at || rsync.exit_fd() < 0;
    const int timeout_ms = short_wait ? 5 : static_cast<int>(tick.count());
    if (::poll(watched.data(), count, timeout_ms) > 0 && err_open && watched[0].revents != 0) {
      std::array<char, 4096> buf{};
      const ssize_t n = ::read(err_read.get(), buf.data(), buf.size());
      if (n > 0) {
        keep_tail(stderr_text, buf.data(), static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        err_open = false;
      }
    }
    if (session.progress && Clock::now() - reported > std::chrono::milliseconds{500} && moved != last_reported) {
      last_reported = moved;
      reported = Clock::now();
      session.progress(last_reported);
    }
    if (!killed && ((session.cancelled != nullptr && *session.cancelled) || idle || channel_failed)) {
      killed = true;
      stop_everything();
    }
    if (!exited_at && rsync.wait(false)) exited_at = Clock::now();
    if (exited_at && !err_open && barrier_seen) break;
    if (exited_at && (killed || Clock::now() - *exited_at > barrier_grace)) {
      if (!killed) {
        killed = true;
        stop_everything();
      }
      break;
    }
  }
  abort = true;
  in.join();
  ::shutdown(output, SHUT_RDWR);  // the out thread's read ends, whatever still holds the socket
  out.join();
  if (session.progress) session.progress(moved);
  spdlog::info("migration: {}: {} bytes {} by rsync", session.name, moved.load(), sender ? "sent" : "received");

  if (session.cancelled != nullptr && *session.cancelled) return failed("cancelled");
  if (idle) return failed("nothing came from the other side for " + std::to_string(idle_limit.count()) + " minutes");
  if (!rsync.succeeded()) {
    return failed(with_stderr(channel_failed ? "the connection to the other side ended; rsync " + rsync.outcome()
                                             : "rsync " + rsync.outcome(),
                              stderr_text));
  }
  if (channel_failed || !barrier_seen) return failed("the connection to the other side ended before the stream did");
  return {};
}

}  // namespace

Result<void> send_tree(const std::filesystem::path& dir, const RsyncFeatures& features, http::MessageChannel& fs,
                       const Session& session) {
  // rsync splits -e itself; the extra words it appends (host, "rsync --server ...") go to netcat,
  // which ignores them.
  const std::string shell = session.netcat.string() + " netcat 3";
  return run(dir, rsync_send_args(dir, features, local_rsync_at_least_3_1_3(), shell), true, fs, session);
}

Result<void> receive_tree(const std::filesystem::path& dir, const RsyncFeatures& features, http::MessageChannel& fs,
                          const Session& session) {
  RsyncFeatures used = features;
  used.negotiation = features.negotiation && local_rsync_negotiates();
  auto args = rsync_receive_args(dir, used, local_rsync_at_least_3_1_3());
  if (local_rsync_at_least_3_1_3()) {
    // One flag more than LXD's list, local to this end (the receiver's generator decides what to
    // ask for): times compared to the nanosecond. A volume receives each snapshot in turn, and a
    // file that changed between two snapshots taken in the same second, keeping its size, would
    // otherwise be taken as unchanged and the later snapshot keep the earlier content.
    args.insert(args.end() - 2, "--modify-window=-1");
  }
  return run(dir, args, false, fs, session);
}

namespace {

// The first line of `rsync --version` (asked once); empty when rsync cannot be run.
const std::string& local_rsync_version() {
  static const std::string line = [] {
    FILE* p = ::popen("rsync --version 2>/dev/null", "re");
    if (p == nullptr) return std::string();
    std::array<char, 256> buf{};
    const bool read = std::fgets(buf.data(), static_cast<int>(buf.size()), p) != nullptr;
    ::pclose(p);
    return read ? std::string(buf.data()) : std::string();
  }();
  return line;
}

}  // namespace

bool local_rsync_at_least_3_1_3() {
  return rsync_at_least_3_1_3(local_rsync_version());
}

bool local_rsync_negotiates() {
  return rsync_negotiates(local_rsync_version());
}

std::string progress_text(const std::string& name, std::uint64_t bytes, std::uint64_t bytes_per_second) {
  const auto size = [](std::uint64_t n) {
    if (n < 1000) return std::to_string(n) + "B";
    double value = static_cast<double>(n);
    std::string text;
    for (const char* unit : {"kB", "MB", "GB", "TB", "PB", "EB"}) {
      value /= 1000;
      if (value < 1000 || std::strcmp(unit, "EB") == 0) {
        std::array<char, 32> buf{};
        std::snprintf(buf.data(), buf.size(), "%.2f%s", value, unit);
        return std::string(buf.data());
      }
    }
    return text;
  };
  return name + ": " + size(bytes) + " (" + size(bytes_per_second) + "/s)";
}

}  // namespace berth::daemon::migration
