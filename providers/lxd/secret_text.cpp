#include "providers/lxd/secret_text.hpp"

#include <openssl/crypto.h>

namespace berth::lxd {

SecretText& SecretText::operator=(SecretText&& other) noexcept {
  if (this != &other) {
    wipe();
    text_.swap(other.text_);
  }
  return *this;
}

SecretText::~SecretText() {
  wipe();
}

// OPENSSL_cleanse, unlike a loop or memset, is not optimised away before the free.
void SecretText::wipe() {
  if (!text_.empty()) OPENSSL_cleanse(text_.data(), text_.size());
  text_.clear();
}

}  // namespace berth::lxd
