// http::Server on 127.0.0.1 with a port the kernel picks, driven by a Beast client on loopback;
// and the listen address rules.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <thread>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#pragma GCC diagnostic pop

#include "http/server.hpp"

namespace berth::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using boost::system::error_code;
using namespace std::chrono_literals;

// A client connection whose every step has a deadline, so that a misbehaving server fails the test
// instead of hanging it.
class Client {
 public:
  explicit Client(std::uint16_t port) {
    connected_ = run([&](auto handler) {
      stream_.async_connect(net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), port), handler);
    });
  }

  [[nodiscard]] error_code connected() const { return connected_; }

  error_code send(const std::string& method, const std::string& target, const std::string& body = "",
                  std::vector<std::pair<std::string, std::string>> headers = {}) {
    bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), target, 11};
    req.set(bhttp::field::host, "127.0.0.1");
    for (const auto& [name, value] : headers) req.set(name, value);
    req.body() = body;
    if (method != "GET" && method != "HEAD") req.prepare_payload();
    return run([&](auto handler) { bhttp::async_write(stream_, req, handler); });
  }

  error_code send_raw(const std::string& text) {
    return run([&](auto handler) { net::async_write(stream_, net::buffer(text), handler); });
  }

  struct Answer {
    error_code ec;
    bhttp::response<bhttp::string_body> res;
  };

  // `head`: the answer to a HEAD request, whose Content-Length announces a body that is not sent.
  Answer read(bool head = false) {
    bhttp::response_parser<bhttp::string_body> parser;
    parser.skip(head);
    Answer answer;
    answer.ec = run([&](auto handler) { bhttp::async_read(stream_, buffer_, parser, handler); });
    answer.res = parser.release();
    return answer;
  }

  Answer get(const std::string& target) {
    if (const auto ec = send("GET", target)) return {ec, {}};
    return read();
  }

  // What the next read sees when the server has closed: an error, and no bytes.
  error_code read_some() {
    std::array<char, 256> data{};
    std::size_t got = 0;
    const auto ec = run([&](auto handler) {
      stream_.async_read_some(net::buffer(data), [&got, handler](error_code e, std::size_t n) {
        got = n;
        handler(e, n);
      });
    });
    return got > 0 ? error_code{} : ec;
  }

 private:
  template <class Initiate>
  error_code run(Initiate&& initiate) {
    error_code result = net::error::would_block;
    stream_.expires_after(5s);
    initiate([&result](error_code ec, auto&&...) { result = ec; });
    ioc_.restart();
    ioc_.run();
    return result;
  }

  net::io_context ioc_;
  beast::tcp_stream stream_{ioc_};
  beast::flat_buffer buffer_;
  error_code connected_;
};

std::unique_ptr<Server> serve(Handler handler, ServerOptions options = {}) {
  auto listened = Server::listen("127.0.0.1", 0, std::move(handler), options);
  if (auto* error = std::get_if<std::string>(&listened)) throw std::runtime_error(*error);
  auto server = std::move(std::get<std::unique_ptr<Server>>(listened));
  server->start();
  return server;
}

