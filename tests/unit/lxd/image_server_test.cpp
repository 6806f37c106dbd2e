// Image servers: the simplestreams index and products files as LXD 5.0 reads them (which image an
// alias names, and the fingerprint LXD gives it), hostile answers, and the reads over HTTPS with a
// pinned certificate against a fake server.

#include <gtest/gtest.h>

#include "providers/lxd/certificate.hpp"
#include "providers/lxd/image_server.hpp"
#include "tests/unit/lxd/fake_server.hpp"

namespace berth::lxd {
namespace {

using testing::FakeRequest;
using testing::FakeResponse;
using testing::FakeServer;

std::string fp(char c) {
  return std::string(64, c);
}

// A products file in the shape images.linuxcontainers.org serves, trimmed: one product with three
// versions (the newest split with both root kinds, one unified, one with a name that is no date),
// an arm64 twin, a VM-only product, and a product of an architecture LXD does not know.
nlohmann::json products_fixture() {
  return nlohmann::json::parse(R"({
  "content_id": "images", "datatype": "image-downloads", "format": "products:1.0",
  "products": {
    "debian:bookworm:amd64:default": {
      "aliases": "debian/bookworm/default,debian/bookworm,debian/12",
      "arch": "amd64", "os": "Debian", "release": "bookworm", "release_title": "bookworm", "variant": "default",
      "versions": {
        "20240101_05:24": {"items": {
          "lxd_combined.tar.gz": {"ftype": "lxd_combined.tar.gz", "path": "images/old.tar.gz", "size": 10,
                                  "sha256": "1111111111111111111111111111111111111111111111111111111111111111"}}},
        "20240102_05:24": {"items": {
          "lxd.tar.xz": {"ftype": "lxd.tar.xz", "path": "images/new/lxd.tar.xz", "size": 1,
                         "sha256": "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                         "combined_sha256": "2222222222222222222222222222222222222222222222222222222222222222",
                         "combined_rootxz_sha256": "3333333333333333333333333333333333333333333333333333333333333333",
                         "combined_squashfs_sha256": "4444444444444444444444444444444444444444444444444444444444444444",
                         "combined_disk-kvm-img_sha256": "5555555555555555555555555555555555555555555555555555555555555555"},
          "root.tar.xz": {"ftype": "root.tar.xz", "path": "images/new/rootfs.tar.xz", "size": 2},
          "squashfs": {"ftype": "squashfs", "path": "images/new/rootfs.squashfs", "size": 3},
          "disk-kvm.img": {"ftype": "disk-kvm.img", "path": "images/new/disk.qcow2", "size": 4}}},
        "latest": {"items": {
          "lxd_combined.tar.gz": {"ftype": "lxd_combined.tar.gz", "path": "images/latest.tar.gz", "size": 10,
                                  "sha256": "6666666666666666666666666666666666666666666666666666666666666666"}}}
      }
    },
    "debian:bookworm:arm64:default": {
      "aliases": "debian/bookworm/default,debian/bookworm,debian/12",
      "arch": "arm64", "os": "Debian", "release": "bookworm", "variant": "default",
      "versions": {"20240102_05:24": {"items": {
        "lxd.tar.xz": {"ftype": "lxd.tar.xz", "path": "a/lxd.tar.xz",
                       "combined_rootxz_sha256": "",
                       "combined_sha256": "7777777777777777777777777777777777777777777777777777777777777777"},
        "root.tar.xz": {"ftype": "root.tar.xz", "path": "a/rootfs.tar.xz"}}}}
    },
    "vmonly:1:amd64:default": {
      "aliases": "vmonly", "arch": "amd64", "os": "VM", "release": "1",
      "versions": {"20240102": {"items": {
        "lxd.tar.xz": {"ftype": "lxd.tar.xz", "path": "v/lxd.tar.xz",
                       "combined_disk-kvm-img_sha256": "8888888888888888888888888888888888888888888888888888888888888888"},
        "disk-kvm.img": {"ftype": "disk-kvm.img", "path": "v/disk.qcow2"}}}}
    },
    "odd:1:sparc:default": {
      "aliases": "odd", "arch": "sparc", "os": "Odd", "release": "1",
      "versions": {"20240102": {"items": {
        "lxd_combined.tar.gz": {"ftype": "lxd_combined.tar.gz", "path": "o.tar.gz",
                                "sha256": "9999999999999999999999999999999999999999999999999999999999999999"}}}}
    }
  }})");
}

TEST(ImageServer, IndexListsTheImageProductsFiles) {
  const auto index = nlohmann::json::parse(R"({"format": "index:1.0", "index": {
    "images": {"datatype": "image-downloads", "path": "streams/v1/images.json", "products": ["a"]},
    "empty": {"datatype": "image-downloads", "path": "streams/v1/empty.json", "products": []},
    "other": {"datatype": "content-download", "path": "streams/v1/other.json", "products": ["b"]},
    "again": {"datatype": "image-downloads", "path": "streams/v1/images.json", "products": ["c"]}}})");
  const auto paths = parse_stream_index(index);
  ASSERT_TRUE(paths.ok()) << paths.error().message;
  EXPECT_EQ(*paths, std::vector<std::string>{"streams/v1/images.json"});
  EXPECT_FALSE(parse_stream_index(nlohmann::json::parse(R"({"index": []})")).ok());
  EXPECT_FALSE(parse_stream_index(nlohmann::json::parse("[1, 2]")).ok());
  EXPECT_FALSE(parse_stream_index(
                   nlohmann::json::parse(R"({"index": {"x": {"datatype": "image-downloads", "products": ["a"]}}})"))
                   .ok());
}

