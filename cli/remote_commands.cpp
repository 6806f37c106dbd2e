// remote add, list, remove.

#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/terminal.hpp"
#include "engine/util/printable.hpp"
#include "providers/lxd/remote_add.hpp"
#include "providers/lxd/remote_store.hpp"

namespace berth::cli {

int run_remote_add(const GlobalOptions& global, const RemoteAddOptions& options) {
  lxd::AddRemoteRequest request;
  request.name = options.name;
  request.url = options.url;
  request.password = options.password;
  request.token = options.token;
  request.accept_certificate = options.accept_certificate;
  if (!options.accept_certificate && stdin_is_tty()) {
    request.confirm = [](std::string_view fingerprint) {
      std::cerr << "Certificate fingerprint: " << fingerprint << '\n';
      const auto answer = prompt("ok (y/n/[fingerprint])? ");
      return answer && (*answer == "y" || *answer == "Y" || *answer == fingerprint);
    };
  }
  if (!options.password && !options.token && stdin_is_tty()) {
    // As `lxc remote add`: ask for the secret only once the server turns out not to trust us. It is
    // asked inside add_remote, so it goes to the certificate confirmed above and to no other.
    request.ask_secret = [&options] {
      std::string question = "Admin password (or token) for ";
      question += util::printable(options.name);
      return read_secret(question + ": ");
    };
  }
  if (options.url.empty() && !options.token) {
    std::cerr << "berth: remote " << util::printable(options.name)
              << ": give a URL (https://host[:port] or unix:///path), "
              << "or a --token that carries the host's addresses\n";
    return exit_error;
  }

  const auto added = lxd::add_remote(lxd::ClientConfig{global.config_dir}, request);
  if (!added) {
    std::cerr << "berth: " << util::printable(added.error().message) << '\n';
    return exit_error;
  }
  std::cout << "Remote " << util::printable(added->name) << " added: " << util::printable(added->url);
  if (!added->fingerprint.empty()) std::cout << " (certificate sha256:" << util::printable(added->fingerprint) << ")";
  std::cout << '\n';
  return exit_ok;
}

int run_remote_list(const GlobalOptions& global, bool json) {
  const auto remotes = lxd::list_remotes(lxd::ClientConfig{global.config_dir});
  if (!remotes) {
    std::cerr << "berth: " << util::printable(remotes.error().message) << '\n';
    return exit_error;
  }
  if (json) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& r : *remotes) out[r.name] = {{"url", r.url}, {"fingerprint", r.fingerprint}};
    std::cout << util::json_text(nlohmann::json{{"remotes", out}}, 2) << '\n';
    return exit_ok;
  }
  if (remotes->empty()) {
    std::cout << "No remotes. Add one with `berth remote add NAME URL`.\n";
    return exit_ok;
  }
  // remotes.json is a file anyone with access to the config dir may have edited.
  std::size_t width = 4;
  for (const auto& r : *remotes) width = std::max(width, util::printable(r.name).size());
  std::cout << std::string("NAME") << std::string(width - 4 + 2, ' ') << "URL  FINGERPRINT\n";
  for (const auto& r : *remotes) {
    const std::string name = util::printable(r.name);
    std::cout << name << std::string(width - name.size() + 2, ' ') << util::printable(r.url) << "  "
              << (r.fingerprint.empty() ? "-" : util::printable(r.fingerprint.substr(0, 12))) << '\n';
  }
  return exit_ok;
}

int run_remote_remove(const GlobalOptions& global, const std::string& name) {
  const auto removed = lxd::remove_remote(lxd::ClientConfig{global.config_dir}, name);
  if (!removed) {
    std::cerr << "berth: " << util::printable(removed.error().message) << '\n';
    return exit_error;
  }
  std::cout << "Remote " << util::printable(name) << " removed.\n";
  return exit_ok;
}

}  // namespace berth::cli
