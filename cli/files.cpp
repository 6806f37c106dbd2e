#include "cli/files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/output.hpp"
#include "engine/config/load.hpp"
#include "engine/util/random.hpp"

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

std::optional<model::Fleet> load_fleet(const std::string& file) {
  auto loaded = config::load_fleet_file(file);
  if (!loaded.diagnostics.empty()) std::cerr << diag::format(loaded.diagnostics);
  if (!loaded.fleet) std::cerr << "berth: " << file << " is not valid; nothing was contacted\n";
  if (loaded.fleet) redact_fleet_secrets(*loaded.fleet);
  return std::move(loaded.fleet);
}

std::optional<plan::PlanFile> read_plan_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "berth: cannot read " << path << ": " << std::strerror(errno) << '\n';
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  auto parsed = plan::parse_plan_file(text.str(), path);
  if (!parsed.diagnostics.empty()) std::cerr << diag::format(parsed.diagnostics);
  return std::move(parsed.file);
}

}  // namespace berth::cli
