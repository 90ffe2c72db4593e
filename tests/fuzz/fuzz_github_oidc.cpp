// Fuzz target for the GitHub Actions OIDC provider's answer {"value": "<JWT>"}
// (src/auth/workload_identity.cpp, parse_github_oidc_answer), and for the claims read from such
// a token when Entra refuses it (federated_claims_hint), the same bytes taken as the token.
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
  // The hint quotes three claims of the payload and never the signature (the third part): it is
  // the same whatever the signature is. (Looking for the signature's text in the hint was a false
  // alarm: the fuzzer made it a piece of the hint's fixed text.)
  const std::string token(as_text(data));
  std::string hint, with_other;
  const auto first = token.find('.');
  const auto second = first == std::string::npos ? first : token.find('.', first + 1);
  std::string other = token;
  if (second != std::string::npos)
    for (auto i = second + 1; i < other.size(); ++i) other[i] = other[i] == 'Q' ? 'R' : 'Q';
  try {
    hint = auth::federated_claims_hint(Secret(token));
    with_other = auth::federated_claims_hint(Secret(other));
  } catch (const std::exception& e) {
    return std::string("GitHub OIDC: the claims hint threw: ") + e.what();
  }
  if (hint != with_other) return "GitHub OIDC: the claims hint depends on the token's signature";
  if (!hint.empty() && hint.rfind("the GitHub OIDC token's issuer '", 0) != 0)
    return "GitHub OIDC: unexpected claims hint: " + hint;
  return {};
}

}  // namespace tsign::fuzz

TSIGN_FUZZ_ENTRY(tsign::fuzz::check_github_oidc)
