// The fuzz targets' checks, shared by the libFuzzer executables (scripts/fuzz, the `fuzz` preset)
// and the seed replay of every build (fuzz_replay_test.cpp). Each check feeds arbitrary bytes to
// the production entry point that parses them and returns the invariant the code broke, or "".
// Crashes and sanitizer reports are findings too; a check only adds what must hold beyond that.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/bytes.hpp"

namespace tsign::fuzz {

using CheckFn = std::string (*)(ByteView);

std::string check_pe_target(ByteView data);     // fuzz_pe.cpp
std::string check_authenticode(ByteView data);  // fuzz_authenticode.cpp
std::string check_timestamp(ByteView data);     // fuzz_timestamp.cpp
std::string check_entra(ByteView data);         // fuzz_entra.cpp
std::string check_github_oidc(ByteView data);   // fuzz_github_oidc.cpp
std::string check_azure_cli(ByteView data);     // fuzz_azure_cli.cpp
std::string check_sign_status(ByteView data);   // fuzz_sign_status.cpp
std::string check_cert_chain(ByteView data);    // fuzz_cert_chain.cpp
std::string check_cab_target(ByteView data);    // fuzz_cab.cpp
std::string check_msi(ByteView data);           // fuzz_msi.cpp
std::string check_cat(ByteView data);           // fuzz_cat.cpp
std::string check_script(ByteView data);        // fuzz_script.cpp
std::string check_appx(ByteView data);          // fuzz_appx.cpp

struct Target {
  const char* name;  // fuzz_<name>, seeds/<name>.hex
  CheckFn check;
};
inline constexpr Target kTargets[] = {
    {"pe", check_pe_target},
    {"authenticode", check_authenticode},
    {"timestamp", check_timestamp},
    {"entra", check_entra},
    {"github_oidc", check_github_oidc},
    {"azure_cli", check_azure_cli},
    {"sign_status", check_sign_status},
    {"cert_chain", check_cert_chain},
    {"cab", check_cab_target},
    {"msi", check_msi},
    {"cat", check_cat},
    {"script", check_script},
    {"appx", check_appx},
};

inline std::string_view as_text(ByteView data) {
  return {reinterpret_cast<const char*>(data.data()), data.size()};
}

}  // namespace tsign::fuzz

// The libFuzzer entry point, only in the executable of that one target (TSIGN_LIBFUZZER is set
// by tests/fuzz/CMakeLists.txt), so the test build can link every check together.
#ifdef TSIGN_LIBFUZZER
#define TSIGN_FUZZ_ENTRY(check)                                                       \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
    std::string violation = check(tsign::ByteView(data, size));                       \
    if (!violation.empty()) {                                                         \
      std::fprintf(stderr, "fuzz invariant broken: %s\n", violation.c_str());         \
      std::abort();                                                                   \
    }                                                                                 \
    return 0;                                                                         \
  }
#else
#define TSIGN_FUZZ_ENTRY(check)
#endif
