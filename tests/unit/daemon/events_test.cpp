// The event stream: each subscriber gets the types and project it asked for, as LXD's event JSON,
// and one that went away is dropped.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "daemon/events/events.hpp"

namespace berth::daemon {
namespace {

class RecordingSocket final : public http::WebSocket {
 public:
  void send_text(std::string message) override { sent.push_back(std::move(message)); }
  void send_binary(std::string message) override { sent.push_back(std::move(message)); }
  void close() override { open = false; }
  void abort() override { open = false; }
  [[nodiscard]] bool is_open() const override { return open; }
  [[nodiscard]] std::size_t queued_bytes() const override { return 0; }
  [[nodiscard]] std::size_t queued_messages() const override { return 0; }
  void pause_reading(bool) override {}
  std::vector<std::string> sent;
  bool open = true;
};

TEST(Events, EachSubscriberGetsWhatItAskedFor) {
  Events events;
  auto ops = std::make_shared<RecordingSocket>();
  auto all = std::make_shared<RecordingSocket>();
  auto other_project = std::make_shared<RecordingSocket>();
  auto every_project = std::make_shared<RecordingSocket>();
  events.subscribe(ops, {"operation"}, "default", false);
  events.subscribe(all, {}, "default", false);
  events.subscribe(other_project, {}, "web", false);
  events.subscribe(every_project, {}, "default", true);

  events.publish("operation", {{"id", "1"}, {"status_code", 103}});
  events.publish("lifecycle", {{"action", "instance-started"}});
  events.publish("operation", {{"id", "2"}}, "web");

  ASSERT_EQ(ops->sent.size(), 1u);
  const auto e = nlohmann::json::parse(ops->sent[0]);
  EXPECT_EQ(e["type"], "operation");
  EXPECT_EQ(e["metadata"]["id"], "1");
  EXPECT_EQ(e["project"], "default");
  EXPECT_TRUE(e["timestamp"].is_string());
  EXPECT_EQ(all->sent.size(), 2u) << "no type given: operation and lifecycle";
  ASSERT_EQ(other_project->sent.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(other_project->sent[0])["metadata"]["id"], "2");
  EXPECT_EQ(every_project->sent.size(), 3u);
}

TEST(Events, ASubscriberThatWentAwayIsDropped) {
  Events events;
  auto kept = std::make_shared<RecordingSocket>();
  auto closed = std::make_shared<RecordingSocket>();
  events.subscribe(kept, {}, "default", false);
  events.subscribe(closed, {}, "default", false);
  {
    auto gone = std::make_shared<RecordingSocket>();
    events.subscribe(gone, {}, "default", false);
  }
  closed->open = false;
  events.publish("operation", {{"id", "1"}});
  EXPECT_EQ(events.subscribers(), 1u);
  EXPECT_EQ(kept->sent.size(), 1u);
  EXPECT_TRUE(closed->sent.empty());
}

}  // namespace
}  // namespace berth::daemon
