// remote add, list, remove, import-lxc.

#include <algorithm>
#include <array>
#include <iostream>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/providers.hpp"
#include "cli/terminal.hpp"
#include "engine/config/url.hpp"
#include "engine/util/printable.hpp"
#include "providers/lxd/lxc_import.hpp"
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
      // The fingerprint in any spelling the fleet file takes (colons, sha256:, any case).
      return answer && (*answer == "y" || *answer == "Y" || config::normalize_fingerprint(*answer) == fingerprint);
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

  // With --client-cert/--client-key (or the environment), that certificate is the one the host
  // is asked to trust, and no client.crt/client.key is made.
  const auto added = lxd::add_remote(client_config(global), request);
  if (!added) {
    std::cerr << "berth: " << util::printable(added.error().message) << '\n';
    return exit_error;
  }
  std::cout << "Remote " << util::printable(added->name) << " added: " << util::printable(added->url);
  if (!added->fingerprint.empty()) std::cout << " (certificate sha256:" << util::printable(added->fingerprint) << ")";
  std::cout << '\n';
  return exit_ok;
}

int run_remote_list(const GlobalOptions& global, OutputFormat format) {
  const auto remotes = lxd::list_remotes(lxd::ClientConfig{global.config_dir});
  if (!remotes) {
    std::cerr << "berth: " << util::printable(remotes.error().message) << '\n';
    return exit_error;
  }
  if (format == OutputFormat::json) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& r : *remotes) out[r.name] = {{"url", r.url}, {"fingerprint", r.fingerprint}};
    std::cout << util::json_text(nlohmann::json{{"remotes", out}}, 2) << '\n';
    return exit_ok;
  }
  if (remotes->empty()) {
    std::cout << "No remotes. Add one with `berth remote add NAME URL`.\n";
    return exit_ok;
  }
  // remotes.json is a file anyone with access to the config dir may have edited: every cell is
  // escaped, and the columns are as wide as their widest escaped cell (names and URLs are ASCII).
  std::vector<std::array<std::string, 3>> rows{{"NAME", "URL", "FINGERPRINT"}};
  for (const auto& r : *remotes) {
    rows.push_back({util::printable(r.name), util::printable(r.url),
                    r.fingerprint.empty() ? "-" : util::printable(r.fingerprint.substr(0, 12))});
  }
  std::size_t name_width = 0;
  std::size_t url_width = 0;
  for (const auto& row : rows) {
    name_width = std::max(name_width, row[0].size());
    url_width = std::max(url_width, row[1].size());
  }
  for (const auto& row : rows) {
    std::cout << row[0] << std::string(name_width - row[0].size() + 2, ' ') << row[1]
              << std::string(url_width - row[1].size() + 2, ' ') << row[2] << '\n';
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

int run_remote_import_lxc(const GlobalOptions& global, const RemoteImportOptions& options) {
  // It installs lxc's certificate as the config dir's own: a certificate given from outside has no
  // part in that.
  const lxd::ClientConfig config{global.config_dir};
  lxd::LxcImportOptions request;
  request.from = options.from.empty() ? lxd::default_lxc_config_dir() : std::filesystem::path{options.from};
  request.force = options.force;
  request.replace_certificate = options.replace_certificate;
  request.dry_run = options.dry_run;
  request.default_sockets = lxd::default_lxd_sockets();
  const auto report = lxd::import_lxc(config, request);
  if (!report) {
    std::cerr << "berth: remote import-lxc: " << util::printable(report.error().message) << '\n';
    return exit_error;
  }
  const std::string from = util::printable(report->from.string());
  std::cout << (options.dry_run ? "Dry run: nothing is written. From " : "From ") << from << ":\n";
  std::size_t width = 0;
  for (const auto& r : report->remotes) width = std::max(width, util::printable(r.name).size());
  std::map<lxd::LxcImportOutcome, int> counts;
  for (const auto& r : report->remotes) {
    ++counts[r.outcome];
    const std::string name = util::printable(r.name);
    std::cout << "  " << lxd::to_string(r.outcome) << std::string(10 - lxd::to_string(r.outcome).size(), ' ') << name
              << std::string(width - name.size() + 2, ' ');
    switch (r.outcome) {
      case lxd::LxcImportOutcome::imported:
      case lxd::LxcImportOutcome::replaced:
      case lxd::LxcImportOutcome::unchanged:
        std::cout << util::printable(r.url);
        if (!r.fingerprint.empty()) std::cout << " (certificate sha256:" << util::printable(r.fingerprint) << ")";
        break;
      case lxd::LxcImportOutcome::skipped:
      case lxd::LxcImportOutcome::failed: std::cout << util::printable(r.reason); break;
    }
    std::cout << '\n';
  }
  const std::string fp = "sha256:" + report->certificate_fingerprint;
  switch (report->certificate) {
    case lxd::LxcCertificateOutcome::not_needed: break;
    case lxd::LxcCertificateOutcome::copied:
      std::cout << "Client certificate: lxc's (" << fp << ") copied to " << util::printable(config.config_dir.string())
                << " (client.crt, and client.key with mode 0600).\n";
      break;
    case lxd::LxcCertificateOutcome::same:
      std::cout << "Client certificate: berth already uses lxc's (" << fp << ").\n";
      break;
    case lxd::LxcCertificateOutcome::replaced:
      std::cout << "Client certificate: lxc's (" << fp
                << ") replaces berth's (sha256:" << util::printable(report->previous_fingerprint)
                << "), which is kept as client.crt.old and client.key.old.\n";
      break;
  }
  std::cout << counts[lxd::LxcImportOutcome::imported] << " imported, " << counts[lxd::LxcImportOutcome::replaced]
            << " replaced, " << counts[lxd::LxcImportOutcome::unchanged] << " unchanged, "
            << counts[lxd::LxcImportOutcome::skipped] << " skipped, " << counts[lxd::LxcImportOutcome::failed]
            << " failed.\n";
  return report->failed() ? exit_error : exit_ok;
}

}  // namespace berth::cli
