#include "engine/util/read_file.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace berth::util {

FileRead read_file_bounded(const std::filesystem::path& path, std::uint64_t max_bytes) {
  FileRead out;
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    out.problem = ReadProblem::not_found;
    return out;
  }
  if (std::filesystem::is_directory(status)) {
    out.problem = ReadProblem::is_directory;
    return out;
  }
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    out.problem = ReadProblem::cannot_open;
    out.os_error = std::strerror(errno);
    return out;
  }
  return read_stream_bounded(in, max_bytes);
}

FileRead read_stream_bounded(std::istream& in, std::uint64_t max_bytes) {
  FileRead out;
  // Read at most one chunk past the limit: a device such as /dev/zero never ends.
  std::array<char, 65536> chunk{};
  while (in && out.bytes.size() <= max_bytes) {
    in.read(chunk.data(), chunk.size());
    out.bytes.append(chunk.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) {
    out.problem = ReadProblem::cannot_read;
    out.os_error = std::strerror(errno);
  } else if (out.bytes.size() > max_bytes) {
    out.problem = ReadProblem::too_large;
  }
  if (out.problem != ReadProblem::none) out.bytes.clear();
  return out;
}

}  // namespace berth::util
