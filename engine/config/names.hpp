#pragma once
// Name rules of the fleet file, with the reason a name breaks them. The schema
// (schemas/berth.schema.json) states the same rules as patterns; these functions explain a
// failed pattern in words, and tests/unit/config/names_test.cpp keeps the two in agreement.

#include <optional>
#include <string>
#include <string_view>

namespace berth::config {

// LXD instance names (containers, and the fleet name, which lands in user.berth.fleet).
// LXD 5.0 lxd/instance/instance_utils.go ValidName(name, false) rejects the snapshot delimiter
// '/', then applies shared/validate/validate.go IsHostname: 1-63 characters, not starting with
// '-' or a digit, not ending with '-', only [-a-zA-Z0-9].
[[nodiscard]] std::optional<std::string> instance_name_problem(std::string_view name);

// LXD snapshot names. LXD 5.0 ValidName(name, true) rejects ' ' and '/' in the snapshot part, and
// the snapshot POST handler (lxd/instance_snapshot.go snapshotsPost) rejects '/'. berth is
// stricter so that names stay printable and usable as path components: 1-63 characters, no
// whitespace at all, not "." or "..".
[[nodiscard]] std::optional<std::string> snapshot_name_problem(std::string_view name);

// Profile names: the snapshot rules (no whitespace, no '/', not "." or "..", 1-63 characters).
[[nodiscard]] std::optional<std::string> profile_name_problem(std::string_view name);

// Remote names, everywhere berth meets one: the fleet file, `berth remote add`, `berth remote
// import-lxc` and the remote store, where a name is also a file name (servercerts/NAME.crt).
// 1-63 ASCII letters, digits, '.', '_' and '-', not starting with '.' or '-': `lxc` names
// remotes after their host (`lxc remote add lxd.example.com`), and a name that starts with '-'
// would read as an option on the command line.
[[nodiscard]] std::optional<std::string> remote_name_problem(std::string_view name);

// LXD project names. LXD 5.0 (lxd/api_project.go projectValidateName) refuses an empty name, '/',
// spaces, '_', quotes, "*", "." and "..". berth is stricter so that a project stays printable, needs
// no escaping in a query string and reads unambiguously in an address ("a:p/web"): 1-63 ASCII
// letters, digits, '.' and '-', not starting with '.' or '-'.
[[nodiscard]] std::optional<std::string> project_name_problem(std::string_view name);

// Names berth gives things (images, placement policies, anti-affinity groups): 1-63 ASCII letters,
// digits, '-' and '_'.
[[nodiscard]] std::optional<std::string> local_name_problem(std::string_view name);

// Label names (a remote's labels:, a placement's label selector): 1-63 ASCII letters, digits, '.',
// '_', '/' and '-', starting with a letter or a digit, so that "example.com/tier" is a name.
[[nodiscard]] std::optional<std::string> label_name_problem(std::string_view name);

// Image aliases: 1-255 characters, no whitespace, no ':' (it separates REMOTE:ALIAS).
[[nodiscard]] std::optional<std::string> alias_problem(std::string_view alias);

// Config keys: 1-255 characters without whitespace; volatile.* (LXD's) and user.berth.* (berth's
// ownership marks) may not be declared.
[[nodiscard]] std::optional<std::string> config_key_problem(std::string_view key);

// Device names (the rule of LXD shared/validate/validate.go IsDeviceName): 1-63 characters of [-a-zA-Z0-9_.:/], not
// starting with '.'.
[[nodiscard]] std::optional<std::string> device_name_problem(std::string_view name);

// Device options (type, path, pool...): 1-255 characters without whitespace.
[[nodiscard]] std::optional<std::string> device_key_problem(std::string_view key);

}  // namespace berth::config