// The requests the handler saw. The handler runs on the server thread, the checks on the test's.
class Seen {
 public:
  void add(const Request& request) {
    const std::lock_guard lock(mutex_);
    requests_.push_back(request);
  }
  [[nodiscard]] std::vector<Request> all() const {
    const std::lock_guard lock(mutex_);
    return requests_;
  }
  [[nodiscard]] Request last() const {
    const std::lock_guard lock(mutex_);
    return requests_.empty() ? Request{} : requests_.back();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Request> requests_;
};

Response text(std::string body) {
  Response response;
  response.body = std::move(body);
  return response;
}

TEST(HttpServer, GetReturnsTheHandlersBodyAndContentType) {
  Seen seen;
  auto server = serve([&](const Request& request) {
    seen.add(request);
    Response response;
    response.content_type = "text/html; charset=utf-8";
    response.body = "<p>hello</p>";
    response.headers = {{"X-Berth", "1"}};
    return response;
  });
  ASSERT_NE(server->port(), 0);
  Client client(server->port());
  ASSERT_FALSE(client.connected());
  ASSERT_FALSE(client.send("GET", "/status?verbose=1", "", {{"Authorization", "Bearer t0ken"}}));
  const auto answer = client.read();
  ASSERT_FALSE(answer.ec) << answer.ec.message();
  EXPECT_EQ(answer.res.result_int(), 200u);
  EXPECT_EQ(answer.res.body(), "<p>hello</p>");
  EXPECT_EQ(answer.res[bhttp::field::content_type], "text/html; charset=utf-8");
  EXPECT_EQ(answer.res[bhttp::field::content_length], "12");
  EXPECT_EQ(answer.res[bhttp::field::cache_control], "no-store");
  EXPECT_EQ(answer.res["X-Berth"], "1");
  EXPECT_EQ(seen.last().method, "GET");
  EXPECT_EQ(seen.last().target, "/status?verbose=1");
  EXPECT_EQ(seen.last().authorization, "Bearer t0ken");
  EXPECT_EQ(seen.last().peer.rfind("127.0.0.1:", 0), 0u) << seen.last().peer;
}

TEST(HttpServer, PostBodyReachesTheHandler) {
  Seen seen;
  auto server = serve([&](const Request& request) {
    seen.add(request);
    return text("ok\n");
  });
  Client client(server->port());
  ASSERT_FALSE(client.send("POST", "/suspend", R"({"reason":"maintenance"})"));
  const auto answer = client.read();
  ASSERT_FALSE(answer.ec) << answer.ec.message();
  EXPECT_EQ(answer.res.result_int(), 200u);
  EXPECT_EQ(seen.last().method, "POST");
  EXPECT_EQ(seen.last().target, "/suspend");
  EXPECT_EQ(seen.last().body, R"({"reason":"maintenance"})");
  EXPECT_EQ(seen.last().authorization, "");
}

TEST(HttpServer, KeepAliveServesTwoRequestsOnOneConnection) {
  Seen seen;
  auto server = serve([&](const Request& request) {
    seen.add(request);
    return text(request.target);
  });
  Client client(server->port());
  const auto first = client.get("/one");
  ASSERT_FALSE(first.ec) << first.ec.message();
  EXPECT_TRUE(first.res.keep_alive());
  EXPECT_EQ(first.res.body(), "/one");
  const auto second = client.get("/two");
  ASSERT_FALSE(second.ec) << second.ec.message();
  EXPECT_EQ(second.res.body(), "/two");
  const auto requests = seen.all();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].peer, requests[1].peer);  // the same client port: the same connection
}

TEST(HttpServer, AnOversizedBodyIsAnswered413AndNeverReachesTheHandler) {
  std::atomic<int> calls{0};
  ServerOptions options;
  options.body_limit = 1024;
  auto server = serve(
      [&](const Request&) {
        ++calls;
        return text("ok");
      },
      options);
  Client client(server->port());
  ASSERT_FALSE(client.send("POST", "/reconcile", std::string(4096, 'x')));
  const auto answer = client.read();
  ASSERT_FALSE(answer.ec) << answer.ec.message();
  EXPECT_EQ(answer.res.result_int(), 413u);
  EXPECT_FALSE(answer.res.keep_alive());
  EXPECT_TRUE(client.read_some());  // the server closed the connection
  EXPECT_EQ(calls, 0);

  // A body at the limit is fine.
  Client again(server->port());
  ASSERT_FALSE(again.send("POST", "/reconcile", std::string(1024, 'x')));
  EXPECT_EQ(again.read().res.result_int(), 200u);
  EXPECT_EQ(calls, 1);
}

