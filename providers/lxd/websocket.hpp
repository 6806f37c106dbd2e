#pragma once
// Dialling a daemon's websocket as LXD's daemons dial each other's (lxd-protocol.md §4.1): wss to
// `https://HOST:PORT/1.0/operations/ID/websocket?secret=S`, TLS pinned to the peer's certificate,
// no client certificate (the secret is the credential). The result is an http::MessageChannel.

#include <memory>
#include <string_view>

#include "http/channel.hpp"
#include "providers/lxd/client.hpp"

namespace berth::lxd {

// `url` is the https URL of the websocket (path and query included). The TCP connect, the TLS
// handshake and the websocket handshake each get timeouts.connect; a server whose certificate is
// not the pinned one is ErrorKind::certificate_mismatch, refused before anything is sent. Once
// open, a peer that answers no ping for 5 minutes ends the channel. tls.client_certificate is
// presented when set.
[[nodiscard]] Result<std::shared_ptr<http::MessageChannel>> dial_websocket(std::string_view url, const TlsOptions& tls,
                                                                           const Timeouts& timeouts = {});

}  // namespace berth::lxd
