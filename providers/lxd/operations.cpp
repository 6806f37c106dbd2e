#include "providers/lxd/operations.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <utility>

#include "providers/lxd/url.hpp"

namespace berth::lxd {

namespace {

// Metadata keys LXD 5.0 updates while an operation runs, most informative first.
constexpr std::array<std::string_view, 5> progress_keys = {"fs_progress", "block_progress", "download_progress",
                                                           "create_instance_from_image_unpack_progress", "progress"};

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string operation_id(std::string_view path) {
  // An LXD cluster member that forwarded the request names the operation with a query
  // ("/1.0/operations/ID?project=default"): the id is the path's last segment.
  if (const auto query = path.find('?'); query != std::string_view::npos) path = path.substr(0, query);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  const auto slash = path.rfind('/');
  return std::string{slash == std::string_view::npos ? path : path.substr(slash + 1)};
}

std::optional<double> parse_byte_size(std::string_view text) {
  text = trim(text);
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) != 0 || text[i] == '.')) ++i;
  if (i == 0) return std::nullopt;
  double number = 0;
  // std::from_chars for double is in libstdc++ 11+, which the toolchain has.
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, number);
  if (ec != std::errc{} || ptr != text.data() + i) return std::nullopt;
  const std::string_view unit = trim(text.substr(i));
  static constexpr std::array<std::pair<std::string_view, double>, 8> units = {
      {{"B", 1.0}, {"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"PB", 1e15}, {"EB", 1e18}}};
  for (const auto& [name, factor] : units) {
    if (unit == name) return number * factor;
  }
  return std::nullopt;
}

ProgressReading parse_progress_text(std::string_view text) {
  ProgressReading r;
  r.text = std::string{text};
  // The value follows the last ": " (the label may itself contain colons, e.g. a snapshot "c1/snap0").
  std::string_view value = text;
  if (const auto colon = text.rfind(": "); colon != std::string_view::npos) value = text.substr(colon + 2);
  value = trim(value);
  std::string_view head = value;
  if (const auto paren = value.find('('); paren != std::string_view::npos) {
    head = trim(value.substr(0, paren));
    std::string_view rate = value.substr(paren + 1);
    if (const auto close = rate.find(')'); close != std::string_view::npos) rate = rate.substr(0, close);
    if (rate.size() > 2 && rate.substr(rate.size() - 2) == "/s") {
      if (const auto bps = parse_byte_size(rate.substr(0, rate.size() - 2))) r.bytes_per_second = *bps;
    }
  }
  if (!head.empty() && head.back() == '%') {
    int pct = 0;
    const auto digits = head.substr(0, head.size() - 1);
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), pct);
    if (ec == std::errc{} && ptr == digits.data() + digits.size()) r.percent = pct;
  } else if (const auto bytes = parse_byte_size(head); bytes && std::isfinite(*bytes) && *bytes >= 0 && *bytes < 9e18) {
    r.bytes = static_cast<std::uint64_t>(std::llround(*bytes));  // a daemon's "1e300EB" is no reading
  }
  return r;
}

std::optional<ProgressReading> progress_from_metadata(const nlohmann::json& metadata) {
  if (!metadata.is_object()) return std::nullopt;
  for (const auto key : progress_keys) {
    const auto it = metadata.find(key);
    if (it == metadata.end()) continue;
    if (it->is_string()) return parse_progress_text(it->get<std::string>());
    if (it->is_object()) {  // newer LXD: {"stage":..,"percent":..,"speed":..}
      ProgressReading r;
      r.text = std::string{key} + ": " + it->dump();
      if (const auto p = it->find("percent"); p != it->end() && p->is_string()) {
        int pct = 0;
        const auto& s = p->get_ref<const std::string&>();
        if (std::from_chars(s.data(), s.data() + s.size(), pct).ec == std::errc{}) r.percent = pct;
      }
      return r;
    }
  }
  return std::nullopt;
}

Error cancelled_error(std::string_view what) {
  Error e = make_error(ErrorKind::rejected, std::string{what} + ": cancelled");
  e.lxd_error = "berth:cancelled";
  return e;
}

bool is_cancelled(const Error& e) {
  return e.kind == ErrorKind::rejected && e.lxd_error == "berth:cancelled";
}

Result<OperationStatus> wait_operation(Client& client, std::string_view operation_path, const WaitOptions& options) {
  const std::string id = operation_id(operation_path);
  const std::string target = "/1.0/operations/" + path_segment(id) +
                             "/wait?timeout=" + std::to_string(std::max<long long>(1, options.poll.count()));
  std::string last_text;
  auto last_activity = std::chrono::steady_clock::now();
  for (;;) {
    if (options.cancel != nullptr && options.cancel->load()) return cancelled_error(options.what);
    if (std::chrono::steady_clock::now() - last_activity > options.stall_timeout) {
      return make_error(ErrorKind::timeout, options.what + ": the operation " + id + " made no progress for " +
                                                std::to_string(options.stall_timeout.count()) +
                                                " s; it may still be running on the host (lxc operation list)");
    }
    auto response = client.get(target);
    if (!response) {
      const Error& e = response.error();
      if (e.kind == ErrorKind::server && e.http_status == 404) {
        return make_error(ErrorKind::not_found,
                          options.what + ": the operation " + id + " is gone (the daemon restarted or it ended)");
      }
      Error out = e;
      out.message = options.what + ": " + e.message;
      return out;
    }
    auto op = wire::parse_operation(response->metadata);
    if (!op) {
      Error out = op.error();
      out.message = options.what + ": " + out.message;
      return out;
    }
    if (op->is_final()) {
      if (op->succeeded()) return std::move(*op);
      Error e = make_error(ErrorKind::server, options.what + ": " + (op->err.empty() ? op->status : op->err));
      e.lxd_error = op->err;
      return e;
    }
    if (auto p = progress_from_metadata(op->metadata); p && p->text != last_text) {
      last_text = p->text;
      last_activity = std::chrono::steady_clock::now();
      if (options.on_progress) options.on_progress(*p);
    }
    if (options.on_tick) options.on_tick();
  }
}

}  // namespace berth::lxd
