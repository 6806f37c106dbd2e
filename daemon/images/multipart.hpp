#pragma once
// The request side of `POST /1.0/images` beyond the raw body (lxd-protocol.md §3.9): a split
// image's multipart/form-data body, as `lxc image import META ROOTFS` sends it (parts "metadata"
// then "rootfs"; LXD's getImgPostInfo reads them so), and the X-LXD-properties header.
//
// Pure functions of their input files and strings; any thread.

#include <filesystem>
#include <map>
#include <string>
#include <utility>

#include "providers/lxd/result.hpp"

namespace berth::daemon {

// Splits a multipart/form-data body already on disk into the metadata and the rootfs tarballs,
// written byte for byte as new files in `dir` (named as uploads, so ImageStore::open() clears them
// after a crash). The boundary comes from `content_type` (the Content-Type header's value).
// invalid_argument saying what is wrong: no boundary, a part other than "metadata" then "rootfs"
// ("rootfs.img": virtual-machine images are refused), a missing closing boundary. On failure no
// file is left behind; `body` is never changed.
[[nodiscard]] lxd::Result<std::pair<std::filesystem::path, std::filesystem::path>> split_multipart(
    const std::filesystem::path& body, const std::string& content_type, const std::filesystem::path& dir);

// X-LXD-properties: url-encoded "k=v&k2=v2" ('+' is a space; the first value of a name wins, as
// LXD takes it). invalid_argument for a bad %-escape, a ';' separator or an empty name.
[[nodiscard]] lxd::Result<std::map<std::string, std::string>> parse_properties_header(const std::string& value);

}  // namespace berth::daemon
