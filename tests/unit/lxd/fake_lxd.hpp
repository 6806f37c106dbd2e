#pragma once
// A fake LXD daemon built on FakeServer: a trust store keyed by client certificate fingerprint,
// a trust password, certificate add tokens, canned instance and volume listings and host resources.

#include <mutex>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "fake_server.hpp"
#include "lxd_fixtures.hpp"
#include "providers/lxd/certificate.hpp"
#include "providers/lxd/client_config.hpp"
#include "temp_dir.hpp"

namespace berth::lxd::testing {

class FakeLxd {
 public:
  std::string trust_password = "sekret";
  std::string token_secret;  // accepted once in place of the password
  bool unix_socket = false;  // everything is trusted over the socket, as in LXD
  nlohmann::json instances = instances_fixture();
  nlohmann::json volumes = volumes_fixture();
  nlohmann::json resources = resources_fixture();

  FakeResponse handle(const FakeRequest& r) {
    std::lock_guard lock(mu_);
    const bool trusted = unix_socket || trusted_.count(r.peer_fingerprint) > 0;
    if (r.method == "GET" && r.target == "/") return {200, sync_body(nlohmann::json::array({"/1.0"}))};
    if (r.method == "GET" && r.target == "/1.0") {
      nlohmann::json md = {{"api_version", "1.0"},
                           {"auth", trusted ? "trusted" : "untrusted"},
                           {"public", false},
                           {"auth_methods", {"tls"}}};
      if (trusted) md["environment"] = {{"server_version", "5.0.2"}, {"server_name", "fake"}};
      return {200, sync_body(md)};
    }
    if (r.method == "POST" && r.target == "/1.0/certificates") {
      const auto body = nlohmann::json::parse(r.body, nullptr, false);
      const std::string pw = body.is_object() ? body.value("password", "") : "";
      if (r.peer_fingerprint.empty()) return error_response(403, "not authorized");
      if (!pw.empty() && (pw == trust_password || (!token_secret.empty() && pw == token_secret))) {
        if (pw == token_secret) token_secret.clear();  // single use
        trusted_.insert(r.peer_fingerprint);
        return {201, sync_body(nullptr)};
      }
      return error_response(403, "not authorized");
    }
    if (!trusted) return error_response(403, "not authorized");
    if (r.target == "/1.0/instances?recursion=1") return {200, sync_body(instances)};
    if (r.target == "/1.0/storage-pools")
      return {200, sync_body(nlohmann::json::array({"/1.0/storage-pools/default"}))};
    if (r.target == "/1.0/storage-pools/default/volumes?recursion=1") return {200, sync_body(volumes)};
    if (r.target == "/1.0/resources") return {200, sync_body(resources)};
    if (r.target == "/1.0/images/aliases?recursion=1") {
      return {200, sync_body(nlohmann::json::array({{{"name", "bb"}, {"target", "abc"}}}))};
    }
    if (r.target == "/1.0/instances/c1/snapshots?recursion=1") {
      return {200, sync_body(nlohmann::json::array({{{"name", "snap1"}, {"created_at", "2026-01-01T00:00:00Z"}},
                                                    {{"name", "snap0"}, {"created_at", "2026-01-02T00:00:00Z"}}}))};
    }
    if (r.target == "/1.0/instances/c2/snapshots?recursion=1") {
      return {200, sync_body(nlohmann::json::array({{{"name", "zz"}, {"created_at", "2026-01-01T00:00:00Z"}},
                                                    {{"name", "aa"}, {"created_at", "2026-01-02T00:00:00Z"}}}))};
    }
    return error_response(404, "not found");
  }

  void trust(const std::string& fingerprint) {
    std::lock_guard lock(mu_);
    trusted_.insert(fingerprint);
  }

 private:
  std::mutex mu_;
  std::set<std::string> trusted_;
};

// A fixture with a FakeLxd behind HTTPS, on a fresh self-signed server certificate, and a client
// config dir in a temporary directory.
class FakeTlsLxdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pem = generate_client_certificate({"server@test", 30});
    ASSERT_TRUE(pem.ok());
    server_pem_ = *pem;
    server_fp_ = *fingerprint_of_pem(pem->certificate);
    server_ = std::make_unique<FakeServer>([this](const FakeRequest& r) { return lxd_.handle(r); },
                                           server_pem_.certificate, server_pem_.private_key);
  }

  TempDir tmp_;
  ClientConfig config_{tmp_.path() / "cfg"};
  FakeLxd lxd_;
  PemPair server_pem_;
  std::string server_fp_;
  std::unique_ptr<FakeServer> server_;
};

}  // namespace berth::lxd::testing
