// The second judge: Windows' own WinVerifyTrust (WINTRUST_ACTION_GENERIC_VERIFY_V2, what
// `signtool verify /pa` and Explorer use), through tests/support/wintrust/wintrust_verify.c run
// under wine. What wine's implementation checks, and what it does not: docs/judges.md.
//
// Use: tsign_use_wintrust(target) in the CMakeLists.txt (tests/support/wintrust/wintrust.cmake),
// then in a test case
//   WINTRUST_OR_SKIP();                      // only where wine or the program is missing
//   CHECK(it::wintrust_verify(file) == it::kTrusted);
//   auto all = it::wintrust_verify(files);   // one wine start (~1 s) for many files
// The judge runs in a wine prefix of its own (beside scripts/test-windows' one, made on first use,
// ~20 s), into whose CurrentUser ROOT store the test roots are added: the shared prefix's store
// stays as scripts/test-windows expects it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness.hpp"

#ifndef TSIGN_WINTRUST_EXE
#error "call tsign_use_wintrust(<target>) in the test's CMakeLists.txt"
#endif

namespace it {

// A WinVerifyTrust result, printed in hex with its name in test output.
struct HResult {
  std::uint32_t value = 0;
  friend bool operator==(HResult, HResult) = default;
  friend std::ostream& operator<<(std::ostream& o, HResult h) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08X", static_cast<unsigned>(h.value));
    o << buf;
    switch (h.value) {
      case 0:
        return o << " (trusted)";
      case 0x80096010:
        return o << " (TRUST_E_BAD_DIGEST)";
      case 0x800B0100:
        return o << " (TRUST_E_NOSIGNATURE)";
      case 0x80096004:
        return o << " (TRUST_E_CERT_SIGNATURE)";
      case 0x800B0109:
        return o << " (CERT_E_UNTRUSTEDROOT)";
      default:
        return o;
    }
  }
};
inline constexpr HResult kTrusted{0};
inline constexpr HResult kBadDigest{0x80096010};      // the file's digest is not the signed one
inline constexpr HResult kNoSignature{0x800B0100};    // no signature (or none wine can read)
inline constexpr HResult kCertSignature{0x80096004};  // the signer's signature does not verify
inline constexpr HResult kUntrustedRoot{0x800B0109};  // the chain ends in a root not trusted

// Why the judge cannot run here (empty when it can): no wine (macOS, a machine without
// scripts/setup), or no wintrust_verify.exe in this build (a Windows build, no MinGW-w64 cross
// compiler). A program that should exist and does not is a failure, not a skip.
inline const std::string& wintrust_problem() {
  static const std::string why = []() -> std::string {
    const std::string exe = TSIGN_WINTRUST_EXE;
    if (exe.empty())
      return "skipped: WinVerifyTrust judge not built here (a Windows build, or no "
             "x86_64-w64-mingw32-gcc when CMake ran)";
    if (sh("command -v wine64 || test -x /usr/lib/wine/wine64").code != 0)
      return "skipped: wine is not installed (scripts/setup installs wine64)";
    return {};
  }();
  return why;
}

#define WINTRUST_OR_SKIP()                                            \
  do {                                                                \
    if (const auto& why_ = ::it::wintrust_problem(); !why_.empty()) { \
      WARN(why_);                                                     \
      SUCCEED(why_);                                                  \
      return;                                                         \
    }                                                                 \
  } while (0)

// The judge's own prefix, beside wine-run's default one (same cache folder and override).
inline fs::path wintrust_prefix() {
  if (const char* c = std::getenv("TSIGN_WINDOWS_CACHE"); c && *c)
    return fs::path(c) / "wineprefix-wintrust";
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    return fs::path(x) / "tsign-windows" / "wineprefix-wintrust";
  const char* home = std::getenv("HOME");
  return fs::path(home && *home ? home : "/tmp") / ".cache" / "tsign-windows" /
         "wineprefix-wintrust";
}

// WinVerifyTrust on each file (in one wine process), with `roots` trusted first: the result of
// each, in order. Throws with the program's output if it did not report on every file.
inline std::vector<HResult> wintrust_verify(const std::vector<fs::path>& files,
                                            const std::vector<fs::path>& roots = {
                                                fixture("root.pem")}) {
  std::string cmd = "WINEPREFIX=" + quote(wintrust_prefix()) + " " + quote(TSIGN_WINE_RUN) + " " +
                    quote(TSIGN_WINTRUST_EXE);
  for (auto& r : roots) cmd += " --root " + quote(fs::absolute(r));
  for (auto& f : files) cmd += " " + quote(fs::absolute(f));
  auto run = sh(cmd);
  // "0x<HRESULT> <path>" per file, in order; other lines (wine's own messages) are ignored.
  std::vector<HResult> out;
  std::istringstream lines(run.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.size() > 11 && line.compare(0, 2, "0x") == 0 && line[10] == ' ')
      out.push_back(
          HResult{static_cast<std::uint32_t>(std::stoul(line.substr(2, 8), nullptr, 16))});
  }
  if (out.size() != files.size())
    throw std::runtime_error("wintrust_verify.exe reported on " + std::to_string(out.size()) +
                             " of " + std::to_string(files.size()) + " files (exit " +
                             std::to_string(run.code) + "):\n" + run.out);
  // Its exit code says "all trusted" exactly when every line does.
  bool all = std::all_of(out.begin(), out.end(), [](HResult h) { return h == kTrusted; });
  if (all != (run.code == 0))
    throw std::runtime_error("wintrust_verify.exe exited " + std::to_string(run.code) +
                             " against its results:\n" + run.out);
  return out;
}
inline HResult wintrust_verify(const fs::path& file,
                               const std::vector<fs::path>& roots = {fixture("root.pem")}) {
  return wintrust_verify(std::vector<fs::path>{file}, roots).at(0);
}

}  // namespace it
