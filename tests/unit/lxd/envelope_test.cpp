#include <gtest/gtest.h>

#include "providers/lxd/client.hpp"

namespace berth::lxd {
namespace {

TEST(Envelope, Sync) {
  auto r = parse_envelope(200,
                          R"({"type":"sync","status":"Success","status_code":200,"operation":"","error_code":0,)"
                          R"("error":"","metadata":["/1.0"]})",
                          {{"ETag", "\"abc123\""}, {"content-type", "application/json"}}, "GET /");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->type, ResponseType::sync);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->metadata, nlohmann::json::array({"/1.0"}));
  EXPECT_EQ(r->etag(), "abc123");
  EXPECT_EQ(r->header("Content-Type"), "application/json");  // case-insensitive
  EXPECT_EQ(r->header("X-Missing"), "");
}

TEST(Envelope, SyncCreatedWithLocation) {
  auto r = parse_envelope(201, R"({"type":"sync","status":"Success","status_code":200,"metadata":null})",
                          {{"Location", "/1.0/certificates/ab12"}}, "POST /1.0/certificates");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->location(), "/1.0/certificates/ab12");
  EXPECT_TRUE(r->metadata.is_null());
}

TEST(Envelope, Async) {
  auto r = parse_envelope(202,
                          R"({"type":"async","status":"Operation created","status_code":100,)"
                          R"("operation":"/1.0/operations/1234","error_code":0,"error":"",)"
                          R"("metadata":{"id":"1234","class":"task","status_code":103}})",
                          {{"Location", "/1.0/operations/1234"}}, "POST /1.0/instances");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->type, ResponseType::async);
  EXPECT_EQ(r->operation, "/1.0/operations/1234");
  EXPECT_EQ(r->metadata["class"], "task");
}

TEST(Envelope, AsyncWithoutOperationFallsBackToLocation) {
  auto r = parse_envelope(202, R"({"type":"async","metadata":{}})", {{"Location", "/1.0/operations/9"}}, "POST /x");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->operation, "/1.0/operations/9");
  EXPECT_FALSE(parse_envelope(202, R"({"type":"async","metadata":{}})", {}, "POST /x").ok());
}

TEST(Envelope, ErrorCarriesHttpStatusAndLxdText) {
  auto r = parse_envelope(404,
                          R"({"type":"error","status":"","status_code":0,"operation":"","error_code":404,)"
                          R"("error":"Instance not found","metadata":null})",
                          {}, "GET /1.0/instances/c9");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::server);
  EXPECT_EQ(r.error().http_status, 404);
  EXPECT_EQ(r.error().lxd_error, "Instance not found");
  EXPECT_EQ(r.error().message, "GET /1.0/instances/c9 failed: Instance not found (HTTP 404)");
}

TEST(Envelope, ForbiddenWithoutBodyDetail) {
  auto r = parse_envelope(403, R"({"type":"error","error":"not authorized","error_code":403})", {}, "GET /1.0/x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().http_status, 403);
  EXPECT_EQ(r.error().lxd_error, "not authorized");
}

TEST(Envelope, NonJsonErrorUsesTheHttpStatus) {
  auto r = parse_envelope(502, "<html>Bad Gateway</html>", {}, "GET /1.0");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::server);
  EXPECT_EQ(r.error().http_status, 502);
  EXPECT_NE(r.error().message.find("HTTP 502"), std::string::npos);
}

TEST(Envelope, NonJsonSuccessIsAProtocolError) {
  auto r = parse_envelope(200, "hello", {}, "GET /");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::protocol);
  EXPECT_FALSE(parse_envelope(200, R"({"type":"weird"})", {}, "GET /").ok());
  EXPECT_FALSE(parse_envelope(200, R"([1,2])", {}, "GET /").ok());
}

TEST(Envelope, ErrorStatusWithSyncBodyIsStillAnError) {
  auto r = parse_envelope(500, R"({"type":"sync","metadata":{}})", {}, "GET /");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().http_status, 500);
}

}  // namespace
}  // namespace berth::lxd
