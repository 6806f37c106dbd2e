#include "cli/files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "cli/output.hpp"
#include "engine/config/names.hpp"
#include "engine/util/printable.hpp"
#include "engine/util/random.hpp"
#include "engine/util/read_file.hpp"

namespace berth::cli {

std::string write_file_atomically(const std::filesystem::path& path, std::string_view contents, unsigned mode) {
  // A fresh, unguessable name created exclusively: a file or symlink planted beside `path` is
  // never followed nor overwritten.
  std::filesystem::path tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 8 && fd < 0; ++attempt) {
    tmp = path.string() + ".tmp." + util::random_hex(12);
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) return path.string() + ": " + std::strerror(errno);
  std::size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string error = path.string() + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return error;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string error = path.string() + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return error;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string error = path.string() + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return error;
  }
  return {};
}

config::LoadResult read_fleet(const std::string& file, const util::InputLimits& limits) {
  if (file != config::stdin_path) return config::load_fleet_file(file, config::process_env(), limits.fleet_file_bytes);
  static bool stdin_read = false;
  if (stdin_read) {
    config::LoadResult result;
    result.diagnostics.error("standard input was read already", {},
                             diag::SourceLocation{std::string{config::stdin_name}, 0, 0},
                             "give the fleet file on standard input only once");
    return result;
  }
  stdin_read = true;
  return config::load_fleet_stream(std::cin, config::process_env(), limits.fleet_file_bytes);
}

std::string fleet_shown(std::string_view file) {
  if (file == config::stdin_path) return "the fleet file read on standard input";
  return util::printable(file);
}

namespace {

bool declares_secret_digests(const model::Fleet& fleet) {
  for (const auto& [name, c] : fleet.containers) {
    for (const auto& [path, f] : c.files) {
      if (f.sensitive) return true;
    }
    for (const auto& e : c.exec) {
      if (!e.sensitive_environment.empty()) return true;
    }
  }
  return false;
}

bool is_key_text(std::string_view text) {
  return text.size() == 64 && text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

// berth's key for digests of secrets: read from the config directory, made there when the fleet
// needs one and there is none. Without it such files are pushed (and commands run) every time.
std::optional<std::string> digest_key(const std::filesystem::path& config_dir, const model::Fleet& fleet) {
  const auto path = config_dir / "digest.key";
  const auto read = util::read_file_bounded(path, 4096);
  if (read.problem == util::ReadProblem::none) {
    std::string text = read.bytes;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (is_key_text(text)) return text;
    std::cerr << "berth: warning: " << util::printable(path.string())
              << " is not a digest key (64 hex digits); files and commands with secrets are pushed and run again "
                 "on every apply. Remove it to have a new one made.\n";
    return std::nullopt;
  }
  if (read.problem != util::ReadProblem::not_found) {
    std::cerr << "berth: warning: cannot read the digest key " << util::printable(path.string()) << ": "
              << util::printable(read.os_error.empty() ? "not a readable file" : read.os_error)
              << "; files and commands with secrets are pushed and run again on every apply\n";
    return std::nullopt;
  }
  if (!declares_secret_digests(fleet)) return std::nullopt;
  std::error_code ec;
  std::filesystem::create_directories(config_dir, ec);
  // O_EXCL: of two first runs at once, one makes the key and the other reads it.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) return digest_key(config_dir, fleet);
  const std::string key = util::random_hex(64);
  const std::string text = key + "\n";
  const bool written =
      fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  const std::string error = std::strerror(errno);
  if (fd >= 0) ::close(fd);
  if (!written) {
    if (fd >= 0) ::unlink(path.c_str());
    std::cerr << "berth: warning: cannot write the digest key " << util::printable(path.string()) << ": "
              << util::printable(error)
              << "; files and commands with secrets are pushed and run again on every apply\n";
    return std::nullopt;
  }
  return key;
}

}  // namespace

void attach_digest_key(model::Fleet& fleet, const std::filesystem::path& config_dir) {
  fleet.digest_key = digest_key(config_dir, fleet);
}

std::optional<model::Fleet> load_fleet(const std::string& file, const util::InputLimits& limits,
                                       const std::filesystem::path& config_dir) {
  auto loaded = read_fleet(file, limits);
  if (!loaded.diagnostics.empty()) std::cerr << diag::format(loaded.diagnostics);
  if (!loaded.fleet) std::cerr << "berth: " << fleet_shown(file) << " is not valid; nothing was contacted\n";
  if (loaded.fleet) redact_fleet_secrets(*loaded.fleet);
  if (loaded.fleet && !config_dir.empty()) loaded.fleet->digest_key = digest_key(config_dir, *loaded.fleet);
  return std::move(loaded.fleet);
}

std::optional<plan::PlanFile> read_plan_file(const std::string& path, const util::InputLimits& limits) {
  const auto read = util::read_file_bounded(path, limits.plan_file_bytes);
  const std::string shown = util::printable(path);
  switch (read.problem) {
    case util::ReadProblem::none: break;
    case util::ReadProblem::not_found: std::cerr << "berth: " << shown << ": no such file\n"; return std::nullopt;
    case util::ReadProblem::is_directory:
      std::cerr << "berth: " << shown << " is a directory, not a saved plan\n";
      return std::nullopt;
    case util::ReadProblem::cannot_open:
    case util::ReadProblem::cannot_read:
      std::cerr << "berth: cannot read " << shown << ": " << read.os_error << '\n';
      return std::nullopt;
    case util::ReadProblem::too_large:
      std::cerr << "berth: " << shown << " is larger than " << util::format_size(limits.plan_file_bytes)
                << ": check that it is a plan saved with `berth plan --out`; if it is, raise the limit with "
                   "--max-file-size\n";
      return std::nullopt;
  }
  auto parsed = plan::parse_plan_file(read.bytes, path);
  if (!parsed.diagnostics.empty()) std::cerr << diag::format(parsed.diagnostics);
  return std::move(parsed.file);
}

std::optional<apply::Selection> select(const model::Fleet& fleet, const std::vector<std::string>& targets,
                                       const std::vector<std::string>& replace, const std::vector<std::string>& drain,
                                       bool undeclared_targets) {
  apply::Selection selection;
  auto problems = plan::parse_targets(targets, fleet, undeclared_targets, selection.targets);
  for (auto& p : plan::parse_targets(replace, fleet, false, selection.replace)) problems.push_back(std::move(p));
  for (const auto& site : drain) {
    // REMOTE, or a member of a cluster: REMOTE/MEMBER (whether it has one is known once it is read).
    const model::SiteRef ref = model::parse_site(site);
    const bool member_ok = ref.member.empty() || (ref.member != "*" && !config::remote_name_problem(ref.member));
    if (fleet.remotes.count(ref.remote) != 0 && member_ok) {
      selection.drain.insert(site);
      continue;
    }
    std::string known;
    for (const auto& [name, spec] : fleet.remotes) known += (known.empty() ? "" : ", ") + name;
    std::cerr << "berth: --drain " << util::printable(site) << ": "
              << (member_ok ? "the fleet file declares no remote of that name ("
                            : "not REMOTE or REMOTE/MEMBER (a member of an LXD cluster) (")
              << (known.empty() ? std::string{"it declares none"} : "known remotes: " + known) << ")\n";
    return std::nullopt;
  }
  if (problems.empty()) return selection;
  for (const auto& p : problems) std::cerr << "berth: " << p << '\n';
  std::cerr << "  addresses are written as the plan prints them (remote:container), or as a container's name\n";
  return std::nullopt;
}

}  // namespace berth::cli
