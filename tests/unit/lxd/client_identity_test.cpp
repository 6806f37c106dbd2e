// Where the client certificate comes from (select_client_identity): flags over environment over
// the config dir, both halves or neither, checked as a pair, the key never in a message.

#include <gtest/gtest.h>

#include <map>

#include "providers/lxd/certificate.hpp"
#include "providers/lxd/client_config.hpp"
#include "providers/lxd/fs_util.hpp"
#include "temp_dir.hpp"

namespace berth::lxd {
namespace {

class ClientIdentitySelection : public ::testing::Test {
 protected:
  void SetUp() override {
    auto a = generate_client_certificate({"a@test", 30});
    auto b = generate_client_certificate({"b@test", 30});
    ASSERT_TRUE(a.ok() && b.ok());
    a_ = *a;
    b_ = *b;
    a_fp_ = *fingerprint_of_pem(a_.certificate);
    b_fp_ = *fingerprint_of_pem(b_.certificate);
  }

  std::filesystem::path file(const std::string& name, const std::string& text) {
    const auto path = tmp_.path() / name;
    EXPECT_TRUE(detail::write_file_atomic(path, text, 0600).ok());
    return path;
  }

  // The sources with `env` as the whole environment.
  ClientIdentitySources with_env(std::map<std::string, std::string> env) {
    env_ = std::move(env);
    ClientIdentitySources sources;
    sources.getenv = [this](const char* name) -> const char* {
      const auto it = env_.find(name);
      return it == env_.end() ? nullptr : it->second.c_str();
    };
    return sources;
  }

  // No line of either key appears in `message`.
  void expect_no_key_text(const std::string& message) {
    for (const auto* key : {&a_.private_key, &b_.private_key}) {
      std::size_t start = 0;
      while (start < key->size()) {
        const auto end = std::min(key->find('\n', start), key->size());
        const std::string line = key->substr(start, end - start);
        if (line.find("-----") == std::string::npos && !line.empty()) {
          EXPECT_EQ(message.find(line), std::string::npos) << "a line of a private key is in the message";
        }
        start = end + 1;
      }
    }
  }

