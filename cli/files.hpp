#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace berth::cli {

// Writes `contents` to a temporary file beside `path`, fsyncs it and renames it over `path`,
// so a reader never sees half a file. Returns an error message, empty on success.
[[nodiscard]] std::string write_file_atomically(const std::filesystem::path& path, std::string_view contents,
                                                unsigned mode);

}  // namespace berth::cli
