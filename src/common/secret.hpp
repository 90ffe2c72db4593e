// A value that must never reach a log: tokens, client secrets, assertions, passwords.
#pragma once

#include <ostream>
#include <string>
#include <utility>

namespace tsign {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  // The only way to the value; grep for reveal() to audit where secrets go.
  const std::string& reveal() const noexcept { return value_; }
  bool empty() const noexcept { return value_.empty(); }
  friend std::ostream& operator<<(std::ostream& os, const Secret&) { return os << "***"; }

 private:
  std::string value_;
};

}  // namespace tsign
