#pragma once
// Opening a connection to a remote declared in a fleet file: unix:// directly; https:// with our
// client certificate (ClientConfig::identity, else the config dir's) and the server pinned by the
// fleet file's `fingerprint:` or by the certificate `berth remote add` stored under the same name.
// Either pin alone is enough; when both exist they must agree, or the remote is refused.

#include <string>

#include "engine/model/desired.hpp"
#include "providers/lxd/client.hpp"
#include "providers/lxd/client_config.hpp"
#include "providers/lxd/result.hpp"

namespace berth::lxd {

// The TLS options for an https remote. Errors are already prefixed with "remote <name>: ".
[[nodiscard]] Result<TlsOptions> tls_options_for(const ClientConfig& config, const model::RemoteSpec& remote);

// Connects (eagerly) to the remote. Errors are prefixed with "remote <name>: ".
[[nodiscard]] Result<Client> connect_remote(const ClientConfig& config, const model::RemoteSpec& remote,
                                            const Timeouts& timeouts = {});

// The message for a server that does not trust our client certificate, naming what to run.
[[nodiscard]] Error untrusted_error(const ClientConfig& config, const model::RemoteSpec& remote);

}  // namespace berth::lxd