TEST(HttpServer, ALargerBodyLimitForSomeRequests) {
  ServerOptions options;
  options.body_limit = 1024;
  options.body_limit_for = [](const Request& head) -> std::size_t {
    return head.method == "POST" && head.target == "/upload" && head.body.empty() ? 8192 : 0;
  };
  auto server = serve([](const Request& request) { return text(std::to_string(request.body.size())); }, options);
  Client client(server->port());
  ASSERT_FALSE(client.send("POST", "/upload", std::string(8192, 'x')));
  const auto answer = client.read();
  ASSERT_FALSE(answer.ec) << answer.ec.message();
  EXPECT_EQ(answer.res.result_int(), 200u);
  EXPECT_EQ(answer.res.body(), "8192");
  // Past the larger limit, and the default elsewhere, still 413.
  ASSERT_FALSE(client.send("POST", "/upload", std::string(8193, 'x')));
  EXPECT_EQ(client.read().res.result_int(), 413u);
  Client other(server->port());
  ASSERT_FALSE(other.send("POST", "/elsewhere", std::string(2048, 'x')));
  EXPECT_EQ(other.read().res.result_int(), 413u);
}

// A long poll: the reply comes from another thread; without one the timeout's answer goes out;
// a reply after the timeout, or after the server stopped, is dropped.
TEST(HttpServer, ADeferredAnswerComesFromAnotherThreadOrAtItsTimeout) {
  std::mutex mu;
  std::vector<std::function<void(Response)>> replies;
  auto server = serve([&](const Request& request) {
    if (request.target == "/plain") return text("plain");
    Response r;
    r.deferred = std::make_shared<Deferred>();
    r.deferred->timeout = request.target == "/short" ? 200ms : 30s;
    r.deferred->start = [&](std::function<void(Response)> reply) {
      const std::lock_guard lock(mu);
      replies.push_back(std::move(reply));
    };
    r.deferred->on_timeout = [] { return text("timed out"); };
    return r;
  });
  const auto take_reply = [&]() -> std::function<void(Response)> {
    for (int i = 0; i < 200; ++i) {
      {
        const std::lock_guard lock(mu);
        if (!replies.empty()) {
          auto reply = replies.back();
          replies.pop_back();
          return reply;
        }
      }
      std::this_thread::sleep_for(10ms);
    }
    return nullptr;
  };

  Client client(server->port());
  ASSERT_FALSE(client.send("GET", "/long"));
  auto reply = take_reply();
  ASSERT_TRUE(reply);
  std::thread([reply] { reply(text("done")); }).join();
  auto answer = client.read();
  ASSERT_FALSE(answer.ec) << answer.ec.message();
  EXPECT_EQ(answer.res.body(), "done");

  // The same connection goes on; this time nobody replies in time.
  const auto started = std::chrono::steady_clock::now();
  ASSERT_FALSE(client.send("GET", "/short"));
  auto late = take_reply();
  ASSERT_TRUE(late);
  answer = client.read();
  ASSERT_FALSE(answer.ec) << answer.ec.message();
  EXPECT_EQ(answer.res.body(), "timed out");
  EXPECT_GE(std::chrono::steady_clock::now() - started, 200ms);
  // A late reply to the earlier request does not answer the next one on the connection.
  ASSERT_FALSE(client.send("GET", "/long"));
  auto second = take_reply();
  ASSERT_TRUE(second);
  late(text("too late"));
  second(text("second"));
  answer = client.read();
  ASSERT_FALSE(answer.ec) << answer.ec.message();
  EXPECT_EQ(answer.res.body(), "second");
  const auto plain = client.get("/plain");  // the connection goes on
  ASSERT_FALSE(plain.ec) << plain.ec.message();
  EXPECT_EQ(plain.res.body(), "plain");

  // A request left waiting does not hold up stop(), and its reply afterwards does nothing.
  Client waiting(server->port());
  ASSERT_FALSE(waiting.send("GET", "/long"));
  auto orphan = take_reply();
  ASSERT_TRUE(orphan);
  const auto stopping = std::chrono::steady_clock::now();
  server->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - stopping, 2s);
  orphan(text("after stop"));
  server.reset();
  orphan(text("after the server is gone"));
}

