#pragma once
// Expected failures of I/O are values (tier two of the error model): every fallible call in
// providers/lxd returns Result<T>. Exceptions stay reserved for bugs.
//
// Error::message is written for a user: it says what failed and where, and it never contains a
// password, a token or a private key. Callers prefix it with the remote's name ("remote foo: ...").

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace berth::lxd {

enum class ErrorKind {
  invalid_argument,      // bad URL, bad name, malformed token: the caller's input
  io,                    // local files: config dir, certificates, remotes.json
  connect,               // DNS, TCP or unix-socket connect failed
  timeout,               // connect or read took longer than allowed
  tls,                   // handshake failed for a reason other than the pin
  certificate_mismatch,  // the server's certificate is not the pinned one
  protocol,              // not HTTP, not JSON, not an LXD envelope
  server,                // an LXD error envelope; http_status and lxd_error are set
  not_trusted,           // the server does not trust our client certificate
  rejected,              // the user or a token's pin refused the server
  conflict,              // e.g. a remote of that name already exists
  not_found,
};

struct Error {
  ErrorKind kind = ErrorKind::io;
  std::string message;
  int http_status = 0;    // set for ErrorKind::server (and not_trusted when it came from a 403)
  std::string lxd_error;  // the envelope's "error" text, for ErrorKind::server
  // ErrorKind::certificate_mismatch: the fingerprint of the certificate the server presented instead.
  std::string presented_fingerprint;

  // A copy whose message names the remote it concerns.
  [[nodiscard]] Error for_remote(std::string_view remote) const {
    Error e = *this;
    e.message = "remote " + std::string{remote} + ": " + message;
    return e;
  }
};

[[nodiscard]] inline Error make_error(ErrorKind kind, std::string message) {
  return Error{kind, std::move(message), 0, {}, {}};
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit by design

  [[nodiscard]] bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  [[nodiscard]] T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  [[nodiscard]] const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  [[nodiscard]] T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  [[nodiscard]] const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design

  [[nodiscard]] bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  [[nodiscard]] const Error& error() const {
    assert(!ok());
    return *error_;
  }

 private:
  std::optional<Error> error_;
};

}  // namespace berth::lxd