TEST(ImageServer, FingerprintsAsLxdComputesThem) {
  const auto images = parse_stream_products(products_fixture());
  ASSERT_TRUE(images.ok()) << images.error().message;
  std::map<std::string, std::string> by_type;  // amd64 debian images by "serial type"
  for (const auto& i : *images) {
    if (i.os == "Debian" && i.architecture == "x86_64") by_type[i.serial + " " + i.type] = i.fingerprint;
  }
  // Unified: the item's sha256. Split: the combined hash of metadata and the rootfs kind. VM disks
  // are not container images; a version named "latest" is not a date and is skipped.
  EXPECT_EQ(by_type, (std::map<std::string, std::string>{{"20240101_05:24 tar.gz", fp('1')},
                                                         {"20240102_05:24 root.tar.xz", fp('3')},
                                                         {"20240102_05:24 squashfs", fp('4')}}));
  for (const auto& i : *images) {
    EXPECT_NE(i.os, "VM");
    EXPECT_NE(i.os, "Odd");  // an architecture LXD does not know
    // root.tar.xz without combined_rootxz_sha256: combined_sha256.
    if (i.architecture == "aarch64") EXPECT_EQ(i.fingerprint, fp('7'));
  }
}

TEST(ImageServer, AliasNamesTheNewestPreferredImagePerArchitecture) {
  const auto images = parse_stream_products(products_fixture());
  ASSERT_TRUE(images.ok());
  const auto found = resolve_stream_alias(*images, "debian/12", "https://images.example.net");
  // The newest version, and squashfs before root.tar.xz within it.
  EXPECT_EQ(found, (std::map<std::string, std::string>{{"x86_64", fp('4')}, {"aarch64", fp('7')}}));
  // ALIAS/ARCH with the product's own architecture name.
  EXPECT_EQ(resolve_stream_alias(*images, "debian/12/amd64", "https://images.example.net"),
            (std::map<std::string, std::string>{{"x86_64", fp('4')}}));
  EXPECT_TRUE(resolve_stream_alias(*images, "debian/12/x86_64", "https://images.example.net").empty());
  EXPECT_TRUE(resolve_stream_alias(*images, "vmonly", "https://images.example.net").empty());
  EXPECT_TRUE(resolve_stream_alias(*images, "debian", "https://images.example.net").empty());

  model::ServerImage image{found, {}};
  EXPECT_EQ(model::fingerprint_for(image, "x86_64"), fp('4'));
  EXPECT_EQ(model::fingerprint_for(image, "aarch64"), fp('7'));
  EXPECT_FALSE(model::fingerprint_for(image, "s390x"));
  // i686 runs on x86_64 as a personality, as LXD orders aliases.
  EXPECT_EQ(model::fingerprint_for(model::ServerImage{{{"i686", fp('a')}}, {}}, "x86_64"), fp('a'));
}

