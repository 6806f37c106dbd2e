// berthd's route table: paths decoded and checked once, trust decided once, LXD's envelopes for
// what matches no route, a verb a route lacks, and a caller that is not trusted.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "daemon/api/response.hpp"
#include "daemon/api/router.hpp"

namespace berth::daemon::api {
namespace {

http::Request request(std::string method, std::string target, bool local = false) {
  http::Request r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.local = local;
  r.peer = local ? "unix" : "127.0.0.1:4000";
  return r;
}

nlohmann::json body_of(const http::Response& r) {
  return nlohmann::json::parse(r.body);
}

TEST(DecodePath, DecodesEachSegmentAndRefusesTraversal) {
  EXPECT_EQ(decode_path("/1.0/instances/c%31"), "/1.0/instances/c1");
  EXPECT_EQ(decode_path("/"), "/");
  EXPECT_FALSE(decode_path("/1.0/instances/%2e%2e/x"));
  EXPECT_FALSE(decode_path("/1.0/instances/../x"));
  EXPECT_FALSE(decode_path("/1.0/instances/a%2fb"));
  EXPECT_FALSE(decode_path("/1.0/instances/a%00"));
  EXPECT_FALSE(decode_path("/1.0/instances/a%5cb"));
  EXPECT_FALSE(decode_path("/1.0//instances"));
  EXPECT_FALSE(decode_path("/1.0/instances/"));
  EXPECT_FALSE(decode_path("/1.0/%zz"));
  EXPECT_FALSE(decode_path("/1.0/%4"));
  EXPECT_FALSE(decode_path("1.0"));
}

TEST(DecodeQuery, DecodesNamesAndValuesAndKeepsTheFirst) {
  const auto q = decode_query("recursion=1&filter=name+eq+c1&recursion=2&empty&x=%41");
  EXPECT_EQ(q.at("recursion"), "1");
  EXPECT_EQ(q.at("filter"), "name eq c1");
  EXPECT_EQ(q.at("empty"), "");
  EXPECT_EQ(q.at("x"), "A");
}

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() : router_([](const http::Request& r, const std::string&) { return r.local; }) {
    router_.add("/1.0", "GET", Access::untrusted, [](const Call& c) {
      return sync_response({{"trusted", c.trusted}});
    });
    router_.add("/1.0/things/{name}", "GET", Access::trusted, [](const Call& c) {
      return sync_response({{"name", c.params.at("name")}, {"recursion", c.query.count("recursion")}});
    });
    router_.add("/1.0/boom", "GET", Access::untrusted,
                [](const Call&) -> http::Response { throw std::runtime_error("a bug"); });
  }
  Router router_;
};

TEST_F(RouterTest, MatchesPatternsAndPassesDecodedParameters) {
  const auto r = router_.handle(request("GET", "/1.0/things/a%20b?recursion=1", true));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_of(r)["metadata"]["name"], "a b");
  EXPECT_EQ(body_of(r)["metadata"]["recursion"], 1);
}

TEST_F(RouterTest, AnUntrustedCallerGets403OnlyWhereTrustIsNeeded) {
  auto r = router_.handle(request("GET", "/1.0/things/x"));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(body_of(r)["error_code"], 403);
  EXPECT_EQ(body_of(r)["type"], "error");
  r = router_.handle(request("GET", "/1.0"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body_of(r)["metadata"]["trusted"], false);
}

TEST_F(RouterTest, UnknownRoutesVerbsAndBadPathsAreEnvelopes) {
  auto r = router_.handle(request("GET", "/1.0/nothing", true));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(body_of(r)["error"], "not found");
  r = router_.handle(request("DELETE", "/1.0", true));
  EXPECT_EQ(r.status, 404);
  r = router_.handle(request("DELETE", "/1.0"));
  EXPECT_EQ(r.status, 403) << "an untrusted caller learns nothing but 403";
  r = router_.handle(request("GET", "/1.0/things/%2e%2e", true));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.content_type, "application/json");
}

TEST_F(RouterTest, AHandlerThatThrowsIsA500NotACrash) {
  const auto r = router_.handle(request("GET", "/1.0/boom", true));
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(body_of(r)["type"], "error");
}

TEST(Envelopes, HaveEveryKeyLxdSends) {
  for (const auto& r : {sync_response(nullptr), error_response(404, "not found"), async_response({{"id", "abc"}})}) {
    const auto j = body_of(r);
    for (const char* key : {"type", "status", "status_code", "operation", "error_code", "error", "metadata"}) {
      EXPECT_TRUE(j.contains(key)) << key << " in " << r.body;
    }
  }
  const auto created = sync_response(nullptr, {}, "/1.0/certificates/ab");
  EXPECT_EQ(created.status, 201);
  const auto async = async_response({{"id", "abc"}});
  EXPECT_EQ(async.status, 202);
  EXPECT_EQ(body_of(async)["operation"], "/1.0/operations/abc");
  EXPECT_EQ(body_of(async)["status_code"], 100);
}

}  // namespace
}  // namespace berth::daemon::api
