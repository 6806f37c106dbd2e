#pragma once
// Remote addresses and certificate fingerprints as the fleet file writes them. Pure string
// checks: nothing here resolves a name or opens a connection.

#include <optional>
#include <string>
#include <string_view>

namespace berth::config {

// Why `url` is not https://HOST[:PORT] (IPv6 in brackets, optional trailing '/') or
// unix:///ABSOLUTE/PATH, or nullopt when it is. The reason never quotes the URL, so that it can
// be shown for a value that came from the environment.
[[nodiscard]] std::optional<std::string> url_problem(std::string_view url);

// "sha256:<64 hex>", "<64 hex>" or 32 colon-separated hex pairs, in any case, as 64 lowercase
// hex digits; nullopt when it is none of those.
[[nodiscard]] std::optional<std::string> normalize_fingerprint(std::string_view fingerprint);

}  // namespace berth::config
