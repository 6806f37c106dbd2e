#pragma once
// The status page `berth watch` serves on GET /: one self-contained HTML5 document (inline CSS, no
// script, nothing fetched from elsewhere) that reloads itself every 10 seconds. Pure: a function of
// the JSON that GET /status returns, so the page can never say something /status does not.

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace berth::watch {

// Renders `status` (the GET /status object: fleet, mode, suspended, last_run, last_error, remotes,
// containers, runs). Never throws on odd input: any field may be missing, null or of another type;
// what cannot be read is shown as "-" or left out, and a `status` that is not an object gives the
// page with nothing in it. Every string from `status` is shown through util::printable and
// HTML-escaped; CSS classes come from fixed lists, never from the data.
[[nodiscard]] std::string render_status_page(const nlohmann::json& status);

// `text` with & < > " ' written as character references: safe in element content and in quoted
// attribute values.
[[nodiscard]] std::string html_escape(std::string_view text);

}  // namespace berth::watch
