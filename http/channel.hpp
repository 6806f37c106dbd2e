#pragma once
// A websocket as a blocking stream of messages, for a thread that moves data through it (a
// migration's control and fs channels, lxd-protocol.md §1.6 and §4): sending waits while the peer
// is more than `channel_window` bytes behind, receiving waits for the next message, and a reader
// that falls behind stops reading from the peer (TCP then holds the peer back) instead of
// buffering without bound. The same interface over a websocket this process accepted
// (channel_of) and one it dialled (lxd::dial_websocket).
//
// Thread-safe: one thread may send while another receives.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "http/server.hpp"

namespace berth::http {

inline constexpr std::size_t channel_window = 4 * 1024 * 1024;

class MessageChannel {
 public:
  struct Message {
    enum class Kind { binary, text, closed, timeout };
    Kind kind = Kind::closed;
    std::string data;
  };

  virtual ~MessageChannel() = default;
  // Queues one message (a binary or a text frame) once the peer is at most channel_window bytes
  // behind. False when the channel has ended (the message is dropped).
  virtual bool send(std::string data, bool text) = 0;
  // The next message; Kind::closed once the channel ended and every message before was taken,
  // Kind::timeout when `deadline` came first.
  virtual Message receive(std::chrono::steady_clock::time_point deadline) = 0;
  // A close frame after what is queued.
  virtual void close() = 0;
  // Ends it now, dropping what is queued: a send blocked on a peer that stopped reading returns
  // false, and receive says closed.
  virtual void abort() = 0;
};

// The channel over a websocket the server accepted: call it from Response::accept_websocket's
// callback (it sets the socket's on_message, on_close and on_written).
[[nodiscard]] std::shared_ptr<MessageChannel> channel_of(const std::shared_ptr<WebSocket>& socket);

}  // namespace berth::http
