// Fuzz target for the Microsoft Entra ID answers (src/auth/entra.cpp, managed_identity.cpp): the
// token answer (parse_token_response, shared by client secret, client certificate, workload
// identity and managed identity), the error answer (parse_entra_error), a managed identity
// endpoint's refusal (managed_identity_refusal), whether a token answer is worth reading
// (usable_token_answer) and the `exp` claim of the access token itself (expired), all over the
// same arbitrary bytes.
#include <boost/json.hpp>

#include "auth/auth_internal.hpp"
#include "common/error.hpp"
#include "fuzz_targets.hpp"

namespace tsign::fuzz {

namespace {

// The string field `key` of a body that is a JSON object holding one, else "".
std::string field_in(std::string_view body, std::string_view key) {
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return {};
  auto* t = v.as_object().if_contains(key);
  return t && t->is_string() ? std::string(t->as_string()) : std::string();
}

// The message parse_token_response gives for `body` re-serialized with its access_token set to
// `token`, or "" when that body is accepted.
std::string message_with_token(boost::json::value body, const std::string& token,
                               auth::SysClock::time_point now, const std::string& who) {
  body.as_object()["access_token"] = token;
  try {
    (void)auth::parse_token_response(boost::json::serialize(body), now, who);
  } catch (const AuthError& e) {
    return e.what();
  }
  return {};
}

// Whether the message quotes `token` because it is the access token, not because the same
// characters come from elsewhere (the source's name, the fixed text, the quoted token_type, or the
// join of two of them). Decided by an experiment on the body re-serialized (which may change it:
// an infinite number does not come back), once with the token and once with another of the same
// length that shares no character with it: the token is quoted if only the first message has it.
bool quotes_token(std::string_view message, const std::string& token, std::string_view body,
                  auth::SysClock::time_point now, const std::string& who) {
  if (message.find(token) == std::string_view::npos) return false;
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return false;
  constexpr std::string_view kCandidates =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const auto other = kCandidates.find_first_not_of(token);
  if (other == std::string_view::npos) return false;  // a token of every letter and digit
  return message_with_token(v, token, now, who).find(token) != std::string::npos &&
         message_with_token(v, std::string(token.size(), kCandidates[other]), now, who)
                 .find(token) == std::string::npos;
}

}  // namespace

std::string check_entra(ByteView data) {
  const std::string_view body = as_text(data);
  // A fixed "now" keeps the target deterministic (2026-01-01T00:00:00Z).
  const auth::SysClock::time_point now{std::chrono::seconds(1767225600)};
  const std::string who = "Entra ID (fuzz)";
  try {
    auth::AccessToken t = auth::parse_token_response(body, now, who);
    if (t.token.empty()) return "Entra: accepted an empty access_token";
    if (!auth::expired(t, t.expires_on)) return "Entra: a token is not expired at its expires_on";
  } catch (const AuthError& e) {
    // Messages reach the log: never with the token in them.
    const std::string token = field_in(body, "access_token");
    if (!token.empty() && quotes_token(e.what(), token, body, now, who))
      return "Entra: an error message quotes the access_token";
  } catch (const std::exception& e) {
    return std::string("Entra: token answer: not an AuthError: ") + e.what();
  }
  try {
    // The same bytes as the access token itself, whose `exp` claim is read (auth::expired): never
    // a throw, and expired once its expires_on is reached whatever the claim says.
    const auth::AccessToken bare{Secret(std::string(body)), now + std::chrono::hours(1)};
    (void)auth::expired(bare, now);
    if (!auth::expired(bare, bare.expires_on))
      return "Entra: a token is not expired at its expires_on";
    http::Response res;
    res.status = 200;
    res.body = std::string(body);
    (void)auth::usable_token_answer(res);
  } catch (const std::exception& e) {
    return std::string("Entra: reading a token's exp threw: ") + e.what();
  }
  try {
    (void)auth::parse_entra_error(body);
    if (auth::managed_identity_refusal(403, body).rfind("HTTP 403", 0) != 0)
      return "Entra: a managed identity refusal does not start with its HTTP status";
  } catch (const std::exception& e) {
    return std::string("Entra: an error answer threw: ") + e.what();
  }
  return {};
}

}  // namespace tsign::fuzz

TSIGN_FUZZ_ENTRY(tsign::fuzz::check_entra)
