#pragma once
// What berth pushes into a container (files:) and runs in it (exec:), as digests: berth records the
// digest of each file it pushed and each command it ran on the instance (user.berth.files,
// user.berth.exec), and pushes or runs again what no longer matches. Files are never read back.
//
// A digest covers everything that makes the file or command what it is. A file's content from the
// environment (a secret) is digested with a key (HMAC-SHA256) kept in berth's config directory,
// so the record on the host says nothing about the secret; without the key its digest is unknown
// and the file is pushed again on every apply.

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "engine/model/desired.hpp"

namespace berth::model {

// The key for digests of secrets; unset when berth has none (then secrets have no digest).
using DigestKey = std::optional<std::string>;

// "sha256:<hex>" over mode, owner and content; "hmac-sha256:<hex>" for sensitive content with a
// key; nullopt for sensitive content without one.
[[nodiscard]] std::optional<std::string> file_digest(const FileSpec& file, const DigestKey& key);

// Over the command, its environment, cwd, uid, gid and the digests of the files it watches
// (`files` must be the container's declared files). Keyed when its environment holds a secret;
// nullopt when a part has no digest (a secret without a key, a watched file without a digest).
[[nodiscard]] std::optional<std::string> exec_digest(const ExecSpec& exec, const ContainerSpec& container,
                                                     const DigestKey& key);

// A record: path or name -> digest. In user.berth.exec, `pending` marks a `when: create` command
// of a container berth created that has not run yet.
using DigestRecord = std::map<std::string, std::string>;
inline constexpr std::string_view pending_digest = "pending";
// What is recorded for a file or command whose digest is unknown: never equal to a digest.
inline constexpr std::string_view unknown_digest = "unknown";

// Compact JSON with sorted keys, so equal records have equal text.
[[nodiscard]] std::string record_text(const DigestRecord& record);
// nullopt when the text is not a record berth wrote (damaged or edited by hand).
[[nodiscard]] std::optional<DigestRecord> parse_digest_record(std::string_view text);

// "sha256:0123456789ab" — enough of a digest for a plan line.
[[nodiscard]] std::string short_digest(std::string_view digest);

}  // namespace berth::model
