#include "http/channel.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <utility>

namespace berth::http {
namespace {

// What the socket's callbacks (on the server thread) and the channel's user share.
struct Inbox {
  std::mutex mu;
  std::condition_variable changed;
  std::deque<MessageChannel::Message> messages;
  std::size_t bytes = 0;
  bool ended = false;
  bool paused = false;
};

class SocketChannel final : public MessageChannel {
 public:
  explicit SocketChannel(std::shared_ptr<WebSocket> socket)
      : socket_(std::move(socket)), inbox_(std::make_shared<Inbox>()) {
    // The callbacks hold the inbox, not the socket (which holds them): no cycle.
    WebSocket* raw = socket_.get();
    socket_->on_message = [inbox = inbox_, raw](const std::string& message, bool text) {
      const std::lock_guard lock(inbox->mu);
      inbox->messages.push_back({text ? Message::Kind::text : Message::Kind::binary, message});
      inbox->bytes += message.size();
      if (inbox->bytes > channel_window && !inbox->paused) {
        inbox->paused = true;
        raw->pause_reading(true);
      }
      inbox->changed.notify_all();
    };
    socket_->on_close = [inbox = inbox_] {
      const std::lock_guard lock(inbox->mu);
      inbox->ended = true;
      inbox->changed.notify_all();
    };
    socket_->on_written = [inbox = inbox_] {
      const std::lock_guard lock(inbox->mu);
      inbox->changed.notify_all();
    };
  }

  ~SocketChannel() override {
    // Resumed, so that a socket this channel paused ends normally once nobody reads it.
    socket_->pause_reading(false);
  }
  SocketChannel(const SocketChannel&) = delete;
  SocketChannel& operator=(const SocketChannel&) = delete;

  bool send(std::string data, bool text) override {
    {
      std::unique_lock lock(inbox_->mu);
      inbox_->changed.wait(
          lock, [&] { return inbox_->ended || !socket_->is_open() || socket_->queued_bytes() <= channel_window; });
      if (inbox_->ended || !socket_->is_open()) return false;
    }
    if (text) {
      socket_->send_text(std::move(data));
    } else {
      socket_->send_binary(std::move(data));
    }
    return true;
  }

  Message receive(std::chrono::steady_clock::time_point deadline) override {
    std::unique_lock lock(inbox_->mu);
    if (!inbox_->changed.wait_until(lock, deadline, [&] { return !inbox_->messages.empty() || inbox_->ended; })) {
      return {Message::Kind::timeout, {}};
    }
    if (inbox_->messages.empty()) return {Message::Kind::closed, {}};
    Message m = std::move(inbox_->messages.front());
    inbox_->messages.pop_front();
    inbox_->bytes -= m.data.size();
    if (inbox_->paused && inbox_->bytes <= channel_window / 2) {
      inbox_->paused = false;
      socket_->pause_reading(false);
    }
    return m;
  }

  void close() override { socket_->close(); }
  void abort() override {
    {
      const std::lock_guard lock(inbox_->mu);
      inbox_->ended = true;
      inbox_->changed.notify_all();
    }
    socket_->abort();
  }

 private:
  std::shared_ptr<WebSocket> socket_;
  std::shared_ptr<Inbox> inbox_;
};

}  // namespace

std::shared_ptr<MessageChannel> channel_of(const std::shared_ptr<WebSocket>& socket) {
  return std::make_shared<SocketChannel>(socket);
}

}  // namespace berth::http
