#pragma once
// The TLS 1.3 cipher suites berth and berthd offer and accept, in their order of preference, on
// every connection (the API client, the websockets it dials, berthd's server): AES-128-GCM first,
// as Go's TLS (LXD, the lxc client) orders them on a CPU with AES instructions and as TLS 1.3
// makes mandatory. OpenSSL's default puts AES-256-GCM first, whose four extra rounds cost a
// migration's fs channel about a tenth more CPU per byte on both hosts.

namespace berth::http {

inline constexpr const char* tls13_ciphersuites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

}  // namespace berth::http
