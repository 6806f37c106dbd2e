#include "daemon/migration/btrfs_transfer.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <array>
#include <cerrno>
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

// A pipe the size of a chunk, so that btrfs and berthd each move a chunk per wake-up (the default
// 64 KiB costs four times the switches); best effort.
void widen(int pipe) {
  ::fcntl(pipe, F_SETPIPE_SZ, static_cast<int>(chunk_size));
}

bool cancelled(const Session& session) {
  return session.cancelled != nullptr && *session.cancelled;
}

// Reports progress at most twice a second, and once more at the end.
class Progress {
 public:
  explicit Progress(const Session& session) : session_(session) {}
  void add(std::size_t n) {
    bytes_ += n;
    if (session_.progress && Clock::now() - reported_ > std::chrono::milliseconds{500}) {
      reported_ = Clock::now();
      session_.progress(bytes_);
    }
  }
  void done(const char* what) const {
    if (session_.progress) session_.progress(bytes_);
    spdlog::info("migration: {}: {} bytes {} by btrfs", session_.name, bytes_, what);
  }

 private:
  const Session& session_;
  std::uint64_t bytes_ = 0;
  Clock::time_point reported_ = Clock::now();
};

}  // namespace

Result<void> send_subvolume(const std::filesystem::path& subvolume, const std::filesystem::path& parent,
                            http::MessageChannel& fs, const Session& session) {
  const auto failed = [&](const std::string& why) {
    return make_error(ErrorKind::io, "Btrfs send failed: " + session.name + ", " + subvolume.string() + ": " + why);
  };
  std::array<int, 2> out{};
  std::array<int, 2> err{};
  if (::pipe2(out.data(), O_CLOEXEC) != 0) return failed(errno_text("pipe"));
  Fd out_read(out[0]);
  Fd out_write(out[1]);
  widen(out_read.get());
  if (::pipe2(err.data(), O_CLOEXEC) != 0) return failed(errno_text("pipe"));
  Fd err_read(err[0]);
  Fd err_write(err[1]);
  std::vector<std::string> args{"send", "-q"};
  if (!parent.empty()) {
    args.emplace_back("-p");
    args.push_back(parent.string());
  }
  args.push_back(subvolume.string());
  Spawned btrfs;
  if (auto started = btrfs.start("btrfs", args, {-1, out_write.get(), err_write.get(), -1}); !started) {
    return failed(started.error().message);
  }
  out_write.reset();
  err_write.reset();

  Progress progress(session);
  std::string stderr_text;
  bool out_open = true;
  bool err_open = true;
  bool sent_all = true;
  while (out_open || err_open) {
    if (cancelled(session)) {
      btrfs.kill_all();
      return failed("cancelled");
    }
    std::array<pollfd, 2> watched{{{out_read.get(), static_cast<short>(out_open ? POLLIN : 0), 0},
                                   {err_read.get(), static_cast<short>(err_open ? POLLIN : 0), 0}}};
    if (::poll(watched.data(), watched.size(), static_cast<int>(tick.count())) < 0 && errno != EINTR) {
      btrfs.kill_all();
      return failed(errno_text("poll"));
    }
    if (out_open && watched[0].revents != 0) {
      std::string buffer(chunk_size, '\0');
      const ssize_t n = ::read(out_read.get(), buffer.data(), buffer.size());
      if (n > 0) {
        buffer.resize(static_cast<std::size_t>(n));
        progress.add(buffer.size());
        if (!fs.send(std::move(buffer), false)) {
          sent_all = false;
          btrfs.kill_all();
          out_open = false;
        }
      } else if (n == 0 || errno != EINTR) {
        out_open = false;
      }
    }
    if (err_open && watched[1].revents != 0) {
      std::array<char, 4096> buf{};
      const ssize_t n = ::read(err_read.get(), buf.data(), buf.size());
      if (n > 0) {
        keep_tail(stderr_text, buf.data(), static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        err_open = false;
      }
    }
  }
  btrfs.wait(true);
  progress.done("sent");
  if (!sent_all) return failed("the connection to the other side ended");
  if (!btrfs.succeeded()) return failed(with_stderr("btrfs send " + btrfs.outcome(), stderr_text));
  if (!fs.send("", true)) return failed("the connection to the other side ended");
  return {};
}

Result<std::filesystem::path> receive_subvolume(const std::filesystem::path& dir, http::MessageChannel& fs,
                                                const Session& session) {
  const auto failed = [&](const std::string& why) {
    return make_error(ErrorKind::io, "Btrfs receive failed: " + session.name + ", " + dir.string() + ": " + why);
  };
  std::array<int, 2> input{};
  if (::pipe2(input.data(), O_CLOEXEC) != 0) return failed(errno_text("pipe"));
  Fd theirs(input[0]);
  Fd ours(input[1]);
  widen(ours.get());
  std::array<int, 2> err{};
  if (::pipe2(err.data(), O_CLOEXEC) != 0) return failed(errno_text("pipe"));
  Fd err_read(err[0]);
  Fd err_write(err[1]);
  Spawned btrfs;
  // -e: it ends at the stream's end command, as LXD runs it.
  if (auto started =
          btrfs.start("btrfs", {"receive", "-e", dir.string()}, {theirs.get(), err_write.get(), err_write.get(), -1});
      !started) {
    return failed(started.error().message);
  }
  theirs.reset();
  err_write.reset();
  // Its stderr, read on a thread of its own: what it says must not fill the pipe and stop it.
  std::string stderr_text;
  std::thread reader([&] {
    std::array<char, 4096> buf{};
    for (;;) {
      const ssize_t n = ::read(err_read.get(), buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      keep_tail(stderr_text, buf.data(), static_cast<std::size_t>(n));
    }
  });
  const auto finish = [&](bool kill) {
    if (kill) btrfs.kill_all();
    ours.reset();  // its end of input
    btrfs.wait(true);
    reader.join();
  };

  Progress progress(session);
  auto last = Clock::now();
  for (;;) {
    if (cancelled(session)) {
      finish(true);
      return failed("cancelled");
    }
    auto m = fs.receive(Clock::now() + tick);
    if (m.kind == Kind::timeout) {
      if (Clock::now() - last > idle_limit) {
        finish(true);
        return failed("nothing came from the other side for " + std::to_string(idle_limit.count()) + " minutes");
      }
      continue;
    }
    last = Clock::now();
    if (m.kind == Kind::closed) {
      finish(true);
      return failed(with_stderr("the connection to the other side ended before the stream did", stderr_text));
    }
    if (m.kind == Kind::text) break;
    progress.add(m.data.size());
    if (!write_all(ours.get(), m.data.data(), m.data.size())) {
      // btrfs receive stopped taking its input: it failed (the caller ends the channels).
      finish(true);
      return failed(with_stderr("btrfs receive " + btrfs.outcome(), stderr_text));
    }
  }
  progress.done("received");
  finish(false);
  if (!btrfs.succeeded()) return failed(with_stderr("btrfs receive " + btrfs.outcome(), stderr_text));
  std::error_code ec;
  std::vector<std::filesystem::path> made;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) made.push_back(entry.path());
  if (ec || made.size() != 1) {
    return failed("btrfs receive left " + std::to_string(made.size()) + " entries where it should make one subvolume");
  }
  return made.front();
}

Result<void> send_document(const std::string& text, http::MessageChannel& fs) {
  if (!fs.send(text, false) || !fs.send("", true)) {
    return make_error(ErrorKind::connect, "the other side closed the connection before the migration header");
  }
  return {};
}

Result<std::string> receive_document(http::MessageChannel& fs, std::size_t limit, Clock::duration timeout) {
  std::string text;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto m = fs.receive(deadline);
    switch (m.kind) {
      case Kind::text: return text;
      case Kind::binary:
        if (text.size() + m.data.size() > limit) {
          return make_error(ErrorKind::protocol,
                            "the other side's migration header is over " + std::to_string(limit) + " bytes");
        }
        text += m.data;
        continue;
      case Kind::timeout:
        return make_error(ErrorKind::timeout, "timed out waiting for the other side's migration header");
      case Kind::closed: break;
    }
    return make_error(ErrorKind::connect, "the other side closed the connection before its migration header");
  }
}

}  // namespace berth::daemon::migration