TEST(HttpServer, AThrowingHandlerAnswers500AndTheNextRequestWorks) {
  auto server = serve([](const Request& request) -> Response {
    if (request.target == "/boom") throw std::runtime_error("secret detail");
    if (request.target == "/int") throw 42;
    return text("fine");
  });
  Client client(server->port());
  const auto boom = client.get("/boom");
  ASSERT_FALSE(boom.ec) << boom.ec.message();
  EXPECT_EQ(boom.res.result_int(), 500u);
  EXPECT_EQ(boom.res.body().find("secret"), std::string::npos);
  const auto odd = client.get("/int");
  ASSERT_FALSE(odd.ec) << odd.ec.message();
  EXPECT_EQ(odd.res.result_int(), 500u);
  const auto next = client.get("/ok");  // on the same connection
  ASSERT_FALSE(next.ec) << next.ec.message();
  EXPECT_EQ(next.res.result_int(), 200u);
  EXPECT_EQ(next.res.body(), "fine");
}

TEST(HttpServer, StopWithAClientConnectedReturnsPromptly) {
  auto server = serve([](const Request&) { return text("ok"); });  // 30 s timeout
  Client idle(server->port());
  ASSERT_FALSE(idle.get("/").ec);  // one request served, then idle on keep-alive
  Client silent(server->port());   // connected, nothing sent
  ASSERT_FALSE(silent.connected());

  const auto started = std::chrono::steady_clock::now();
  server->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  EXPECT_TRUE(idle.read_some());
  EXPECT_TRUE(silent.read_some());
  server->stop();  // idempotent
}

TEST(HttpServer, HeadIsAnsweredLikeGetWithoutTheBody) {
  Seen seen;
  auto server = serve([&](const Request& request) {
    seen.add(request);
    return text("twelve bytes");
  });
  Client client(server->port());
  ASSERT_FALSE(client.send("HEAD", "/metrics"));
  const auto head = client.read(true);
  ASSERT_FALSE(head.ec) << head.ec.message();
  EXPECT_EQ(head.res.result_int(), 200u);
  EXPECT_EQ(head.res[bhttp::field::content_length], "12");
  EXPECT_EQ(head.res.body(), "");
  // No stray body bytes: the next answer on the connection parses.
  const auto get = client.get("/metrics");
  ASSERT_FALSE(get.ec) << get.ec.message();
  EXPECT_EQ(get.res.body(), "twelve bytes");
  const auto requests = seen.all();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[1].method, "GET");
}

TEST(HttpServer, AMalformedRequestIsAnswered400) {
  std::atomic<int> calls{0};
  auto server = serve([&](const Request&) {
    ++calls;
    return text("ok");
  });
  Client client(server->port());
  ASSERT_FALSE(client.send_raw("GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: zz\r\n\r\n"));
  const auto answer = client.read();
  ASSERT_FALSE(answer.ec) << answer.ec.message();
  EXPECT_EQ(answer.res.result_int(), 400u);
  EXPECT_EQ(answer.res[bhttp::field::cache_control], "no-store");
  EXPECT_FALSE(answer.res[bhttp::field::content_length].empty());

  Client garbage(server->port());
  ASSERT_FALSE(garbage.send_raw("\x01\x02 nonsense\r\n\r\n"));
  EXPECT_EQ(garbage.read().res.result_int(), 400u);
  EXPECT_EQ(calls, 0);
}

