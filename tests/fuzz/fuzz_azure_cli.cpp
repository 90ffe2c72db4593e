// Fuzz target for the output of `az account get-access-token --output json`
// (src/auth/azure_cli.cpp, parse_azure_cli_output).
#include "auth/auth_internal.hpp"
#include "common/error.hpp"
#include "fuzz_targets.hpp"

namespace tsign::fuzz {

std::string check_azure_cli(ByteView data) {
  const auth::SysClock::time_point now{std::chrono::seconds(1767225600)};  // 2026-01-01
  try {
    auth::AccessToken t = auth::parse_azure_cli_output(as_text(data), now);
    if (t.token.empty()) return "Azure CLI: accepted an empty accessToken";
  } catch (const auth::Unavailable&) {
    // The documented refusal: the chain tries its next link.
  } catch (const std::exception& e) {
    return std::string("Azure CLI: not Unavailable: ") + e.what();
  }
  return {};
}

}  // namespace tsign::fuzz

TSIGN_FUZZ_ENTRY(tsign::fuzz::check_azure_cli)
