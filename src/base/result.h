#pragma once
// Errors are values (STYLE.md rule 4): Result<T> is std::expected<T, Error>.
//
// clang 14 (used only for the libFuzzer build) cannot instantiate libstdc++ 12's
// std::expected, so when <expected> does not provide it we fall back to a small
// equivalent with the subset of the interface this project uses.

#include <string>
#include <utility>
#include <version>

#if defined(__cpp_lib_expected)
#include <expected>
#else
#include <variant>
#endif

namespace taskmesh {

enum class ErrorCode {
  kInvalidArgument,  // outside input is malformed (→ HTTP 400)
  kNotFound,         // the named thing does not exist (→ 404)
  kConflict,         // a precondition such as a CAS index failed
  kTooLarge,         // a body or value over its limit (→ 413)
  kUnavailable,      // no leader, shutting down, peer unreachable (→ 500/503)
  kTimeout,          // a wait ran out
  kIo,               // a file or socket operation failed
  kInternal,         // a broken internal invariant reported as a value
};

struct Error {
  ErrorCode code;
  std::string message;
};

#if defined(__cpp_lib_expected)
template <typename T>
using Result = std::expected<T, Error>;
inline std::unexpected<Error> makeError(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}
inline std::unexpected<Error> makeError(Error error) {
  return std::unexpected<Error>(std::move(error));
}
#else
struct Unexpected {
  Error error;
};
inline Unexpected makeError(ErrorCode code, std::string message) {
  return Unexpected{Error{code, std::move(message)}};
}
inline Unexpected makeError(Error error) { return Unexpected{std::move(error)}; }
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}         // NOLINT
  Result(Unexpected e) : v_(std::in_place_index<1>, std::move(e.error)) {}  // NOLINT
  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Unexpected e) : err_(std::move(e.error)), ok_(false) {}  // NOLINT
  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return err_; }

 private:
  Error err_{};
  bool ok_ = true;
};
#endif

}  // namespace taskmesh
