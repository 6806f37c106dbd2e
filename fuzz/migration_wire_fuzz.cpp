// What a migration peer sends (lxd-protocol.md §4.3, docs/migration.md), as berthd reads it: a
// MigrationHeader (the source's offer or the target's answer) and a MigrationControl on the control
// channel, and the JSON header of btrfs subvolumes on the fs channel. Whatever the bytes, the result
// is a value or an error, never a crash or an exception; what reads comes back the same through
// encode and decode, and berthd's answer to a header (as a dir or a btrfs sink, new or refreshing),
// or its reading of it as an answer to its own offer (rsync or btrfs), is a value or an error too.
//
// Input: the first byte says which message the rest is (modulo 3: a header, a control message, a
// btrfs header).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>
#include <vector>

#include "daemon/migration/btrfs_header.hpp"
#include "daemon/migration/protocol.hpp"

namespace {

namespace mig = berth::daemon::migration;

void fail(const char* what) {
  std::fprintf(stderr, "migration_wire_fuzz: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 3 == 0) {
    const auto header = mig::decode_header(bytes);
    if (!header) return 0;
    const auto again = mig::decode_header(mig::encode_header(*header));
    if (!again) fail("a header that read does not read again once encoded");
    if (!(*again == *header)) fail("a header changed through encode and decode");
    static_cast<void>(mig::answer_offer(*header, {}));
    mig::SinkInput refreshing;
    refreshing.btrfs = true;
    refreshing.refresh = std::vector<mig::SinkInput::Local>{{"snap0", 1}, {"snap1", std::nullopt}};
    static_cast<void>(mig::answer_offer(*header, refreshing));
    static_cast<void>(mig::read_answer(mig::make_offer({}), *header));
    mig::OfferInput on_btrfs;
    on_btrfs.btrfs = true;
    static_cast<void>(mig::read_answer(mig::make_offer(on_btrfs), *header));
  } else if (data[0] % 3 == 2) {
    const auto subvolumes = mig::decode_btrfs_header(bytes);
    if (!subvolumes) return 0;
    const auto again = mig::decode_btrfs_header(mig::encode_btrfs_header(*subvolumes));
    if (!again || !(*again == *subvolumes)) fail("a btrfs header changed through encode and decode");
  } else {
    const auto control = mig::decode_control(bytes);
    if (!control) return 0;
    const auto again = mig::decode_control(mig::encode_control(*control));
    if (!again || again->success != control->success || again->message != control->message) {
      fail("a control message changed through encode and decode");
    }
  }
  return 0;
}
