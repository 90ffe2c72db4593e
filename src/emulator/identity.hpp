// The emulator's identity side: the GitHub OIDC token endpoint (docs/protocol.md §1) and the
// Entra ID token endpoint (§2: OAuth 2.0 client credentials, RFC 6749 §4.4, with a client secret,
// an RFC 7523 federated assertion, or a client assertion signed with the application's
// certificate, named by x5t#S256 or sent as x5c), and the access tokens it issued, which the
// signing service asks about. The checks an Entra token request goes through are pure functions
// below, so their order and words can be tested without a socket.
//
// Threading: an Identity is used on the emulator's io_context thread only (server.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include <boost/beast/http/status.hpp>
#include <boost/json/object.hpp>
#include <boost/url/url_view.hpp>

#include <openssl/evp.h>

#include "emulator/answer.hpp"
#include "emulator/emulator.hpp"
#include "emulator/pki.hpp"

namespace tsign::emulator {

// An Entra refusal before it becomes an answer (which adds a timestamp and random ids).
struct EntraRefusal {
  boost::beast::http::status status;
  std::string error;        // OAuth 2.0 error code (RFC 6749 §5.2)
  std::string description;  // AADSTS code and text, as Entra words it
  bool operator==(const EntraRefusal&) const = default;
};

// The fields of an application/x-www-form-urlencoded body; the first occurrence of a name wins.
using Form = std::unordered_map<std::string, std::string>;
// nullopt if the body is not valid form encoding.
std::optional<Form> parse_form(std::string_view body);

// grant_type, client_id and scope, in Entra's order: the first missing or wrong one refuses.
std::optional<EntraRefusal> check_client(const Form& form, const std::string& client_id,
                                         const std::string& tenant);

// The claims of a federated assertion whose signature is good: audience, issuer and subject of
// the federated credential, and its time range (five minutes of skew before nbf, none after exp).
std::optional<EntraRefusal> check_assertion_claims(const boost::json::object& claims,
                                                   const std::string& issuer,
                                                   const std::string& subject,
                                                   SysClock::time_point now);

// The claims of a client assertion signed with the application's certificate (Entra "certificate
// credentials"): aud = the token URL it was sent to, iss = sub = the client id, and the same time
// range as a federated assertion.
std::optional<EntraRefusal> check_client_assertion_claims(const boost::json::object& claims,
                                                          const std::string& token_url,
                                                          const std::string& client_id,
                                                          SysClock::time_point now);

// Which certificate signed a certificate assertion, from its JWT header, against the registered
// one: x5c (standard base64 DER, leaf first) is subject name + issuer authentication — the leaf
// must be issued by `client_ca` (signature and validity) and carry the registered certificate's
// subject; otherwise x5t#S256 must be the registered certificate's SHA-256 thumbprint. On success
// `signer` is the certificate whose key must have signed the JWT.
std::optional<EntraRefusal> certificate_of_assertion(const boost::json::object& header,
                                                     X509* registered, X509* client_ca,
                                                     X509Ptr& signer);

// What the signing service learns about a bearer token.
enum class TokenState { missing, unknown, expired, valid };

class Identity {
 public:
  // `ep` and `pki` must outlive the Identity; ep.base_url is final (the server is bound).
  Identity(const Options& opts, const Endpoints& ep, const Pki& pki);

  // GET /github/token (§1).
  Answer github_token(const StringRequest& req, const boost::urls::url_view& u);
  // POST /{tenant}/oauth2/v2.0/token (§2).
  Answer entra_token(const StringRequest& req, const std::string& tenant);

  TokenState check(const std::string& token) const;
  // iss of the GitHub OIDC tokens, which the federated credential trusts.
  const std::string& issuer() const { return issuer_; }

 private:
  std::optional<EntraRefusal> check_credential(const Form& form, const std::string& tenant) const;
  std::optional<EntraRefusal> check_certificate_assertion(const std::string& assertion,
                                                          const boost::json::object& header,
                                                          const std::string& tenant) const;
  Answer issue_access_token();

  const Options& opts_;
  const Endpoints& ep_;
  const Pki& pki_;
  EVP_PKEY* oidc_key_;
  std::string issuer_;
  std::string kid_;  // names the OIDC key by its public half, as a JWKS would
  std::unordered_map<std::string, SysClock::time_point> access_tokens_;
};

// Entra's error shape (protocol.md §2).
Answer entra_error(const EntraRefusal& r);

}  // namespace tsign::emulator