TEST(ImageServer, UbuntuServerDropsTheOsPrefix) {
  auto doc = products_fixture();
  doc["products"]["debian:bookworm:amd64:default"]["aliases"] = "ubuntu/jammy,22.04";
  const auto images = parse_stream_products(doc);
  ASSERT_TRUE(images.ok());
  EXPECT_EQ(resolve_stream_alias(*images, "jammy", "https://cloud-images.ubuntu.com/releases").size(), 1U);
  EXPECT_TRUE(resolve_stream_alias(*images, "jammy", "https://images.example.net").empty());
}

TEST(ImageServer, HostileProductsNeverThrow) {
  EXPECT_FALSE(parse_stream_products(nlohmann::json::parse("null")).ok());
  EXPECT_FALSE(parse_stream_products(nlohmann::json::parse(R"({"products": []})")).ok());
  // Wrong types anywhere below: the entries are skipped, nothing throws.
  for (const char* text : {R"({"products": {"p": 1}})", R"({"products": {"p": {"arch": 5, "versions": {}}}})",
                           R"({"products": {"p": {"arch": "amd64", "aliases": ["x"], "versions": []}}})",
                           R"({"products": {"p": {"arch": "amd64", "versions": {"20240101": {"items": 7}}}}})",
                           R"({"products": {"p": {"arch": "amd64", "aliases": ",", "versions": {"20241301": {}}}}})",
                           R"({"products": {"p": {"arch": "amd64", "aliases": "a", "versions": {"20240101": {"items":
                               {"m": {"ftype": "lxd_combined.tar.gz", "path": "x", "sha256": 12}}}}}}})",
                           R"({"products": {"p": {"arch": "amd64", "aliases": "a", "versions": {"20240101": {"items":
                               {"m": {"ftype": "lxd.tar.xz", "path": "x", "combined_squashfs_sha256": "not hex"},
                                "r": {"ftype": "squashfs"}}}}}}})"}) {
    const auto images = parse_stream_products(nlohmann::json::parse(text));
    ASSERT_TRUE(images.ok()) << text;
    EXPECT_TRUE(resolve_stream_alias(*images, "a", "https://x").empty()) << text;
  }
  // February 29th only in leap years, as Go's time.Parse.
  const auto leap = parse_stream_products(nlohmann::json::parse(
      R"({"products": {"p": {"arch": "amd64", "aliases": "a", "versions": {
        "20240229": {"items": {"m": {"ftype": "lxd_combined.tar.gz", "path": "x", "sha256": ")" +
      fp('b') + R"("}}},
        "20230229": {"items": {"m": {"ftype": "lxd_combined.tar.gz", "path": "x", "sha256": ")" +
      fp('c') + R"("}}}}}}})"));
  ASSERT_TRUE(leap.ok());
  ASSERT_EQ(leap->size(), 1U);
  EXPECT_EQ(leap->front().fingerprint, fp('b'));
}

struct Served {
  PemPair pem;
  std::map<std::string, FakeResponse> files;
  FakeResponse answer(const FakeRequest& r) const {
    const auto it = files.find(r.target);
    if (it == files.end()) return {404, "not found"};
    return it->second;
  }
};

model::ServerImageQuery query_for(const std::string& url, const std::string& certificate, const std::string& alias,
                                  model::ImageProtocol protocol = model::ImageProtocol::simplestreams) {
  return {model::ImageServer{url, protocol, certificate}, alias};
}

TEST(ImageServer, ReadsASimplestreamsServerPinnedByItsCertificate) {
  Served served{*generate_client_certificate({"images@test", 30}), {}};
  served.files["/mirror/streams/v1/index.json"] = {
      200, R"({"index": {"i": {"datatype": "image-downloads", "path": "streams/v1/images.json", "products": ["p"]}}})"};
  served.files["/mirror/streams/v1/images.json"] = {200, products_fixture().dump()};
  FakeServer server([&](const FakeRequest& r) { return served.answer(r); }, served.pem.certificate,
                    served.pem.private_key);

  auto image = read_server_image(query_for(server.url() + "/mirror", served.pem.certificate, "debian/12"), {});
  EXPECT_EQ(image.error, "");
  EXPECT_EQ(image.fingerprints, (std::map<std::string, std::string>{{"x86_64", fp('4')}, {"aarch64", fp('7')}}));

  image = read_server_image(query_for(server.url() + "/mirror", served.pem.certificate, "nope"), {});
  EXPECT_EQ(image.error, "image server " + server.url() +
                             "/mirror, alias 'nope': it lists no container image with "
                             "the alias 'nope'");

  // Another certificate than the pinned one: refused in the handshake, nothing is asked.
  const auto other = generate_client_certificate({"other@test", 30});
  const auto before = server.requests().size();
  image = read_server_image(query_for(server.url() + "/mirror", other->certificate, "debian/12"), {});
  EXPECT_NE(image.error.find("does not match the pinned"), std::string::npos) << image.error;
  EXPECT_EQ(server.requests().size(), before);

  // Not pinned: verified against the system's CAs, which do not know this self-signed server.
  image = read_server_image(query_for(server.url() + "/mirror", "", "debian/12"), {});
  EXPECT_NE(image.error.find("TLS handshake"), std::string::npos) << image.error;
  EXPECT_TRUE(image.fingerprints.empty());
}

