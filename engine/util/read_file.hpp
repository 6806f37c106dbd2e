#pragma once
// Reading an input file whole, up to a limit: a device such as /dev/zero, a FIFO that never ends
// or a file far too large is refused after limit + 1 bytes instead of exhausting memory.

#include <cstdint>
#include <filesystem>
#include <istream>
#include <string>

namespace berth::util {

enum class ReadProblem { none, not_found, is_directory, cannot_open, cannot_read, too_large };

struct FileRead {
  std::string bytes;  // the whole file when problem is none
  ReadProblem problem = ReadProblem::none;
  std::string os_error;  // strerror text for cannot_open and cannot_read
};

[[nodiscard]] FileRead read_file_bounded(const std::filesystem::path& path, std::uint64_t max_bytes);

// The rest of an open stream (standard input), with the same limit; never not_found.
[[nodiscard]] FileRead read_stream_bounded(std::istream& in, std::uint64_t max_bytes);

}  // namespace berth::util
