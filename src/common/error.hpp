// Errors as values a user can act on: every error carries the exit code of interface.md.
#pragma once

#include <stdexcept>
#include <string>

namespace tsign {

// Exit codes of interface.md ("Exit codes").
enum class ExitCode : int {
  ok = 0,
  file_failed = 1,  // at least one file failed; the others were signed
  input = 2,        // invalid input or configuration; nothing was signed
  auth = 3,         // no credential, or the service refused the identity
  deadline = 4,     // the run's deadline passed
  budget = 5,       // the signature budget (max-signatures) was reached; files past it unsigned
  // 128 + N: interrupted by signal N (130 Ctrl-C, 143 SIGTERM), as shells report a process the
  // signal ended; the files in flight were finished first. See interrupted_by().
  interrupted_sigint = 130,
  interrupted_sigterm = 143,
};

// The exit code of a run interrupted by signal `signo` (128 + N, the shells' convention).
constexpr ExitCode interrupted_by(int signo) {
  return static_cast<ExitCode>(128 + signo);
}

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const noexcept { return code_; }

 private:
  ExitCode code_;
};

// Bad options or configuration (exit 2).
struct InputError : Error {
  explicit InputError(const std::string& m) : Error(ExitCode::input, m) {}
};
// One file could not be signed or verified (exit 1 at the end of the run).
struct FileError : Error {
  explicit FileError(const std::string& m) : Error(ExitCode::file_failed, m) {}
};
// No token, or 401/403 from the service (exit 3).
struct AuthError : Error {
  explicit AuthError(const std::string& m) : Error(ExitCode::auth, m) {}
};
// The run's deadline passed (exit 4).
struct DeadlineError : Error {
  explicit DeadlineError(const std::string& m) : Error(ExitCode::deadline, m) {}
};

// The text of the most recent OpenSSL errors (drains the thread's error queue), for messages.
std::string openssl_error_text();

}  // namespace tsign
