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
  // The hint quotes three claims of the payload and never the signature (the third part), unless
  // the payload itself holds the same characters.
  const std::string token(as_text(data));
  std::string hint;
  try {
    hint = auth::federated_claims_hint(Secret(token));
  } catch (const std::exception& e) {
    return std::string("GitHub OIDC: the claims hint threw: ") + e.what();
  }
  if (hint.empty()) return {};
  if (hint.rfind("the GitHub OIDC token's issuer '", 0) != 0)
    return "GitHub OIDC: unexpected claims hint: " + hint;
  const auto first = token.find('.');
  const auto second = token.find('.', first + 1);
  const std::string_view signature = std::string_view(token).substr(second + 1);
  const auto payload =
      base64url_decode(std::string_view(token).substr(first + 1, second - first - 1));
  if (signature.size() >= 16 && hint.find(signature) != std::string::npos && payload &&
      as_text(*payload).find(signature) == std::string_view::npos)
    return "GitHub OIDC: the claims hint shows the token's signature";
  return {};
}

}  // namespace tsign::fuzz

TSIGN_FUZZ_ENTRY(tsign::fuzz::check_github_oidc)
