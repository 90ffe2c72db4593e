// Internals of the credential chain shared by its .cpp files and its tests: the pieces of the
// Microsoft identity platform protocols (docs/protocol.md §1-2) as pure functions, and one
// factory per credential. Not part of the auth/ contract (token_source.hpp is).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/credential_table.hpp"
#include "auth/token_source.hpp"
#include "common/ossl.hpp"
#include "platform/env.hpp"

namespace tsign::auth {

using SysClock = std::chrono::system_clock;
// Looks up an environment variable: env::process() in the product, a map in tests.
using EnvLookup = env::Lookup;
// A variable of the registry (src/platform/env.hpp) from `lookup`; the name is checked when tsign
// is compiled.
inline std::optional<std::string> read_var(const EnvLookup& lookup, env::Var var) {
  return env::get(lookup, var);
}
// Whether it is set and not empty.
inline bool has_var(const EnvLookup& lookup, env::Var var) {
  auto v = env::get(lookup, var);
  return v && !v->empty();
}
// The wall clock; injectable so that the cache and the assertions can be tested without waiting.
using NowFn = std::function<SysClock::time_point()>;

// Thrown by a link that turns out not to apply when tried (no instance metadata service, no
// Azure CLI or not logged in): the chain records the reason and tries the next link. Every other
// error of a link that applies (AuthError, DeadlineError) ends the chain.
struct Unavailable : std::runtime_error {
  explicit Unavailable(const std::string& m) : std::runtime_error(m) {}
};

// The Entra ID refusal of a token request (HTTP 400/401 with error / error_description).
struct EntraRefused : AuthError {
  EntraRefused(const std::string& m, std::string error_code, std::string error_description)
      : AuthError(m), code(std::move(error_code)), description(std::move(error_description)) {}
  std::string code, description;
};

// ---- Protocol pieces (pure) -------------------------------------------------------------------

// application/x-www-form-urlencoded body: every byte outside RFC 3986 "unreserved" is
// percent-encoded (Boost.URL), pairs joined by '&'. Values may be secrets: the result is only
// ever a request body.
std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields);

// The authority from the settings, or AZURE_AUTHORITY_HOST when the settings keep the default;
// must be https://; returned without a trailing '/'. Throws InputError naming the value.
std::string resolve_authority(const std::string& configured, const EnvLookup& env);
// {authority}/{tenant}/oauth2/v2.0/token. Throws InputError if the tenant is not an ID or a
// domain name (it becomes a path segment of a URL that receives the secret).
std::string entra_token_url(const std::string& authority, const std::string& tenant);

// The GitHub OIDC audience for the cloud of `authority` (protocol.md §1).
std::string github_oidc_audience(const std::string& authority);
// ACTIONS_ID_TOKEN_REQUEST_URL with its audience parameter set. Throws AuthError if the runner's
// URL does not parse.
std::string github_oidc_url(const std::string& request_url, const std::string& audience);

// The largest expires_in / expires_on (seconds) a token answer may give: 126 years, or the year
// 2096. Beyond it the answer is not a real one, and the clock (64-bit nanoseconds, to the year
// 2262) could not hold the expiry: now + seconds would overflow (found writing fuzz_entra).
inline constexpr std::int64_t kMaxTokenSeconds = 4'000'000'000;

// An Entra / managed identity token answer: access_token with expires_in (seconds, number or
// string) or expires_on (POSIX seconds). `who` names the source for error messages. Throws
// AuthError on a malformed answer (never quoting the body: it may hold a token).
AccessToken parse_token_response(std::string_view body, SysClock::time_point now,
                                 const std::string& who);
// For http::Request::usable of a token request: false for a 200 whose body is not a JSON object
// (cut short or garbled), which is then asked for again within the retry budget.
bool usable_token_answer(const http::Response& res);
// `az account get-access-token --output json`: accessToken, expires_on (POSIX seconds,
// CLI >= 2.54) or expiresOn (local time "YYYY-MM-DD HH:MM:SS.ffffff"). Throws Unavailable.
AccessToken parse_azure_cli_output(std::string_view json, SysClock::time_point now);
// Entra ID's error answer (RFC 6749 §5.2): its error and error_description, each empty when
// absent or the body is not a JSON object. Only these two are ever quoted: the rest may echo the
// request.
struct EntraErrorAnswer {
  std::string code, description;
};
EntraErrorAnswer parse_entra_error(std::string_view body);
// The GitHub OIDC provider's answer {"value": "<JWT>"}. `host` names the provider in the error.
// Throws AuthError when there is no non-empty string "value".
Secret parse_github_oidc_answer(std::string_view body, const std::string& host);
// For a federated assertion Entra refused (no matching federated credential): what the token
// claims -- "the GitHub OIDC token's issuer 'I', subject 'S' and audience 'A' must be exactly
// the federated credential's (the subject is case-sensitive)" -- from the JWT's payload, which is
// readable by anyone holding the token and is no secret (the signature is never shown). Empty
// when the payload cannot be read.
std::string federated_claims_hint(const Secret& jwt);
// A managed identity endpoint's refusal as "HTTP 403: error: error_description: message", with
// only those string fields of a JSON object body (never anything that could be a token).
std::string managed_identity_refusal(int status, std::string_view body);