TEST(HttpServer, ExpectContinueGetsA100BeforeTheBody) {
  Seen seen;
  auto server = serve([&](const Request& request) {
    seen.add(request);
    return text("ok");
  });
  Client client(server->port());
  ASSERT_FALSE(
      client.send_raw("POST /resume HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  const auto interim = client.read();
  ASSERT_FALSE(interim.ec) << interim.ec.message();
  EXPECT_EQ(interim.res.result_int(), 100u);
  ASSERT_FALSE(client.send_raw("hello"));
  const auto answer = client.read();
  ASSERT_FALSE(answer.ec) << answer.ec.message();
  EXPECT_EQ(answer.res.result_int(), 200u);
  EXPECT_EQ(seen.last().body, "hello");
}

TEST(HttpServer, ConnectionsBeyondTheLimitAreClosed) {
  ServerOptions options;
  options.max_connections = 1;
  auto server = serve([](const Request&) { return text("ok"); }, options);
  Client first(server->port());
  ASSERT_FALSE(first.get("/").ec);  // the server holds this one now
  Client second(server->port());    // the kernel accepts it; the server closes it
  second.send("GET", "/");
  EXPECT_TRUE(second.read().ec);
  EXPECT_EQ(first.get("/").res.result_int(), 200u);
}

TEST(HttpServer, HeadersTheServerOwnsOrThatCouldSplitTheAnswerAreDropped) {
  auto server = serve([](const Request&) {
    Response response = text("ok");
    response.headers = {{"X-Ok", "yes"},
                        {"X-Split", "a\r\nSet-Cookie: evil=1"},
                        {"Content-Length", "999"},
                        {"Bad Name", "x"},
                        {"Cache-Control", "max-age=60"}};
    return response;
  });
  Client client(server->port());
  const auto answer = client.get("/");
  ASSERT_FALSE(answer.ec) << answer.ec.message();
  EXPECT_EQ(answer.res["X-Ok"], "yes");
  EXPECT_EQ(answer.res["X-Split"], "");
  EXPECT_EQ(answer.res["Set-Cookie"], "");
  EXPECT_EQ(answer.res[bhttp::field::content_length], "2");
  EXPECT_EQ(answer.res[bhttp::field::cache_control], "no-store");
  EXPECT_EQ(answer.res.body(), "ok");
}

TEST(HttpServer, AStatusOutsideTheRangeBecomes500And204HasNoLength) {
  auto server = serve([](const Request& request) {
    Response response = text("body");
    response.status = request.target == "/odd" ? 42 : 204;
    return response;
  });
  Client client(server->port());
  const auto odd = client.get("/odd");
  ASSERT_FALSE(odd.ec) << odd.ec.message();
  EXPECT_EQ(odd.res.result_int(), 500u);
  const auto empty = client.get("/empty");
  ASSERT_FALSE(empty.ec) << empty.ec.message();
  EXPECT_EQ(empty.res.result_int(), 204u);
  EXPECT_EQ(empty.res[bhttp::field::content_length], "");
  EXPECT_EQ(empty.res.body(), "");
}

TEST(HttpServer, ListenReportsAnAddressThatCannotBeBound) {
  auto server = serve([](const Request&) { return text("ok"); });
  const auto taken = Server::listen("127.0.0.1", server->port(), [](const Request&) { return text("ok"); });
  ASSERT_TRUE(std::holds_alternative<std::string>(taken));
  EXPECT_EQ(std::get<std::string>(taken).rfind("listen on 127.0.0.1:" + std::to_string(server->port()) + ": ", 0), 0u)
      << std::get<std::string>(taken);

  const auto named = Server::listen("example.com", 0, [](const Request&) { return text("ok"); });
  ASSERT_TRUE(std::holds_alternative<std::string>(named));
  EXPECT_NE(std::get<std::string>(named).find("not an IP address"), std::string::npos);

  const auto local = Server::listen("localhost", 0, [](const Request&) { return text("ok"); });
  ASSERT_TRUE(std::holds_alternative<std::unique_ptr<Server>>(local));
}

TEST(HttpServer, StopAcceptingFreesTheAddressAndServesOpenConnections) {
  std::unique_ptr<Server> server;
  // Called from the handler itself, as berthd's API does when core.https_address moves.
  server = serve([&](const Request& request) {
    if (request.target == "/close") server->stop_accepting();
    return text(request.target);
  });
  const auto port = server->port();
  Client client(port);
  const auto closed = client.get("/close");
  ASSERT_FALSE(closed.ec) << closed.ec.message();
  EXPECT_EQ(closed.res.body(), "/close");
  // The open connection is still served.
  const auto after = client.get("/after");
  ASSERT_FALSE(after.ec) << after.ec.message();
  EXPECT_EQ(after.res.body(), "/after");
  // A new one is not, and the address can be bound again.
  Client late(port);
  EXPECT_TRUE(late.connected() || late.read_some()) << "a connection after stop_accepting was accepted";
  auto again = Server::listen("127.0.0.1", port, [](const Request&) { return text("new"); });
  ASSERT_TRUE(std::holds_alternative<std::unique_ptr<Server>>(again)) << std::get<std::string>(again);
  // From another thread too, and twice.
  auto other = std::move(std::get<std::unique_ptr<Server>>(again));
  other->start();
  other->stop_accepting();
  other->stop_accepting();
  server->stop();
  other->stop();
}

TEST(HttpServer, AServerNeverStartedStopsCleanly) {
  auto listened = Server::listen("127.0.0.1", 0, [](const Request&) { return text("ok"); });
  ASSERT_TRUE(std::holds_alternative<std::unique_ptr<Server>>(listened));
  auto& server = *std::get<std::unique_ptr<Server>>(listened);
  server.stop();
  server.start();  // after stop(): nothing
  server.stop();
}

using Parsed = std::pair<std::string, std::uint16_t>;

std::string refusal(std::string_view text) {
  const auto parsed = parse_listen_address(text);
  if (std::holds_alternative<Parsed>(parsed)) return "(accepted)";
  return std::get<std::string>(parsed);
}

TEST(HttpListenAddress, AcceptsHostAndPort) {
  EXPECT_EQ(std::get<Parsed>(parse_listen_address("127.0.0.1:9478")), (Parsed{"127.0.0.1", 9478}));
  EXPECT_EQ(std::get<Parsed>(parse_listen_address("[::1]:9478")), (Parsed{"::1", 9478}));
  EXPECT_EQ(std::get<Parsed>(parse_listen_address("localhost:80")), (Parsed{"localhost", 80}));
  EXPECT_EQ(std::get<Parsed>(parse_listen_address("0.0.0.0:0")), (Parsed{"0.0.0.0", 0}));
  EXPECT_EQ(std::get<Parsed>(parse_listen_address("[::]:65535")), (Parsed{"::", 65535}));
}

TEST(HttpListenAddress, RefusesWithAClearMessage) {
  EXPECT_EQ(refusal("9478"), "'9478': no port; expected HOST:PORT such as 127.0.0.1:9478, [::1]:9478 or 0.0.0.0:9478");
  EXPECT_EQ(refusal("host:"),
            "'host:': no port after ':'; expected HOST:PORT such as 127.0.0.1:9478, [::1]:9478 or 0.0.0.0:9478");
  EXPECT_EQ(refusal("host:99999"), "'host:99999': the port 99999 is out of range (0 to 65535)");
  EXPECT_EQ(refusal("[::1"),
            "'[::1': no ']' after the IPv6 address; expected HOST:PORT such as 127.0.0.1:9478, [::1]:9478 or "
            "0.0.0.0:9478");
  EXPECT_NE(refusal(":9478").find("no host"), std::string::npos);
  EXPECT_NE(refusal("").find("empty listen address"), std::string::npos);
  EXPECT_NE(refusal("::1:9478").find("needs brackets"), std::string::npos);
  EXPECT_NE(refusal("host:9478").find("'host' is not an IP address or localhost"), std::string::npos);
  EXPECT_NE(refusal("127.0.0.1:http").find("not a number"), std::string::npos);
  EXPECT_NE(refusal("127.0.0.1:-1").find("not a number"), std::string::npos);
  EXPECT_NE(refusal("[::1]9478").find("no ':PORT' after ']'"), std::string::npos);
  EXPECT_NE(refusal("[127.0.0.1]:80").find("IPv6 addresses only"), std::string::npos);
}

TEST(HttpListenAddress, Loopback) {
  EXPECT_TRUE(is_loopback("127.0.0.1"));
  EXPECT_TRUE(is_loopback("127.0.0.5"));
  EXPECT_TRUE(is_loopback("::1"));
  EXPECT_TRUE(is_loopback("[::1]"));
  EXPECT_TRUE(is_loopback("localhost"));
  EXPECT_TRUE(is_loopback("::ffff:127.0.0.1"));
  EXPECT_FALSE(is_loopback("10.0.0.1"));
  EXPECT_FALSE(is_loopback("0.0.0.0"));
  EXPECT_FALSE(is_loopback("::"));
  EXPECT_FALSE(is_loopback("example.com"));
  EXPECT_FALSE(is_loopback(""));
}

}  // namespace
}  // namespace berth::http
