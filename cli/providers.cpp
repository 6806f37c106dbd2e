#include "cli/providers.hpp"

#include <iostream>

#include "engine/util/printable.hpp"
#include "providers/lxd/executor.hpp"
#include "providers/lxd/state_reader.hpp"

namespace berth::cli {

lxd::ClientConfig client_config(const GlobalOptions& global) {
  return lxd::ClientConfig{global.config_dir, global.client_identity};
}

LxdProviders::LxdProviders(const GlobalOptions& global, const util::InputLimits& limits) {
  const lxd::ClientConfig client = client_config(global);
  lxd::Timeouts bounds;
  bounds.max_response_bytes = limits.response_bytes;
  lxd::StateReaderOptions reading;
  reading.timeouts = bounds;
  lxd::ExecutorOptions executing;
  executing.timeouts = bounds;
  reader_ = lxd::make_state_reader(client, reading);
  recoverer_ = lxd::make_recoverer(client, executing);
  executor_ = lxd::make_executor(client, executing);
}

OpenedStore open_state(const std::filesystem::path& path, bool only_existing) {
  OpenedStore out;
  try {
    out.store = only_existing ? state::Store::open_existing(path) : state::Store::open(path);
  } catch (const state::StoreError& e) {
    std::cerr << "berth: " << util::printable(e.what()) << '\n';
    out.failed = true;
  }
  return out;
}

}  // namespace berth::cli
