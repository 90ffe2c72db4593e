// Fuzz target for the GitHub Actions OIDC provider's answer {"value": "<JWT>"}
// (src/auth/workload_identity.cpp, parse_github_oidc_answer).
#include "auth/auth_internal.hpp"
#include "common/error.hpp"
#include "fuzz_targets.hpp"

namespace tsign::fuzz {

std::string check_github_oidc(ByteView data) {
  const std::string host = "the GitHub OIDC provider (fuzz)";
  try {
    Secret jwt = auth::parse_github_oidc_answer(as_text(data), host);
    if (jwt.empty()) return "GitHub OIDC: accepted an empty ID token";
  } catch (const AuthError& e) {
    // The body may hold the ID token: the message is the fixed text, quoting nothing of it.
    if (e.what() != host + " answered without an ID token (no \"value\")")
      return std::string("GitHub OIDC: unexpected message: ") + e.what();
  } catch (const std::exception& e) {
    return std::string("GitHub OIDC: not an AuthError: ") + e.what();
  }
  return {};
}

}  // namespace tsign::fuzz

TSIGN_FUZZ_ENTRY(tsign::fuzz::check_github_oidc)
