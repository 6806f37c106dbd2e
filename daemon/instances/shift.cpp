#include "daemon/instances/shift.hpp"

#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

namespace berth::daemon {
namespace {

using lxd::ErrorKind;
using lxd::make_error;

std::string errno_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

// Host id -> host id through the container's view; nullopt when either map misses it.
std::optional<std::int64_t> remap(const Idmap& from, const Idmap& to, std::int64_t id, bool uid) {
  static const Idmap identity = identity_idmap();
  const Idmap& src = from.empty() ? identity : from;
  const Idmap& dst = to.empty() ? identity : to;
  const auto ns = uid ? unshift_uid(src, id) : unshift_gid(src, id);
  if (!ns) return std::nullopt;
  return uid ? shift_uid(dst, *ns) : shift_gid(dst, *ns);
}

// The kernel's xattr form of a POSIX ACL: a 4-byte version (2), then 8-byte entries
// {u16 tag, u16 perm, u32 id}; only ACL_USER (0x02) and ACL_GROUP (0x08) entries carry an id.
constexpr std::uint32_t acl_xattr_version = 2;
constexpr std::uint16_t acl_user = 0x02;
constexpr std::uint16_t acl_group = 0x08;

void shift_acl(const std::filesystem::path& p, const char* name, const Idmap& from, const Idmap& to) {
  const ssize_t size = ::lgetxattr(p.c_str(), name, nullptr, 0);
  if (size < 4) return;  // none, no ACL support, or not an ACL
  std::vector<unsigned char> buf(static_cast<std::size_t>(size));
  const ssize_t got = ::lgetxattr(p.c_str(), name, buf.data(), buf.size());
  if (got != size || (buf.size() - 4) % 8 != 0) return;
  std::uint32_t version = 0;
  std::memcpy(&version, buf.data(), 4);
  if (version != acl_xattr_version) return;
  bool changed = false;
  for (std::size_t off = 4; off + 8 <= buf.size(); off += 8) {
    std::uint16_t tag = 0;
    std::uint32_t id = 0;
    std::memcpy(&tag, buf.data() + off, 2);
    std::memcpy(&id, buf.data() + off + 4, 4);
    if (tag != acl_user && tag != acl_group) continue;
    const auto shifted = remap(from, to, id, tag == acl_user);
    if (!shifted || *shifted == id) continue;
    const auto new_id = static_cast<std::uint32_t>(*shifted);
    std::memcpy(buf.data() + off + 4, &new_id, 4);
    changed = true;
  }
  if (changed) (void)::lsetxattr(p.c_str(), name, buf.data(), buf.size(), 0);
}

Result<void> shift_one(const std::filesystem::path& p, const Idmap& from, const Idmap& to, ShiftStats& stats) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) {
    return make_error(ErrorKind::io, "shift " + p.string() + ": " + errno_text(errno));
  }
  ++stats.entries;
  const auto uid = remap(from, to, st.st_uid, true);
  const auto gid = remap(from, to, st.st_gid, false);
  if (!uid || !gid) {
    ++stats.unmapped;
    return {};
  }
  if (*uid != st.st_uid || *gid != st.st_gid) {
    if (::lchown(p.c_str(), static_cast<uid_t>(*uid), static_cast<gid_t>(*gid)) != 0) {
      return make_error(ErrorKind::io, "shift " + p.string() + ": chown: " + errno_text(errno));
    }
    // chown drops setuid and setgid on executables; a shifted /usr/bin/passwd must stay setuid.
    if (!S_ISLNK(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID)) != 0 &&
        ::chmod(p.c_str(), st.st_mode & 07777) != 0) {
      return make_error(ErrorKind::io, "shift " + p.string() + ": chmod: " + errno_text(errno));
    }
  }
  if (!S_ISLNK(st.st_mode)) {
    shift_acl(p, "system.posix_acl_access", from, to);
    if (S_ISDIR(st.st_mode)) shift_acl(p, "system.posix_acl_default", from, to);
  }
  return {};
}

}  // namespace

Result<ShiftStats> shift_tree(const std::filesystem::path& root, const Idmap& from, const Idmap& to) {
  ShiftStats stats;
  if (auto r = shift_one(root, from, to, stats); !r) return r.error();
  std::error_code ec;
  // Symlinks are entries here, never followed: a container's rootfs may point anywhere on the host.
  std::filesystem::recursive_directory_iterator it(root, std::filesystem::directory_options::none, ec);
  for (; !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (auto r = shift_one(it->path(), from, to, stats); !r) return r.error();
  }
  if (ec) return make_error(ErrorKind::io, "shift " + root.string() + ": " + ec.message());
  return stats;
}

}  // namespace berth::daemon
