#pragma once
// Text that must never leave the process: a private key's PEM. It cannot be copied (so there is
// one copy to account for), has no stream output (so it cannot reach a message by accident), and
// its bytes are wiped when it is destroyed. Read it with view() only to hand it to OpenSSL.

#include <string>
#include <string_view>

namespace berth::lxd {

class SecretText {
 public:
  SecretText() = default;
  explicit SecretText(std::string text) : text_(std::move(text)) {}
  SecretText(SecretText&& other) noexcept { text_.swap(other.text_); }
  SecretText& operator=(SecretText&& other) noexcept;
  SecretText(const SecretText&) = delete;
  SecretText& operator=(const SecretText&) = delete;
  ~SecretText();

  [[nodiscard]] std::string_view view() const { return text_; }
  [[nodiscard]] bool empty() const { return text_.empty(); }

 private:
  void wipe();

  std::string text_;
};

}  // namespace berth::lxd
