#include "cli/providers.hpp"

#include <iostream>

#include "providers/lxd/executor.hpp"
#include "providers/lxd/state_reader.hpp"

namespace berth::cli {

LxdProviders::LxdProviders(const GlobalOptions& global) {
  const lxd::ClientConfig client{global.config_dir};
  reader_ = lxd::make_state_reader(client);
  recoverer_ = lxd::make_recoverer(client);
  executor_ = lxd::make_executor(client);
}

OpenedStore open_state(const std::filesystem::path& path, bool only_existing) {
  OpenedStore out;
  try {
    out.store = only_existing ? state::Store::open_existing(path) : state::Store::open(path);
  } catch (const state::StoreError& e) {
    std::cerr << "berth: " << e.what() << '\n';
    out.failed = true;
  }
  return out;
}

}  // namespace berth::cli
