#pragma once
// Trust as LXD decides it (lxd-protocol.md §2): the trust password stored as LXD stores it, and the
// expiry expressions of core.remote_token_expiry.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace berth::daemon::api {

// hex(32-byte random salt ‖ scrypt(password, salt, N=16384, r=8, p=1, 64 bytes)), LXD's form.
[[nodiscard]] std::string hash_trust_password(std::string_view password);
// Whether `password` is the one `stored` was made of (constant-time compare); false for a malformed `stored`.
[[nodiscard]] bool check_trust_password(std::string_view password, std::string_view stored);

// `now` plus an LXD expiry expression ("30S", "1H 30M", "2d", "1w", "3m", "1y"; units S M H d w m
// y, each at most once); nullopt when it is malformed. An empty expression is nullopt too.
[[nodiscard]] std::optional<std::chrono::system_clock::time_point> expiry_after(
    std::chrono::system_clock::time_point now, std::string_view expression);

}  // namespace berth::daemon::api
