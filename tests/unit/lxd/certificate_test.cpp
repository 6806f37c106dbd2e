#include "providers/lxd/certificate.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/config/url.hpp"
#include "providers/lxd/client_config.hpp"
#include "providers/lxd/fs_util.hpp"
#include "temp_dir.hpp"

namespace berth::lxd {
namespace {

mode_t mode_of(const std::filesystem::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

TEST(Fingerprint, OfPemRejectsGarbage) {
  auto fp = fingerprint_of_pem("not a certificate");
  ASSERT_FALSE(fp.ok());
  EXPECT_EQ(fp.error().kind, ErrorKind::invalid_argument);
}

TEST(ClientCertificate, GeneratedOnFirstUseWithPrivateModes) {
  testing::TempDir tmp;
  const ClientConfig config{tmp.path() / "cfg"};
  auto none = load_client_identity(config);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().kind, ErrorKind::not_found);

  auto id = ensure_client_identity(config);
  ASSERT_TRUE(id.ok()) << id.error().message;
  ASSERT_NE(id->certificate, nullptr);
  EXPECT_EQ(id->certificate->source, "client.crt and client.key in " + config.config_dir.string());
  EXPECT_EQ(config::normalize_fingerprint(id->fingerprint), id->fingerprint);  // already in normal form
  EXPECT_EQ(mode_of(config.config_dir), 0700u);
  EXPECT_EQ(mode_of(config.client_key()), 0600u);
  EXPECT_EQ(mode_of(config.client_certificate()) & 0077u, 0044u);  // public; readable is fine

  auto pem = detail::read_file(config.client_certificate());
  ASSERT_TRUE(pem.ok());
  EXPECT_EQ(pem->rfind("-----BEGIN CERTIFICATE-----", 0), 0u);
  EXPECT_EQ(*fingerprint_of_pem(*pem), id->fingerprint);
  EXPECT_EQ(id->certificate->certificate_pem, *pem);
  auto key = detail::read_file(config.client_key());
  ASSERT_TRUE(key.ok());
  EXPECT_NE(key->find("PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(id->certificate->key_pem.view(), *key);

  // Second use: the same identity, not a new one.
  auto again = ensure_client_identity(config);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->fingerprint, id->fingerprint);
}

TEST(ClientCertificate, GeneratedCertificatesDiffer) {
  auto a = generate_client_certificate({"berth@test", 1});
  auto b = generate_client_certificate({"berth@test", 1});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*fingerprint_of_pem(a->certificate), *fingerprint_of_pem(b->certificate));
}

TEST(ClientConfigDir, DefaultFollowsTheEnvironment) {
  const char* old = std::getenv("BERTH_CONFIG_DIR");
  const std::string saved = old ? old : "";
  ::setenv("BERTH_CONFIG_DIR", "/tmp/berth-x", 1);
  EXPECT_EQ(default_config_dir(), "/tmp/berth-x");
  ::unsetenv("BERTH_CONFIG_DIR");
  const char* old_xdg = std::getenv("XDG_CONFIG_HOME");
  const std::string saved_xdg = old_xdg ? old_xdg : "";
  ::unsetenv("XDG_CONFIG_HOME");
  EXPECT_EQ(default_config_dir().filename(), "berth");
  EXPECT_EQ(default_config_dir().parent_path().filename(), ".config");
  if (old) ::setenv("BERTH_CONFIG_DIR", saved.c_str(), 1);
  if (old_xdg) ::setenv("XDG_CONFIG_HOME", saved_xdg.c_str(), 1);
}

}  // namespace
}  // namespace berth::lxd
