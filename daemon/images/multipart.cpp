#include "daemon/images/multipart.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <optional>
#include <string_view>

#include "daemon/images/files.hpp"

namespace berth::daemon {

namespace fs = std::filesystem;
using lxd::ErrorKind;
using lxd::make_error;
using lxd::Result;

namespace {

constexpr std::size_t kChunk = std::size_t{1} << 20;
constexpr std::size_t kHeaderLimit = 16 * 1024;

lxd::Error invalid(const std::string& message) {
  return make_error(ErrorKind::invalid_argument, "multipart image upload: " + message);
}

std::string lower(std::string_view text) {
  std::string out{text};
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// The value of parameter `name` in a header value such as `type; a=b; name="c"` (quoted or not).
std::optional<std::string> header_parameter(std::string_view value, std::string_view name) {
  std::size_t pos = value.find(';');
  while (pos != std::string_view::npos) {
    std::string_view rest = value.substr(pos + 1);
    const auto eq = rest.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const auto key = lower(trim(rest.substr(0, eq)));
    rest = trim(rest.substr(eq + 1));
    std::string parsed;
    std::size_t used = 0;
    if (!rest.empty() && rest.front() == '"') {
      for (used = 1; used < rest.size() && rest[used] != '"'; ++used) {
        if (rest[used] == '\\' && used + 1 < rest.size()) ++used;
        parsed += rest[used];
      }
      ++used;
    } else {
      used = std::min(rest.find(';'), rest.size());
      parsed = std::string{trim(rest.substr(0, used))};
    }
    if (key == name) return parsed;
    const std::size_t consumed = static_cast<std::size_t>(rest.data() - value.data()) + std::min(used, rest.size());
    pos = value.find(';', consumed);
  }
  return std::nullopt;
}

Result<std::string> boundary_of(const std::string& content_type) {
  const auto semicolon = content_type.find(';');
  if (lower(trim(std::string_view{content_type}.substr(0, semicolon))) != "multipart/form-data") {
    return invalid("Content-Type is \"" + content_type + "\", not multipart/form-data");
  }
  auto boundary = header_parameter(content_type, "boundary");
  if (!boundary || boundary->empty() || boundary->size() > 200) {
    return invalid("Content-Type has no usable boundary parameter");
  }
  return *boundary;
}

// Reads the body through a buffer, finding delimiters that may straddle two reads.
class BodyScanner {
 public:
  BodyScanner(images::Fd fd, fs::path path) : fd_(std::move(fd)), path_(std::move(path)) {}

  // Copies bytes up to the next `delimiter` to `out` (-1: drop them) and consumes the delimiter.
  // false in the result: the body ended first.
  Result<bool> copy_until(std::string_view delimiter, int out, const fs::path& out_path,
                          std::size_t limit = static_cast<std::size_t>(-1)) {
    std::size_t copied = 0;
    for (;;) {
      const auto found = buffer_.find(delimiter);
      const std::size_t keep = found != std::string::npos           ? found
                               : buffer_.size() >= delimiter.size() ? buffer_.size() - delimiter.size() + 1
                                                                    : 0;
      auto written = emit(keep, out, out_path);
      if (!written) return written.error();
      copied += keep;
      if (copied > limit) return false;
      if (found != std::string::npos) {
        buffer_.erase(0, delimiter.size());
        return true;
      }
      auto more = fill();
      if (!more) return more.error();
      if (!*more) return false;
    }
  }

  // The next `n` bytes (fewer at the end of the body), consumed.
  Result<std::string> take(std::size_t n) {
    while (buffer_.size() < n) {
      auto more = fill();
      if (!more) return more.error();
      if (!*more) break;
    }
    std::string out = buffer_.substr(0, n);
    buffer_.erase(0, out.size());
    return out;
  }

  // Bytes before the first delimiter; header text is collected this way.
  Result<std::optional<std::string>> read_until(std::string_view delimiter, std::size_t limit) {
    std::string out;
    for (;;) {
      const auto found = buffer_.find(delimiter);
      if (found != std::string::npos) {
        out += buffer_.substr(0, found);
        buffer_.erase(0, found + delimiter.size());
        if (out.size() > limit) return std::optional<std::string>{};
        return std::optional<std::string>{std::move(out)};
      }
      if (buffer_.size() > limit) return std::optional<std::string>{};
      auto more = fill();
      if (!more) return more.error();
      if (!*more) return std::optional<std::string>{};
    }
  }

 private:
  Result<void> emit(std::size_t n, int out, const fs::path& out_path) {
    if (out >= 0 && n > 0) {
      auto written = images::write_all(out, std::span<const char>{buffer_.data(), n}, out_path);
      if (!written) return written;
    }
    buffer_.erase(0, n);
    return {};
  }

  Result<bool> fill() {
    const std::size_t old = buffer_.size();
    buffer_.resize(old + kChunk);
    for (;;) {
      const ssize_t n = ::read(fd_.get(), buffer_.data() + old, kChunk);
      if (n < 0 && errno == EINTR) continue;
      buffer_.resize(old + static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
      if (n < 0) return images::io_error("cannot read", path_, errno);
      return n > 0;
    }
  }

  images::Fd fd_;
  fs::path path_;
  std::string buffer_;
};

// The form name in a part's headers (Content-Disposition: form-data; name="...").
std::optional<std::string> form_name(const std::string& headers) {
  std::string_view rest{headers};
  while (!rest.empty()) {
    const auto eol = rest.find("\r\n");
    const auto line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view{} : rest.substr(eol + 2);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || lower(trim(line.substr(0, colon))) != "content-disposition") continue;
    return header_parameter(line.substr(colon + 1), "name");
  }
  return std::nullopt;
}

// After a boundary: "--" ends the body, else a line break starts a part. True: a part follows.
Result<bool> after_boundary(BodyScanner& scanner) {
  auto next = scanner.take(2);
  if (!next) return next.error();
  if (*next == "--") return false;
  if (*next != "\r\n") return invalid("a boundary is followed by neither a part nor \"--\" (the closing boundary)");
  return true;
}

// Reads one part's headers and checks its form name; the scanner is left at the part's data.
Result<void> expect_part(BodyScanner& scanner, const std::string& wanted) {
  auto more = after_boundary(scanner);
  if (!more) return more.error();
  if (!*more) return invalid("the body ends before its \"" + wanted + "\" part");
  auto headers = scanner.read_until("\r\n\r\n", kHeaderLimit);
  if (!headers) return headers.error();
  if (!*headers) return invalid("the headers of the \"" + wanted + "\" part are unterminated or too long");
  const auto name = form_name(**headers + "\r\n");
  if (name == "rootfs.img") return invalid("a virtual-machine image (rootfs.img); berthd runs containers only");
  if (name != wanted) {
    return invalid("expected a part named \"" + wanted + "\", got " + (name ? "\"" + *name + "\"" : "no name") +
                   " (lxc sends \"metadata\" then \"rootfs\")");
  }
  return {};
}

Result<void> copy_part(BodyScanner& scanner, const std::string& delimiter, const images::CreatedFile& out,
                       const std::string& name) {
  auto found = scanner.copy_until(delimiter, out.fd.get(), out.path);
  if (!found) return found.error();
  if (!*found) return invalid("the \"" + name + "\" part is not closed by a boundary (the body is cut short?)");
  return {};
}

Result<void> split_into(BodyScanner& scanner, const std::string& boundary, const images::CreatedFile& metadata,
                        const images::CreatedFile& rootfs) {
  // The first boundary may come after a preamble; later ones follow a line break.
  auto first = scanner.copy_until("--" + boundary, -1, {}, kHeaderLimit);
  if (!first) return first.error();
  if (!*first) return invalid("no boundary \"" + boundary + "\" near the start of the body");
  const std::string delimiter = "\r\n--" + boundary;
  for (const auto& [part, file] : {std::pair{"metadata", &metadata}, std::pair{"rootfs", &rootfs}}) {
    auto started = expect_part(scanner, part);
    if (!started) return started;
    auto copied = copy_part(scanner, delimiter, *file, part);
    if (!copied) return copied;
  }
  auto more = after_boundary(scanner);
  if (!more) return more.error();
  if (*more) return invalid("a part after \"rootfs\"; expected the closing boundary");
  return {};
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  return std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
}

// A query component, '+' as a space; nullopt for a bad %-escape.
std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] != '%') {
      out += text[i];
    } else {
      if (i + 2 >= text.size() || !std::isxdigit(static_cast<unsigned char>(text[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
        return std::nullopt;
      }
      out += static_cast<char>(hex_digit(text[i + 1]) * 16 + hex_digit(text[i + 2]));
      i += 2;
    }
  }
  return out;
}

}  // namespace

Result<std::pair<fs::path, fs::path>> split_multipart(const fs::path& body, const std::string& content_type,
                                                      const fs::path& dir) {
  auto boundary = boundary_of(content_type);
  if (!boundary) return boundary.error();
  images::Fd in{::open(body.c_str(), O_RDONLY | O_CLOEXEC)};
  if (!in.valid()) return images::io_error("cannot open", body, errno);
  auto metadata = images::create_unique_file(dir, images::kUploadPrefix);
  if (!metadata) return metadata.error();
  auto rootfs = images::create_unique_file(dir, images::kUploadPrefix);
  if (!rootfs) {
    ::unlink(metadata->path.c_str());
    return rootfs.error();
  }
  BodyScanner scanner{std::move(in), body};
  auto split = split_into(scanner, *boundary, *metadata, *rootfs);
  if (!split) {
    ::unlink(metadata->path.c_str());
    ::unlink(rootfs->path.c_str());
    return split.error();
  }
  return std::pair{metadata->path, rootfs->path};
}

Result<std::map<std::string, std::string>> parse_properties_header(const std::string& value) {
  std::map<std::string, std::string> out;
  std::string_view rest{value};
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const auto pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (pair.empty()) continue;
    if (pair.find(';') != std::string_view::npos) {
      return make_error(ErrorKind::invalid_argument, "X-LXD-properties: ';' is not a separator; use '&'");
    }
    const auto eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq));
    auto val = eq == std::string_view::npos ? std::optional<std::string>{""} : percent_decode(pair.substr(eq + 1));
    if (!key || !val) {
      return make_error(ErrorKind::invalid_argument, "X-LXD-properties: bad %-escape in \"" + std::string{pair} + "\"");
    }
    if (key->empty()) {
      return make_error(ErrorKind::invalid_argument, "X-LXD-properties: \"" + std::string{pair} + "\" has no name");
    }
    out.emplace(std::move(*key), std::move(*val));
  }
  return out;
}

}  // namespace berth::daemon
