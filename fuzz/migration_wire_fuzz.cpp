// What a migration peer sends on the control channel (lxd-protocol.md §4.3), as berthd reads it:
// a MigrationHeader (the source's offer or the target's answer) and a MigrationControl. Whatever
// the bytes, the result is a value or an error, never a crash or an exception; a header that reads
// comes back the same through encode and decode, and berthd's answer to it, or its reading of it
// as an answer to its own offer, is a value or an error too.
//
// Input: the first byte says which message the rest is (even: a header, odd: a control message).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

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
  if (data[0] % 2 == 0) {
    const auto header = mig::decode_header(bytes);
    if (!header) return 0;
    const auto again = mig::decode_header(mig::encode_header(*header));
    if (!again) fail("a header that read does not read again once encoded");
    if (!(*again == *header)) fail("a header changed through encode and decode");
    static_cast<void>(mig::answer_offer(*header, false));
    static_cast<void>(mig::read_answer(mig::make_offer({}), *header));
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
