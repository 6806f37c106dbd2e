#include "providers/lxd/remote_store.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "providers/lxd/certificate.hpp"
#include "providers/lxd/fs_util.hpp"
#include "temp_dir.hpp"

namespace berth::lxd {
namespace {

class RemoteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pair = generate_client_certificate({"server@test", 30});
    ASSERT_TRUE(pair.ok());
    pem_ = pair->certificate;
    fp_ = *fingerprint_of_pem(pem_);
  }
  testing::TempDir tmp_;
  ClientConfig config_{tmp_.path() / "cfg"};
  std::string pem_;
  std::string fp_;
};

TEST_F(RemoteStoreTest, MissingFileIsEmpty) {
  auto store = RemoteStore::load(config_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_TRUE(store->list().empty());
  EXPECT_FALSE(store->find("foo").has_value());
}

TEST_F(RemoteStoreTest, RoundTrip) {
  {
    auto store = RemoteStore::load(config_);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE(store->add({"foo", "https://127.0.0.2:8443", fp_}, pem_).ok());
    ASSERT_TRUE(store->add({"local", "unix:///var/lib/lxd/unix.socket", ""}, "").ok());
  }
  auto store = RemoteStore::load(config_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  const auto all = store->list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "foo");
  EXPECT_EQ(all[1].name, "local");
  auto foo = store->find("foo");
  ASSERT_TRUE(foo.has_value());
  EXPECT_EQ(foo->url, "https://127.0.0.2:8443");
  EXPECT_EQ(foo->fingerprint, fp_);
  EXPECT_EQ(*fingerprint_of_pem_file(config_.server_certificate("foo")), fp_);

  // The file has the documented shape.
  auto text = detail::read_file(config_.remotes_file());
  ASSERT_TRUE(text.ok());
  const auto doc = nlohmann::json::parse(*text);
  EXPECT_EQ(doc["remotes"]["foo"]["url"], "https://127.0.0.2:8443");
  EXPECT_EQ(doc["remotes"]["foo"]["fingerprint"], fp_);
  EXPECT_FALSE(doc["remotes"]["local"].contains("fingerprint"));

  // No temp files left behind by the atomic writes.
  for (const auto& e : std::filesystem::directory_iterator(config_.config_dir)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  }
}

TEST_F(RemoteStoreTest, IdenticalAddIsANoOpDifferentIsAConflict) {
  auto store = RemoteStore::load(config_);
  ASSERT_TRUE(store->add({"foo", "https://127.0.0.2:8443", fp_}, pem_).ok());
  EXPECT_TRUE(store->add({"foo", "https://127.0.0.2:8443", fp_}, pem_).ok());
  auto clash = store->add({"foo", "https://127.0.0.3:8443", fp_}, pem_);
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.error().kind, ErrorKind::conflict);
  EXPECT_NE(clash.error().message.find("berth remote remove foo"), std::string::npos);
}

TEST_F(RemoteStoreTest, RefusesACertificateThatIsNotTheFingerprint) {
  auto store = RemoteStore::load(config_);
  auto r = store->add({"foo", "https://127.0.0.2:8443", std::string(64, 'a')}, pem_);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(std::filesystem::exists(config_.server_certificate("foo")));
}

TEST_F(RemoteStoreTest, RemoveDeletesEntryAndCertificate) {
  auto store = RemoteStore::load(config_);
  ASSERT_TRUE(store->add({"foo", "https://127.0.0.2:8443", fp_}, pem_).ok());
  ASSERT_TRUE(std::filesystem::exists(config_.server_certificate("foo")));
  ASSERT_TRUE(remove_remote(config_, "foo").ok());
  EXPECT_FALSE(std::filesystem::exists(config_.server_certificate("foo")));
  auto again = RemoteStore::load(config_);
  EXPECT_FALSE(again->find("foo").has_value());
  auto missing = remove_remote(config_, "foo");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind, ErrorKind::not_found);
}

TEST_F(RemoteStoreTest, NamesMustBeSafeFileNames) {
  auto store = RemoteStore::load(config_);
  for (const char* bad : {"", "../x", "..", ".hidden", "-flag", "a/b", "a b"}) {
    auto added = store->add({bad, "https://h:1", fp_}, pem_);
    ASSERT_FALSE(added.ok()) << bad;
    EXPECT_EQ(added.error().kind, ErrorKind::invalid_argument) << bad;
  }
  EXPECT_FALSE(store->add({std::string(64, 'a'), "https://h:1", fp_}, pem_).ok());
  EXPECT_TRUE(store->add({"host-1.example_a", "https://h:1", fp_}, pem_).ok());
  EXPECT_TRUE(std::filesystem::exists(config_.server_certificate("host-1.example_a")));
  // Nothing was written outside servercerts/.
  EXPECT_FALSE(std::filesystem::exists(config_.config_dir / "x.crt"));
}

TEST_F(RemoteStoreTest, AFileWithAnInvalidNameIsAnErrorNamingIt) {
  ASSERT_TRUE(detail::ensure_private_dir(config_.config_dir).ok());
  ASSERT_TRUE(
      detail::write_file_atomic(config_.remotes_file(), R"({"remotes":{"-x":{"url":"https://h:1"}}})", 0644).ok());
  auto store = RemoteStore::load(config_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("invalid remote name \"-x\""), std::string::npos) << store.error().message;
}

TEST_F(RemoteStoreTest, MalformedFileIsAnErrorNamingIt) {
  ASSERT_TRUE(detail::ensure_private_dir(config_.config_dir).ok());
  ASSERT_TRUE(detail::write_file_atomic(config_.remotes_file(), "{not json", 0644).ok());
  auto store = RemoteStore::load(config_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("remotes.json"), std::string::npos);

  ASSERT_TRUE(detail::write_file_atomic(config_.remotes_file(), R"({"remotes":{"foo":{}}})", 0644).ok());
  EXPECT_FALSE(RemoteStore::load(config_).ok());
}

}  // namespace
}  // namespace berth::lxd
