#pragma once
// The one place the CLI picks its provider (LXD) and opens the state file, for every verb that
// goes through the apply pipeline (plan, apply, destroy).

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "cli/commands.hpp"
#include "engine/apply/pipeline.hpp"
#include "engine/state/store.hpp"
#include "providers/lxd/client_config.hpp"
#include "providers/provider.hpp"

namespace berth::cli {

// The client configuration every command that talks to hosts uses: the config dir, and the client
// certificate given on the command line or in the environment, if any.
[[nodiscard]] lxd::ClientConfig client_config(const GlobalOptions& global);

class LxdProviders {
 public:
  // Every connection is bounded by `limits.response_bytes` per answer.
  LxdProviders(const GlobalOptions& global, const util::InputLimits& limits);
  [[nodiscard]] apply::Providers view() const {
    return {reader_.get(), recoverer_.get(), executor_.get(), locker_.get()};
  }
  [[nodiscard]] providers::HostLocker& locker() const { return *locker_; }

 private:
  std::unique_ptr<providers::StateReader> reader_;
  std::unique_ptr<providers::Recoverer> recoverer_;
  std::unique_ptr<providers::ActionExecutor> executor_;
  std::unique_ptr<providers::HostLocker> locker_;
};

// Who holds the hosts' locks, as other runs show it: "berth apply, root@runner-7, pid 4242".
[[nodiscard]] std::string host_lock_holder(std::string_view command);
// "h1 is locked by berth apply, root@runner-7, pid 4242 (since ..., until ...)".
[[nodiscard]] std::string describe_host_lock(const providers::HostLockInfo& lock);

// Opens the state file, printing why on stderr when it cannot be; nullptr then. With
// `only_existing` a missing file is not an error: readers never create it (nullptr, no message).
struct OpenedStore {
  std::unique_ptr<state::Store> store;
  bool failed = false;
};
[[nodiscard]] OpenedStore open_state(const std::filesystem::path& path, bool only_existing);

}  // namespace berth::cli
