#pragma once
// Images from another server (lxd-protocol.md §3.2): what `POST /1.0/images` (lxc image copy) and
// `POST /1.0/instances` (a launch from another remote's image) name with a source
// {"type":"image","mode":"pull","server":...}. berthd reads the image from that LXD-style server as
// an untrusted client, as LXD's ImageDownload does: the alias (public images), the image object
// (with the one-time `secret` a private image needs), then its export; the server is pinned to the
// certificate the request carries. The files go into the ImageStore checked against the
// fingerprint the server reported.
//
// Any thread (a task's worker). The download is held in memory up to the store's upload limit and
// then written out, as an upload is.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "daemon/images/image_store.hpp"
#include "providers/lxd/result.hpp"

namespace berth::daemon {

struct PullSource {
  std::string server;       // https://host:port
  std::string fingerprint;  // a full fingerprint or a prefix ...
  std::string alias;        // ... or a public image's alias
  std::string secret;       // from POST /1.0/images/FP/secret on the server; never logged
  std::string certificate;  // the PEM the server must present; empty: verified against the system's CAs
};

// The request's `source` object, checked: invalid_argument naming what is wrong (a protocol other
// than "lxd", no server, neither fingerprint nor alias, a secret that is not a plain token).
[[nodiscard]] lxd::Result<PullSource> parse_pull_source(const nlohmann::json& source);

struct PullLimits {
  std::uint64_t max_bytes = std::uint64_t{1} << 30;  // the export's size
  std::chrono::milliseconds connect{10'000};
  std::chrono::milliseconds transfer{std::chrono::minutes{30}};  // one request and its whole answer
};

struct PulledImage {
  std::string fingerprint;
  nlohmann::json info;                // the image object the server sent
  std::optional<StoredImage> stored;  // what was imported; nullopt when `have` said it is here
};

// Downloads the image into `store` unless `have(fingerprint)` says it is here already. Errors name
// the server and what it answered, never the secret.
[[nodiscard]] lxd::Result<PulledImage> pull_image(ImageStore& store, const PullSource& source,
                                                  const std::function<bool(const std::string&)>& have,
                                                  const PullLimits& limits = {});

}  // namespace berth::daemon