// A PEM file holding the client certificate and its (unencrypted) RSA private key.
struct ClientCertificate {
  X509Ptr cert;                // the one matching the key
  EvpPkeyPtr key;              // RSA
  std::vector<X509Ptr> chain;  // cert first, then its issuers as far as the file holds them
};
// PEM (key + certificates) or PKCS#12, told apart by content; `password` opens a PKCS#12 file
// (PEM keys must be unencrypted). Throws InputError naming `path`, never the password.
ClientCertificate load_client_certificate(const std::string& path, const Secret& password = {});
ClientCertificate parse_client_certificate(std::string_view content, const std::string& path,
                                           const Secret& password = {});
// The self-signed client assertion (RFC 7523): RS256 JWT, header x5t#S256 = base64url(SHA-256
// of the certificate's DER) and, with send_chain, x5c = the chain (standard base64 DER, leaf
// first); claims aud = token URL, iss = sub = client id, random jti, nbf/iat = now, exp = now +
// 10 minutes.
Secret build_client_assertion(const ClientCertificate& cc, const std::string& client_id,
                              const std::string& token_url, SysClock::time_point now,
                              bool send_chain = false);

// POSTs the form to the Entra token endpoint and parses the answer. `who` is e.g. "client secret
// for client X in tenant Y". Throws EntraRefused (400/401), AuthError (other failures).
boost::asio::awaitable<AccessToken> request_entra_token(
    http::Client& client, const std::string& token_url,
    const std::vector<std::pair<std::string, std::string>>& form, const std::string& who,
    SysClock::time_point now);

// ---- The credentials --------------------------------------------------------------------------

// Values of the chain with the settings applied over the environment.
struct ResolvedSettings {
  std::string tenant_id, client_id;
  Secret client_secret;
  std::string client_certificate_path;
  Secret client_certificate_password;
  bool send_certificate_chain = false;
  std::string authority;  // without trailing '/'
};
ResolvedSettings resolve_settings(const CredentialSettings& s, const EnvLookup& env);

std::unique_ptr<TokenSource> make_client_secret_source(const ResolvedSettings& s,
                                                       http::Client& client, Log& log, NowFn now);
std::unique_ptr<TokenSource> make_client_certificate_source(const ResolvedSettings& s,
                                                            http::Client& client, Log& log,
                                                            NowFn now);
std::unique_ptr<TokenSource> make_federated_file_source(const ResolvedSettings& s,
                                                        std::string token_file,
                                                        http::Client& client, Log& log, NowFn now);
std::unique_ptr<TokenSource> make_github_oidc_source(const ResolvedSettings& s,
                                                     std::string request_url, Secret request_token,
                                                     http::Client& client, Log& log, NowFn now);
// App Service style: IDENTITY_ENDPOINT + IDENTITY_HEADER.
std::unique_ptr<TokenSource> make_app_service_identity_source(std::string endpoint,
                                                              Secret identity_header,
                                                              std::string client_id,
                                                              http::Client& client, NowFn now);
// The instance metadata service (http://169.254.169.254 in the product). Tentative: until it has
// given one token it throws Unavailable when it does not answer or has no identity.
std::unique_ptr<TokenSource> make_imds_source(std::string base_url, std::string client_id,
                                              http::Client& client, NowFn now);
// Runs `az`; throws Unavailable when az is missing or not logged in. The runner is injectable
// for tests; the product passes platform::run_capture.
struct RunOutcome {
  int exit_code = -1;
  std::string out, err;
  bool timed_out = false, not_found = false;
};
using Runner =
    std::function<RunOutcome(const std::vector<std::string>&, std::chrono::milliseconds)>;
std::unique_ptr<TokenSource> make_azure_cli_source(Runner run, NowFn now);

// ---- One link of the chain per row of credential_table.hpp ----------------------------------

// What every credential's factory may use.
struct LinkInputs {
  const ResolvedSettings& settings;
  const EnvLookup& env;
  http::Client& client;
  Log& log;
  const NowFn& now;
  const Runner& run;
};
// A factory's answer: the source, or null with what is missing when the credential does not
// apply (the chain says "needs <row.needs>; missing <missing>").
struct LinkOutcome {
  std::unique_ptr<TokenSource> source;
  std::string missing;
};
// "A, B" of the names whose flag is false.
std::string missing_list(const std::vector<std::pair<const char*, bool>>& needs);

// ---- The chain and its cache ------------------------------------------------------------------

// Refreshes the token 5 minutes before it expires, or at half its lifetime if that is shorter;
// one refresh at a time however many coroutines ask (the callers share one io_context thread);
// masks every new token and logs (debug) the credential that gave it.
std::unique_ptr<TokenSource> make_token_cache(std::unique_ptr<TokenSource> inner, Log& log,
                                              NowFn now);

// make_credential_chain with the environment, the clock and the process runner injected.
std::unique_ptr<TokenSource> make_credential_chain(const CredentialSettings& settings,
                                                   http::Client& client, Log& log,
                                                   const EnvLookup& env, NowFn now, Runner run);

}  // namespace tsign::auth
