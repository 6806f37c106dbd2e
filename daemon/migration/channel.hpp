#pragma once
// A migration's channel as berthd holds it (daemon/api/migration_api.hpp): one whose closing
// handshake starts once, however many of berthd's steps end with closing it (a receiver closes
// control after its last word, and again with both channels as it finishes; a failure closes
// both wherever it happens).
//
// Why it matters: a websocket takes one close handshake. Asked for a second while the first one
// still runs (the peer has not answered it yet), Beast parks the second behind the first's write
// lock and never wakes it: only a read, a write or a ping that gives the lock back does, not the
// first close. The parked close keeps its session alive and the server's io_context busy, so the
// server's thread never ends and berthd's stop waits for it forever.

#include <memory>

#include "http/channel.hpp"

namespace berth::daemon::migration {

// `channel`, closed once: its first close() or abort() counts, later calls of close() do nothing.
// Sending, receiving and aborting pass through. Thread-safe as `channel` is.
[[nodiscard]] std::shared_ptr<http::MessageChannel> closed_once(std::shared_ptr<http::MessageChannel> channel);

}  // namespace berth::daemon::migration