  testing::TempDir tmp_;
  PemPair a_;
  PemPair b_;
  std::string a_fp_;
  std::string b_fp_;
  std::map<std::string, std::string> env_;
};

TEST_F(ClientIdentitySelection, NothingGivenLeavesItToTheConfigDir) {
  auto selected = select_client_identity(with_env({{"HOME", "/root"}}));
  ASSERT_TRUE(selected.ok()) << selected.error().message;
  EXPECT_EQ(*selected, nullptr);
  // Empty variables are not given.
  selected = select_client_identity(with_env({{"BERTH_CLIENT_CERT", ""}, {"BERTH_CLIENT_KEY", ""}}));
  ASSERT_TRUE(selected.ok()) << selected.error().message;
  EXPECT_EQ(*selected, nullptr);
}

TEST_F(ClientIdentitySelection, FilesFromTheFlags) {
  auto sources = with_env({});
  sources.certificate_file = file("a.crt", a_.certificate);
  sources.key_file = file("a.key", a_.private_key);
  auto selected = select_client_identity(sources);
  ASSERT_TRUE(selected.ok()) << selected.error().message;
  ASSERT_NE(*selected, nullptr);
  EXPECT_EQ((*selected)->fingerprint, a_fp_);
  EXPECT_EQ((*selected)->certificate->certificate_pem, a_.certificate);
  EXPECT_EQ((*selected)->certificate->key_pem.view(), a_.private_key);
  EXPECT_EQ((*selected)->certificate->source, "--client-cert " + (tmp_.path() / "a.crt").string() +
                                                  " and --client-key " + (tmp_.path() / "a.key").string());
}

TEST_F(ClientIdentitySelection, PemTextFromTheEnvironment) {
  auto selected =
      select_client_identity(with_env({{"BERTH_CLIENT_CERT", a_.certificate}, {"BERTH_CLIENT_KEY", a_.private_key}}));
  ASSERT_TRUE(selected.ok()) << selected.error().message;
  ASSERT_NE(*selected, nullptr);
  EXPECT_EQ((*selected)->fingerprint, a_fp_);
  EXPECT_EQ((*selected)->certificate->source, "BERTH_CLIENT_CERT and BERTH_CLIENT_KEY");
}

TEST_F(ClientIdentitySelection, FlagsWinOverTheEnvironment) {
  auto sources = with_env({{"BERTH_CLIENT_CERT", b_.certificate}, {"BERTH_CLIENT_KEY", b_.private_key}});
  sources.certificate_file = file("a.crt", a_.certificate);
  sources.key_file = file("a.key", a_.private_key);
  auto selected = select_client_identity(sources);
  ASSERT_TRUE(selected.ok()) << selected.error().message;
  EXPECT_EQ((*selected)->fingerprint, a_fp_);
}

TEST_F(ClientIdentitySelection, OneHalfAloneIsAnError) {
  auto sources = with_env({{"BERTH_CLIENT_CERT", b_.certificate}, {"BERTH_CLIENT_KEY", b_.private_key}});
  sources.certificate_file = file("a.crt", a_.certificate);
  auto selected = select_client_identity(sources);
  ASSERT_FALSE(selected.ok()) << "a complete environment does not fill in a missing flag";
  EXPECT_EQ(selected.error().message,
            "--client-cert is given without --client-key: give both (the certificate and its private key) or neither");

  sources = with_env({});
  sources.key_file = file("a.key", a_.private_key);
  selected = select_client_identity(sources);
  ASSERT_FALSE(selected.ok());
  EXPECT_EQ(selected.error().message.rfind("--client-key is given without --client-cert", 0), 0u);

  selected = select_client_identity(with_env({{"BERTH_CLIENT_KEY", a_.private_key}}));
  ASSERT_FALSE(selected.ok());
  EXPECT_EQ(selected.error().message.rfind("BERTH_CLIENT_KEY is set but BERTH_CLIENT_CERT is not", 0), 0u)
      << selected.error().message;
  expect_no_key_text(selected.error().message);
}

TEST_F(ClientIdentitySelection, KeyOfAnotherCertificateIsRefusedWithoutQuotingIt) {
  auto selected =
      select_client_identity(with_env({{"BERTH_CLIENT_CERT", a_.certificate}, {"BERTH_CLIENT_KEY", b_.private_key}}));
  ASSERT_FALSE(selected.ok());
  EXPECT_EQ(selected.error().message,
            "client certificate from BERTH_CLIENT_CERT and BERTH_CLIENT_KEY: the private key is not the certificate's");
  expect_no_key_text(selected.error().message);

  auto sources = with_env({});
  sources.certificate_file = file("a.crt", a_.certificate);
  sources.key_file = file("b.key", b_.private_key);
  selected = select_client_identity(sources);
  ASSERT_FALSE(selected.ok());
  EXPECT_NE(selected.error().message.find("--client-key " + (tmp_.path() / "b.key").string()), std::string::npos);
  EXPECT_NE(selected.error().message.find("the private key is not the certificate's"), std::string::npos);
  expect_no_key_text(selected.error().message);
}

TEST_F(ClientIdentitySelection, NotPemIsRefused) {
  // A file name where the PEM text belongs.
  auto selected = select_client_identity(
      with_env({{"BERTH_CLIENT_CERT", "/etc/ci/client.crt"}, {"BERTH_CLIENT_KEY", "/etc/ci/client.key"}}));
  ASSERT_FALSE(selected.ok());
  EXPECT_EQ(selected.error().message,
            "client certificate from BERTH_CLIENT_CERT and BERTH_CLIENT_KEY: the certificate is not PEM (the "
            "variables hold the PEM text itself, not file names; give files with --client-cert and --client-key)");

  // The halves swapped.
  selected =
      select_client_identity(with_env({{"BERTH_CLIENT_CERT", a_.private_key}, {"BERTH_CLIENT_KEY", a_.certificate}}));
  ASSERT_FALSE(selected.ok());
  EXPECT_NE(selected.error().message.find("the certificate is not a PEM certificate"), std::string::npos)
      << selected.error().message;
  expect_no_key_text(selected.error().message);

  // A damaged key.
  std::string damaged = a_.private_key;
  damaged.replace(damaged.find('\n') + 1, 20, std::string(20, '!'));
  auto sources = with_env({});
  sources.certificate_file = file("a.crt", a_.certificate);
  sources.key_file = file("a.key", damaged);
  selected = select_client_identity(sources);
  ASSERT_FALSE(selected.ok());
  EXPECT_NE(selected.error().message.find("the private key is not a PEM private key"), std::string::npos)
      << selected.error().message;
  expect_no_key_text(selected.error().message);

  // A key protected by a passphrase.
  sources.key_file =
      file("enc.key", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n");
  selected = select_client_identity(sources);
  ASSERT_FALSE(selected.ok());
  EXPECT_NE(selected.error().message.find("protected by a passphrase"), std::string::npos);

  // Missing files and directories.
  sources.key_file = tmp_.path() / "none.key";
  selected = select_client_identity(sources);
  ASSERT_FALSE(selected.ok());
  EXPECT_EQ(selected.error().message, "--client-key " + (tmp_.path() / "none.key").string() + ": no such file");
  sources.key_file = tmp_.path();
  selected = select_client_identity(sources);
  ASSERT_FALSE(selected.ok());
  EXPECT_EQ(selected.error().message, "--client-key " + tmp_.path().string() + ": a directory, not a PEM file");
}

TEST_F(ClientIdentitySelection, GivenIdentityLeavesTheConfigDirAlone) {
  auto selected =
      select_client_identity(with_env({{"BERTH_CLIENT_CERT", a_.certificate}, {"BERTH_CLIENT_KEY", a_.private_key}}));
  ASSERT_TRUE(selected.ok() && *selected);
  const ClientConfig config{tmp_.path() / "cfg", *selected};
  auto loaded = load_client_identity(config);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->fingerprint, a_fp_);
  auto ensured = ensure_client_identity(config);  // what `remote add` asks for: no generation
  ASSERT_TRUE(ensured.ok());
  EXPECT_EQ(ensured->fingerprint, a_fp_);
  EXPECT_FALSE(std::filesystem::exists(config.config_dir));
}

TEST(SecretText, MovesWithoutCopying) {
  SecretText a{std::string(100, 'k')};
  SecretText b{std::move(a)};
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  EXPECT_EQ(b.view(), std::string(100, 'k'));
  SecretText c;
  c = std::move(b);
  EXPECT_EQ(c.view(), std::string(100, 'k'));
}

}  // namespace
}  // namespace berth::lxd
