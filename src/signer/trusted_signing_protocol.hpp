// The Trusted Signing (Artifact Signing) data plane as pure functions: api-versions, the
// endpoint check, request URLs, answer and error parsing, the certificate chain, and the
// polling rules -- everything of docs/protocol.md §3 that needs no network, for the signer
// (trusted_signing.cpp), the tests and the fuzz targets. No I/O, no state.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/digest.hpp"
#include "common/ossl.hpp"
#include "http/client.hpp"

namespace tsign::signer {

// The data-plane contracts tsign speaks: the GA one (RPC-style `{profile}:sign`, Azure Core
// long-running operation and errors) and the preview every client sent until 2026
// (`{profile}/sign`, answers with operationId / signature / signingCertificate at the top).
enum class ApiVersion { ga_2024_06_15, preview_2022_06_15 };
std::string_view api_version_name(ApiVersion v);  // "2024-06-15", "2022-06-15-preview"
// Either name, any letter case; nullopt for anything else.
std::optional<ApiVersion> parse_api_version(std::string_view name);

struct TrustedSigningSettings {
  std::string endpoint, account, profile, correlation_id;
  // nullopt: automatic -- the GA version first; when the run's first sign request is refused for
  // its version, the preview once, and whichever worked for the rest of the run. A pinned version
  // never falls back.
  std::optional<ApiVersion> api_version = std::nullopt;
};

// Throws InputError naming the endpoint unless it is https:// without user info, query or
// fragment, it is read the way it is written (its parsed authority is its text, its path starts
// with '/', its port is 1-65535), and its host ends in ".codesigning.azure.net" or is listed in
// `allowed_hosts` (the comma-separated TSIGN_ALLOWED_HOSTS). Called before any token is requested.
void check_endpoint(const std::string& endpoint, const std::optional<std::string>& allowed_hosts);

// signingCertificate as the service sends it, decoded defensively: base64 (once or twice, MIME
// line breaks allowed) of a DER PKCS#7 certs-only SignedData, of PEM text, or of concatenated
// DER certificates; PEM text itself is accepted too. Returns the certificates leaf first.
// Throws FileError when nothing usable is found.
std::vector<X509Ptr> decode_certificate_chain(std::string_view text);
// Whether decode_certificate_chain would find a certificate in `text` (never throws): an answer
// cut short is asked for again.
bool is_certificate_chain(std::string_view text);
// Leaf first (the certificate that issued none of the others), then each issuer in turn, then
// any certificate not on that path.
std::vector<X509Ptr> order_leaf_first(std::vector<X509Ptr> certs);

// {endpoint without trailing '/'}/codesigningaccounts/{account}/certificateprofiles/{profile},
// the names percent-encoded as path segments.
std::string profile_url(const TrustedSigningSettings& settings);
// The sign request: `{profile}:sign` (GA) or `{profile}/sign` (preview), with the api-version.
std::string sign_url(std::string_view profile_url, ApiVersion v);
// The certificate-chain endpoint (`{profile}/sign/certchain`, both versions), with the api-version.
std::string certchain_url(std::string_view profile_url, ApiVersion v);
// The status poll of operation `id` when the service names no Operation-Location.
std::string poll_url(std::string_view profile_url, std::string_view id, ApiVersion v);

// One sign or poll answer, in any shape the service has used: 2022-06-15-preview
// ({operationId, status, signature, signingCertificate}), 2023-06-15-preview ({id, status,
// result: {...}, errorResponse}), and 2024-06-15 (an Azure Core operation: {id, status, error:
// {code, message, ...}, result: {signature, signingCertificate}}).
struct SignStatus {
  std::string operation_id;
  std::string status;  // InProgress / NotStarted / Running, Succeeded, Failed, ...
  std::optional<std::string> signature, signing_certificate;
  std::string error;  // the error object as "code: message (target)", if any
};
// Throws FileError "the signing service sent a malformed answer" when the body is not JSON.
SignStatus parse_sign_status(std::string_view body);

// An error answer as one line, "code: message (target)": errorDetail (preview), errorResponse,
// or an Azure Core error ({"error": {...}}); the x-ms-error-code header when the body says
// nothing (it is often empty or HTML). Never throws.
std::string service_error_text(std::string_view body, std::string_view error_code_header = {});

// Whether an answer to a sign request may mean "not in this api-version": 400 whose error code
// (body or x-ms-error-code) names the api-version (UnsupportedApiVersion, ...), 404 (an unknown
// version may have no route), or 401 (field reports: a bare 401 for the preview on some
// accounts). 401 and 404 have other causes too; the signer tells them apart by trying the other
// version once.
bool refused_for_version(unsigned status, std::string_view body,
                         std::string_view error_code_header);
// Whether a 401 says the bearer token itself was refused, expired or otherwise invalid: RFC 6750
// §3.1 `error="invalid_token"` in WWW-Authenticate (as Entra-protected Azure services answer,
// e.g. error_description="The access token expired"), or an error text saying "expired". A new
// token may then pass; any other 401 is about the identity.
bool says_token_invalid(const http::Response& res);

// The signatureAlgorithm of a sign request for a digest: RS256, RS384, RS512.
std::string signature_algorithm(DigestAlg alg);
// Operation status words, any letter case: the operation ended well / ended for good without a
// signature (Failed, TimedOut, NotFound, Canceled or Cancelled). Anything else is still running.
bool status_succeeded(std::string_view status);
bool status_failed(std::string_view status);
// The pause a poll answer asks for before the next poll: Retry-After in seconds, at most a minute
// (a longer wait is better spent polling again); nullopt without one or for an HTTP-date.
std::optional<std::chrono::milliseconds> poll_retry_after(const http::Response& res);
// Whether `url` is on the endpoint's own origin (https, same host in any letter case, same
// written port, no user info, read as written): only there is an Operation-Location followed,
// as the bearer token goes with every poll.
bool same_origin(std::string_view url, std::string_view endpoint);
// The region of the endpoint for messages: its host's first label ("eus").
std::string endpoint_region(std::string_view endpoint);

}  // namespace tsign::signer
