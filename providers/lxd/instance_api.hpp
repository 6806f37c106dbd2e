#pragma once
// The instance calls apply and recovery make against one remote, on top of Client: every error
// names the remote ("remote h2: ..."), every background operation is waited for.

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/model/desired.hpp"
#include "providers/lxd/client.hpp"
#include "providers/lxd/client_config.hpp"
#include "providers/lxd/operations.hpp"
#include "providers/lxd/result.hpp"
#include "providers/lxd/wire.hpp"

namespace berth::lxd {

// Set on a copy's or move's target from its creation until the transfer succeeded and (for a move)
// the target verified. A target that still carries it is half-done: recovery deletes it. Its value
// says where the data came from ("h1:c1").
using model::incomplete_key;

// A connected remote: the client and the names errors carry.
struct RemoteHandle {
  model::RemoteSpec spec;
  Client client;

  [[nodiscard]] const std::string& name() const { return spec.name; }
  [[nodiscard]] Error error(const Error& e) const;  // prefixes "remote <name>: " once
};

[[nodiscard]] Result<RemoteHandle> open_remote(const ClientConfig& config, const model::RemoteSpec& spec,
                                               const Timeouts& timeouts);

struct InstanceRead {
  wire::Instance instance;
  std::string etag;  // for If-Match
};

// GET /1.0/instances/<name>; nullopt if there is none.
[[nodiscard]] Result<std::optional<InstanceRead>> get_instance(RemoteHandle& r, const std::string& name);
// Snapshot names, oldest first (GET /1.0/instances/<name>/snapshots?recursion=1).
[[nodiscard]] Result<std::vector<std::string>> snapshot_names(RemoteHandle& r, const std::string& name);
// GET /1.0 environment (certificate, addresses, ...); an error unless the server trusts us.
[[nodiscard]] Result<wire::Environment> server_environment(RemoteHandle& r);

// The https URL another daemon reaches this remote at: its own URL if https, else the first of
// environment.addresses (a unix:// remote that listens on the network).
[[nodiscard]] Result<std::string> reachable_url(const model::RemoteSpec& spec, const wire::Environment& environment);

// Sends a request that answers with an operation and waits for it. A sync answer counts as done.
[[nodiscard]] Result<OperationStatus> call_and_wait(RemoteHandle& r, Method method, const std::string& target,
                                                    const std::optional<nlohmann::json>& body, const WaitOptions& wait,
                                                    const Headers& headers = {});

// PUT /1.0/instances/<name>/state {"action":..,"timeout":..,"force":..}.
[[nodiscard]] Result<void> change_state(RemoteHandle& r, const std::string& name, const std::string& action,
                                        int timeout_seconds, bool force, const WaitOptions& wait);

// Writes a file into the instance with the file API (POST /1.0/instances/<name>/files?path=...),
// creating missing parent directories (root-owned, 0755) as `lxc file push -p` does. Works on a
// stopped instance too.
[[nodiscard]] Result<void> push_file(RemoteHandle& r, const std::string& name, const model::FileSpec& file);

// What a command run with recorded output left: its exit code and (the end of) its output.
struct CommandResult {
  int exit_code = -1;
  std::string out;   // stdout, at most `max_output` bytes: the end of it when longer
  std::string err;   // stderr, likewise
  bool cut = false;  // some output was left out
};

// Runs a command without websockets (POST /1.0/instances/<name>/exec with record-output), waits
// for it, reads its recorded output and deletes the log files.
[[nodiscard]] Result<CommandResult> run_command(RemoteHandle& r, const std::string& name, const model::ExecSpec& exec,
                                                const WaitOptions& wait, std::size_t max_output);

// Operations on the remote that are still running and name the instance among their resources.
[[nodiscard]] Result<std::vector<OperationStatus>> running_operations_on(RemoteHandle& r, const std::string& name);

}  // namespace berth::lxd
