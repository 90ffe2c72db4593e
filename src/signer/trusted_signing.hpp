// The Trusted Signing (Artifact Signing) service as a Signer: sign / poll on the data plane of
// docs/protocol.md §3, with the token of an auth::TokenSource.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/token_source.hpp"
#include "common/log.hpp"
#include "http/client.hpp"
#include "signer/signer.hpp"

namespace tsign::signer {

struct TrustedSigningSettings {
  std::string endpoint, account, profile, correlation_id;
};

// Throws InputError naming the endpoint unless it is https:// without user info, query or
// fragment, and its host ends in ".codesigning.azure.net" or is listed in `allowed_hosts` (the
// comma-separated TSIGN_ALLOWED_HOSTS). Called before any token is requested.
void check_endpoint(const std::string& endpoint, const std::optional<std::string>& allowed_hosts);

// The signer. `client`, `tokens` and `log` must outlive it. Checks the endpoint against
// TSIGN_ALLOWED_HOSTS itself too, so a signer is never built for a foreign host.
std::unique_ptr<Signer> make_trusted_signing_signer(const TrustedSigningSettings& settings,
                                                    http::Client& client, auth::TokenSource& tokens,
                                                    Log& log);

// ---- Pieces of the protocol, exposed for the tests ----------------------------------------------

// signingCertificate as the service sends it, decoded defensively: base64 (once or twice, MIME
// line breaks allowed) of a DER PKCS#7 certs-only SignedData, of PEM text, or of concatenated
// DER certificates; PEM text itself is accepted too. Returns the certificates leaf first.
// Throws FileError when nothing usable is found.
std::vector<X509Ptr> decode_certificate_chain(std::string_view text);
// Leaf first (the certificate that issued none of the others), then each issuer in turn, then
// any certificate not on that path.
std::vector<X509Ptr> order_leaf_first(std::vector<X509Ptr> certs);

// One sign or poll answer, in either the 2022-06-15-preview shape or the wrapped
// 2023-06-15-preview shape ({"status", "result": {...}}).
struct SignStatus {
  std::string operation_id;
  std::string status;  // InProgress, Succeeded, Failed, ...
  std::optional<std::string> signature, signing_certificate;
  std::string error;  // errorDetail / errorResponse as "code: message (target)", if any
};
// Throws FileError "the signing service sent a malformed answer" when the body is not JSON.
SignStatus parse_sign_status(std::string_view body);

// Whether a 401 says the bearer token itself was refused, expired or otherwise invalid: RFC 6750
// §3.1 `error="invalid_token"` in WWW-Authenticate (as Entra-protected Azure services answer,
// e.g. error_description="The access token expired"), or an error text saying "expired". A new
// token may then pass; any other 401 is about the identity.
bool says_token_invalid(const http::Response& res);

}  // namespace tsign::signer
