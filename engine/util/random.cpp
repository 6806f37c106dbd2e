#include "engine/util/random.hpp"

#include <random>

namespace berth::util {

std::string random_hex(int digits) {
  std::random_device rd;
  std::uniform_int_distribution<unsigned> nibble(0, 15);
  std::string out;
  out.reserve(static_cast<std::size_t>(digits));
  for (int i = 0; i < digits; ++i) out += "0123456789abcdef"[nibble(rd)];
  return out;
}

}  // namespace berth::util
