#include "daemon/migration/channel.hpp"

#include <atomic>
#include <utility>

namespace berth::daemon::migration {
namespace {

class ClosedOnce final : public http::MessageChannel {
 public:
  explicit ClosedOnce(std::shared_ptr<http::MessageChannel> channel) : channel_(std::move(channel)) {}

  bool send(std::string data, bool text) override { return channel_->send(std::move(data), text); }
  Message receive(std::chrono::steady_clock::time_point deadline) override { return channel_->receive(deadline); }
  void close() override {
    if (!ended_.exchange(true)) channel_->close();
  }
  // Always passed on: it ends a channel whose close is under way too (a peer that never answers).
  void abort() override {
    ended_ = true;
    channel_->abort();
  }

 private:
  std::shared_ptr<http::MessageChannel> channel_;
  std::atomic<bool> ended_{false};  // closed or aborted: no close handshake from here on
};

}  // namespace

std::shared_ptr<http::MessageChannel> closed_once(std::shared_ptr<http::MessageChannel> channel) {
  return std::make_shared<ClosedOnce>(std::move(channel));
}

}  // namespace berth::daemon::migration
