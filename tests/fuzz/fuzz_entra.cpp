// Fuzz target for the Microsoft Entra ID answers (src/auth/entra.cpp, managed_identity.cpp): the
// token answer (parse_token_response, shared by client secret, client certificate, workload
// identity and managed identity), the error answer (parse_entra_error) and a managed identity
// endpoint's refusal (managed_identity_refusal), all over the same arbitrary HTTP body.
#include <cctype>

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

// Whether `token` could be in a message for a reason other than being quoted: it is part of the
// source's name, of the fixed text, or of the token_type the message quotes.
bool innocent(const std::string& token, const std::string& who, std::string_view body) {
  // A few characters can also arise across the joins of the quoted parts ("…fer" + "'"); a real
  // access token is hundreds of characters long.
  if (token.size() < 16) return true;
  for (std::string_view text :
       {std::string_view(who),
        std::string_view(" answered with something that is not a JSON token "
                         "response"),
        std::string_view(" answered without an access_token"),
        std::string_view(" answered with a token of type '"),
        std::string_view("', expected Bearer"),
        std::string_view(" answered without a usable expires_in / expires_on")})
    if (text.find(token) != std::string_view::npos) return true;
  std::string type = field_in(body, "token_type");
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type.find(token) != std::string::npos;
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
  } catch (const AuthError& e) {
    // Messages reach the log: never with the token in them.
    const std::string token = field_in(body, "access_token");
    if (!token.empty() && !innocent(token, who, body) &&
        std::string_view(e.what()).find(token) != std::string_view::npos)
      return "Entra: an error message quotes the access_token";
  } catch (const std::exception& e) {
    return std::string("Entra: token answer: not an AuthError: ") + e.what();
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
