#include "providers/lxd/url.hpp"

#include <gtest/gtest.h>

namespace berth::lxd {
namespace {

TEST(ParseUrl, HttpsWithDefaultPort) {
  auto ep = parse_url("https://10.0.0.2");
  ASSERT_TRUE(ep.ok()) << ep.error().message;
  EXPECT_EQ(ep->scheme, Scheme::https);
  EXPECT_EQ(ep->host, "10.0.0.2");
  EXPECT_EQ(ep->port, 8443);
  EXPECT_EQ(ep->to_string(), "https://10.0.0.2:8443");
  EXPECT_TRUE(ep->host_is_ip());
}

TEST(ParseUrl, HttpsWithPortAndTrailingSlash) {
  auto ep = parse_url("https://lxd.example.com:9443/");
  ASSERT_TRUE(ep.ok()) << ep.error().message;
  EXPECT_EQ(ep->host, "lxd.example.com");
  EXPECT_EQ(ep->port, 9443);
  EXPECT_FALSE(ep->host_is_ip());
  EXPECT_EQ(ep->authority(), "lxd.example.com:9443");
}

TEST(ParseUrl, Ipv6InBrackets) {
  auto ep = parse_url("https://[::1]:8444");
  ASSERT_TRUE(ep.ok()) << ep.error().message;
  EXPECT_EQ(ep->host, "::1");
  EXPECT_EQ(ep->port, 8444);
  EXPECT_TRUE(ep->host_is_ipv6());
  EXPECT_EQ(ep->to_string(), "https://[::1]:8444");
  EXPECT_EQ(parse_url("https://[fe80::1]")->port, 8443);
}

TEST(ParseUrl, UnixSocket) {
  auto ep = parse_url("unix:///var/lib/lxd/unix.socket");
  ASSERT_TRUE(ep.ok()) << ep.error().message;
  EXPECT_EQ(ep->scheme, Scheme::unix_socket);
  EXPECT_EQ(ep->socket_path, "/var/lib/lxd/unix.socket");
  EXPECT_EQ(ep->to_string(), "unix:///var/lib/lxd/unix.socket");
}

TEST(ParseUrl, RejectsWithAClearMessage) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "empty"},
      {"http://10.0.0.2", "plain http"},
      {"ftp://x", "scheme is not supported"},
      {"10.0.0.2:8443", "scheme is missing"},
      {"https://", "host is missing"},
      {"https://:8443", "host is missing"},
      {"https://host:0", "port"},
      {"https://host:65536", "port"},
      {"https://host:84x3", "port"},
      {"https://host:", "port"},
      {"https://::1", "brackets"},
      {"https://[::1", "closing ']'"},
      {"https://[::1]x", "only :PORT"},
      {"https://[nothex]:1", "IPv6"},
      {"https://[fe80::1%eth0]:1", "zone"},
      {"https://host/1.0", "no path"},
      {"https://host?x=1", "no path"},
      {"https://user@host", "user name"},
      {"https://ho st", "may contain only"},
      {"unix://", "ABSOLUTE/PATH"},
      {"unix://relative/path", "ABSOLUTE/PATH"},
  };
  for (const auto& [url, why] : cases) {
    auto ep = parse_url(url);
    ASSERT_FALSE(ep.ok()) << url;
    EXPECT_EQ(ep.error().kind, ErrorKind::invalid_argument) << url;
    EXPECT_NE(ep.error().message.find(why), std::string::npos) << url << " -> " << ep.error().message;
    EXPECT_NE(ep.error().message.find("invalid URL"), std::string::npos) << url;
  }
}

TEST(NormalizeRemoteUrl, AcceptsWhatLxcRemoteAddAccepts) {
  EXPECT_EQ(*normalize_remote_url("10.0.0.2"), "https://10.0.0.2:8443");
  EXPECT_EQ(*normalize_remote_url("10.0.0.2:9000"), "https://10.0.0.2:9000");
  EXPECT_EQ(*normalize_remote_url("host.example"), "https://host.example:8443");
  EXPECT_EQ(*normalize_remote_url("::1"), "https://[::1]:8443");
  EXPECT_EQ(*normalize_remote_url("[::1]:9000"), "https://[::1]:9000");
  EXPECT_EQ(*normalize_remote_url("https://h:1/"), "https://h:1");
  EXPECT_EQ(*normalize_remote_url("unix:///run/x.sock"), "unix:///run/x.sock");
  EXPECT_FALSE(normalize_remote_url("http://h").ok());
  EXPECT_FALSE(normalize_remote_url("").ok());
  EXPECT_FALSE(normalize_remote_url("h:99999").ok());
}

}  // namespace
}  // namespace berth::lxd

namespace berth::lxd {
namespace {

// Snapshot and alias names may hold characters that would end a path or start a query.
TEST(PathSegment, EncodesWhatIsNotUnreserved) {
  EXPECT_EQ(path_segment("snap0"), "snap0");
  EXPECT_EQ(path_segment("a-b.c_d~e"), "a-b.c_d~e");
  EXPECT_EQ(path_segment("why?#100%"), "why%3F%23100%25");
  EXPECT_EQ(path_segment("a/b c"), "a%2Fb%20c");
  EXPECT_EQ(path_segment("\xc3\xa9"), "%C3%A9");
}

TEST(LxdUrl, WithProjectOnlyOutsideTheDefaultProject) {
  EXPECT_EQ(with_project("/1.0/instances", "default"), "/1.0/instances");
  EXPECT_EQ(with_project("/1.0/instances", ""), "/1.0/instances");
  EXPECT_EQ(with_project("/1.0/instances", "p"), "/1.0/instances?project=p");
  EXPECT_EQ(with_project("/1.0/instances?recursion=1", "p"), "/1.0/instances?recursion=1&project=p");
  EXPECT_EQ(with_project("/1.0/instances?project=q", "p"), "/1.0/instances?project=q") << "named already";
  EXPECT_EQ(with_project("/1.0/x?a=1&project=q", "p"), "/1.0/x?a=1&project=q");
  EXPECT_EQ(with_project("/1.0/images/aliases/subproject=x", "p"), "/1.0/images/aliases/subproject=x?project=p");
}

}  // namespace
}  // namespace berth::lxd