TEST(ImageServer, HostileSimplestreamsAnswers) {
  Served served{*generate_client_certificate({"images@test", 30}), {}};
  FakeServer server([&](const FakeRequest& r) { return served.answer(r); }, served.pem.certificate,
                    served.pem.private_key);
  const auto read = [&] {
    return read_server_image(query_for(server.url(), served.pem.certificate, "debian/12"), {}).error;
  };
  EXPECT_NE(read().find("GET /streams/v1/index.json answered HTTP 404"), std::string::npos) << read();
  served.files["/streams/v1/index.json"] = {200, "<html>"};
  EXPECT_NE(read().find("the answer is not JSON"), std::string::npos) << read();
  served.files["/streams/v1/index.json"] = {200, std::string(100, '[') + std::string(100, ']')};
  EXPECT_NE(read().find("nested more than"), std::string::npos) << read();
  served.files["/streams/v1/index.json"] = {
      200, R"({"index": {"i": {"datatype": "image-downloads", "path": "../../etc/passwd", "products": ["p"]}}})"};
  EXPECT_NE(read().find("is not a path below the server URL"), std::string::npos) << read();
  served.files["/streams/v1/index.json"] = {
      200,
      R"({"index": {"i": {"datatype": "image-downloads", "path": "https://elsewhere/x.json", "products": ["p"]}}})"};
  EXPECT_NE(read().find("is not a path below the server URL"), std::string::npos) << read();
  served.files["/streams/v1/index.json"] = {
      200, R"({"index": {"i": {"datatype": "image-downloads", "path": "x.json", "products": ["p"]}}})"};
  served.files["/x.json"] = {200, R"({"products": "none"})"};
  EXPECT_NE(read().find("GET /x.json: not a simplestreams products file"), std::string::npos) << read();
  // Larger than the response limit: refused while reading.
  served.files["/x.json"] = {200, R"({"products": {}, "pad": ")" + std::string(4096, 'x') + "\"}"};
  Timeouts small;
  small.max_response_bytes = 1024;
  const auto big = read_server_image(query_for(server.url(), served.pem.certificate, "debian/12"), small).error;
  EXPECT_NE(big.find("larger than"), std::string::npos) << big;
  // Nothing listens: the server and the alias are named.
  const auto gone = read_server_image(query_for("https://127.0.0.1:1", served.pem.certificate, "debian/12"), {});
  EXPECT_EQ(gone.error.rfind("image server https://127.0.0.1:1, alias 'debian/12': ", 0), 0U) << gone.error;
}

TEST(ImageServer, ReadsAnLxdServersPublicAlias) {
  Served served{*generate_client_certificate({"lxd@test", 30}), {}};
  served.files["/1.0/images/aliases/alpine%2F3.19"] = {
      200, testing::sync_body({{"name", "alpine/3.19"}, {"target", fp('D')}, {"type", "container"}})};
  FakeServer server([&](const FakeRequest& r) { return served.answer(r); }, served.pem.certificate,
                    served.pem.private_key);
  auto image =
      read_server_image(query_for(server.url(), served.pem.certificate, "alpine/3.19", model::ImageProtocol::lxd), {});
  EXPECT_EQ(image.error, "");
  EXPECT_EQ(image.fingerprints, (std::map<std::string, std::string>{{"", fp('d')}}));
  EXPECT_EQ(model::fingerprint_for(image, "x86_64"), fp('d'));

  image = read_server_image(query_for(server.url(), served.pem.certificate, "nope", model::ImageProtocol::lxd), {});
  EXPECT_NE(image.error.find("it has no public image alias 'nope'"), std::string::npos) << image.error;
}

}  // namespace
}  // namespace berth::lxd
