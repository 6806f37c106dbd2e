#pragma once
// `berth remote add` as a library call: the same flow as `lxc remote add` (lxd-protocol.md §2.5).
//
//   1. fetch the server's certificate without verification (TLS handshake + GET /),
//   2. pin it: a token's fingerprint must match, otherwise the user confirms the fingerprint
//      (or accept_certificate says they already did),
//   3. GET /1.0 with our client certificate over the pinned connection; if not trusted yet,
//      POST /1.0/certificates with the trust password or the token, then GET /1.0 must say trusted,
//   4. record the remote and its certificate in the config dir.
//
// The certificate is fetched once per call. Every later connection of the call (including a
// reconnect after the server closed an idle one) is pinned inside the TLS handshake to the
// fingerprint decided in step 2, so the password or token only ever reaches the server whose
// certificate the user confirmed, accepted, or the token names; a server that presents another
// certificate later ends the call with ErrorKind::certificate_mismatch.
//
// Nothing is written unless every step succeeded (but the client's own certificate, generated on
// first use as `lxc` does). Passwords and tokens never appear in an error message, a log line or a file.

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "providers/lxd/client.hpp"
#include "providers/lxd/client_config.hpp"
#include "providers/lxd/remote_store.hpp"
#include "providers/lxd/result.hpp"

namespace berth::lxd {

struct AddRemoteRequest {
  std::string name;
  // https://host[:port], host[:port] or unix:///path. May be empty when `token` is given: the token's
  // addresses are tried in order.
  std::string url;
  std::optional<std::string> password;  // the server's core.trust_password
  std::optional<std::string> token;     // from `lxc config trust add`; pins the server by itself
  bool accept_certificate = false;      // --accept-certificate: skip `confirm`
  // Shown the server's sha256 fingerprint; returns true to pin it. Not called when a token pins the
  // server or accept_certificate is set. Unset and needed: the call fails, telling the user what to pass.
  std::function<bool(std::string_view fingerprint)> confirm;
  // Asked for the trust password (or a token) only when neither is given and the server turns out
  // not to trust us, as `lxc remote add` does; the answer goes over the connection pinned in step 2.
  // Unset, or nullopt returned: the call fails with ErrorKind::not_trusted.
  std::function<std::optional<std::string>()> ask_secret;
  Timeouts timeouts;
};

// Errors name the remote and say what to do, e.g.
//   "remote foo: the server refused the trust password or token (403)"
//   "remote foo: cannot connect to https://127.0.0.2:8443: Connection refused"
//   "remote foo: the server presented a different certificate (sha256:…) than the one confirmed
//    (sha256:…); nothing was sent or saved"
[[nodiscard]] Result<StoredRemote> add_remote(const ClientConfig& config, const AddRemoteRequest& request);

}  // namespace berth::lxd
