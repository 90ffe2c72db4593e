// GitHub OIDC (docs/protocol.md §1) and Entra ID (§2) as the emulator serves them; the words of
// the refusals are Entra's (AADSTS codes) so that tsign's messages can be tested against them.
// Certificate credentials follow Entra's "certificate credentials" page: the assertion's header
// names the certificate by x5t#S256, or carries it in x5c (RFC 7515 §4.1.6) when the application
// trusts a subject name + issuer instead of one certificate.
#include "emulator/identity.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json/array.hpp>
#include <boost/url/encoding_opts.hpp>
#include <boost/url/params_view.hpp>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "common/error.hpp"
#include "common/ossl.hpp"
#include "emulator/jwt.hpp"

namespace tsign::emulator {

namespace http = boost::beast::http;
namespace json = boost::json;

namespace {

constexpr auto kTokenAudience = "api://AzureADTokenExchange";
constexpr auto kScope = "https://codesigning.azure.net/.default";
constexpr auto kAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

std::optional<std::string> field(const Form& form, const std::string& k) {
  auto it = form.find(k);
  if (it == form.end()) return std::nullopt;
  return it->second;
}

EntraRefusal missing(const std::string& k) {
  return {http::status::bad_request, "invalid_request",
          "AADSTS900144: The request body must contain the following parameter: '" + k + "'."};
}

std::string key_id(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(key, &der);
  if (n <= 0) throw FileError("emulator: cannot encode the OIDC key: " + openssl_error_text());
  std::string kid =
      to_hex(hash(DigestAlg::sha256, ByteView(der, static_cast<std::size_t>(n)))).substr(0, 32);
  OPENSSL_free(der);
  return kid;
}

bool audience_ok(const json::object& claims) {
  bool ok = false;
  if (const auto* aud = claims.if_contains("aud")) {
    if (aud->is_string()) ok = aud->as_string() == kTokenAudience;
    if (aud->is_array())
      for (const auto& a : aud->as_array()) ok |= a.is_string() && a.as_string() == kTokenAudience;
  }
  return ok;
}

}  // namespace

std::optional<Form> parse_form(std::string_view body) {
  Form form;
  try {
    boost::urls::encoding_opts eo;
    eo.space_as_plus = true;
    boost::urls::params_view params(body, eo);
    for (auto p : params) form.emplace(p.key, p.value);  // the first occurrence wins
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return form;
}

std::optional<EntraRefusal> check_client(const Form& form, const std::string& client_id,
                                         const std::string& tenant) {
  auto grant = field(form, "grant_type");
  if (!grant) return missing("grant_type");
  if (*grant != "client_credentials")
    return EntraRefusal{
        http::status::bad_request, "unsupported_grant_type",
        "AADSTS70003: The app requested an unsupported grant type '" + *grant + "'."};
  auto client = field(form, "client_id");
  if (!client) return missing("client_id");
  if (*client != client_id)
    return EntraRefusal{http::status::bad_request, "unauthorized_client",
                        "AADSTS700016: Application with identifier '" + *client +
                            "' was not found in the directory '" + tenant + "'."};
  auto scope = field(form, "scope");
  if (!scope) return missing("scope");
  if (*scope != kScope)
    return EntraRefusal{http::status::bad_request, "invalid_scope",
                        "AADSTS70011: The provided value for the input parameter 'scope' is not "
                        "valid. The emulator issues tokens for " +
                            std::string(kScope) + " only."};
  return std::nullopt;
}

namespace {

// exp in the future and nbf at most five minutes ahead (clock skew), as Entra allows.
std::optional<EntraRefusal> check_time_range(const json::object& claims, SysClock::time_point now) {
  std::int64_t secs =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  auto exp = json_int(claims, "exp");
  auto nbf = json_int(claims, "nbf");
  if (exp && *exp > secs && !(nbf && *nbf > secs + 300)) return std::nullopt;
  auto at = [](const std::optional<std::int64_t>& t) {
    return t ? iso_time(SysClock::time_point(std::chrono::seconds(*t))) : std::string("(none)");
  };
  return EntraRefusal{
      http::status::bad_request, "invalid_client",
      "AADSTS700024: Client assertion is not within its valid time range. Current time: " +
          iso_time(now) + ", assertion valid from " + at(nbf) + ", expiry time of assertion " +
          at(exp) +
          ". Review the documentation at "
          "https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."};
}

EntraRefusal unregistered_certificate(const std::string& why) {
  return {http::status::unauthorized, "invalid_client",
          "AADSTS700027: The certificate with identifier used to sign the client assertion is "
          "not registered on application. [Reason - " +
              why + "]"};
}

}  // namespace

std::optional<EntraRefusal> check_client_assertion_claims(const json::object& claims,
                                                          const std::string& token_url,
                                                          const std::string& client_id,
                                                          SysClock::time_point now) {
  bool aud_ok = false;
  if (const auto* aud = claims.if_contains("aud")) {
    if (aud->is_string()) aud_ok = aud->as_string() == token_url;
    if (aud->is_array())
      for (const auto& a : aud->as_array()) aud_ok |= a.is_string() && a.as_string() == token_url;
  }
  if (!aud_ok)
    return EntraRefusal{http::status::bad_request, "invalid_client",
                        "AADSTS50013: Assertion audience does not match the token endpoint. The "
                        "audience must be " +
                            token_url + "."};
  if (json_string(claims, "iss") != client_id || json_string(claims, "sub") != client_id)
    return EntraRefusal{http::status::bad_request, "invalid_client",
                        "AADSTS700021: Client assertion application identifier doesn't match "
                        "'client_id' parameter. Review the documentation at "
                        "https://learn.microsoft.com/entra/identity-platform/"
                        "certificate-credentials ."};
  return check_time_range(claims, now);
}

std::optional<EntraRefusal> certificate_of_assertion(const json::object& header, X509* registered,
                                                     X509* client_ca, X509Ptr& signer) {
  if (const auto* x5c = header.if_contains("x5c")) {
    // Subject name + issuer: any certificate the trusted issuer gave the registered subject.
    const json::string* first = nullptr;
    if (x5c->is_array() && !x5c->as_array().empty() && x5c->as_array()[0].is_string())
      first = &x5c->as_array()[0].as_string();
    std::optional<Bytes> der = first ? base64_decode(*first) : std::nullopt;
    const unsigned char* p = der ? der->data() : nullptr;
    X509Ptr leaf(der ? d2i_X509(nullptr, &p, static_cast<long>(der->size())) : nullptr);
    if (!leaf) {
      ERR_clear_error();
      return EntraRefusal{http::status::bad_request, "invalid_client",
                          "AADSTS50027: JWT token is invalid or malformed: x5c must be an array "
                          "of base64 DER certificates, leaf first."};
    }
    bool issued = X509_check_issued(client_ca, leaf.get()) == X509_V_OK &&
                  X509_verify(leaf.get(), X509_get0_pubkey(client_ca)) == 1 &&
                  X509_cmp_current_time(X509_get0_notBefore(leaf.get())) < 0 &&
                  X509_cmp_current_time(X509_get0_notAfter(leaf.get())) > 0;
    ERR_clear_error();
    if (!issued)
      return unregistered_certificate(
          "The certificate in x5c was not issued by the issuer trusted for the application's "
          "subject name + issuer credential.");
    if (X509_NAME_cmp(X509_get_subject_name(leaf.get()), X509_get_subject_name(registered)) != 0)
      return unregistered_certificate(
          "The subject of the certificate in x5c is not the one registered for the "
          "application.");
    signer = std::move(leaf);
    return std::nullopt;
  }
  std::string x5t = json_string(header, "x5t#S256");
  std::string registered_x5t = base64url_encode(hash(DigestAlg::sha256, to_der(registered)));
  if (x5t != registered_x5t)
    return unregistered_certificate("The key was not found., Thumbprint of key used by client: '" +
                                    x5t + "'");
  X509_up_ref(registered);
  signer.reset(registered);
  return std::nullopt;
}

std::optional<EntraRefusal> check_assertion_claims(const json::object& claims,
                                                   const std::string& issuer,
                                                   const std::string& subject,
                                                   SysClock::time_point now) {
  if (!audience_ok(claims))
    return EntraRefusal{http::status::bad_request, "invalid_client",
                        "AADSTS700212: No matching federated identity record found for presented "
                        "assertion audience. The audience must be " +
                            std::string(kTokenAudience) + "."};
  std::string iss = json_string(claims, "iss");
  std::string sub = json_string(claims, "sub");
  if (iss != issuer || sub != subject)
    return EntraRefusal{http::status::bad_request, "invalid_client",
                        "AADSTS70021: No matching federated identity record found for presented "
                        "assertion. Assertion Issuer: '" +
                            iss + "'. Assertion Subject: '" + sub + "'."};
  return check_time_range(claims, now);
}

Answer entra_error(const EntraRefusal& r) {
  return json_answer(r.status,
                     {{"error", r.error},
                      {"error_description", r.description},
                      {"error_codes", json::array{}},
                      {"timestamp", iso_time(SysClock::now())},
                      {"trace_id", random_id()},
                      {"correlation_id", random_id()}},
                     "entra");
}

Identity::Identity(const Options& opts, const Endpoints& ep, const Pki& pki)
    : opts_(opts),
      ep_(ep),
      pki_(pki),
      oidc_key_(pki.oidc_key.get()),
      issuer_(ep.base_url + "github"),
      kid_(key_id(pki.oidc_key.get())) {}

Answer Identity::github_token(const StringRequest& req, const boost::urls::url_view& u) {
  if (req.method() != http::verb::get)
    return json_answer(http::status::method_not_allowed, {{"message", "use GET"}}, "oidc");
  if (!equal_secret(bearer(req), ep_.id_token_request_token))
    return json_answer(http::status::unauthorized,
                       {{"message", "Bad credentials: ACTIONS_ID_TOKEN_REQUEST_TOKEN not valid"}},
                       "oidc");
  std::string audience = "https://github.com/tsign-emulator";  // GitHub's default audience
  if (auto it = u.params().find("audience"); it != u.params().end()) audience = (*it).value;
  std::int64_t now = unix_now();
  json::object claims{
      {"jti", random_id()},
      {"sub", opts_.subject},
      {"aud", audience},
      {"ref", "refs/heads/main"},
      {"repository", "tsign-emulator/demo"},
      {"repository_owner", "tsign-emulator"},
      {"event_name", "push"},
      {"iss", issuer_},
      {"nbf", now},
      {"iat", now},
      {"exp", now + opts_.github_token_lifetime.count()},
  };
  std::string jwt = jwt_sign(oidc_key_, {{"alg", "RS256"}, {"typ", "JWT"}, {"kid", kid_}}, claims);
  return json_answer(http::status::ok, {{"count", 1}, {"value", jwt}}, "oidc");
}

Answer Identity::entra_token(const StringRequest& req, const std::string& tenant) {
  if (req.method() != http::verb::post)
    return entra_error({http::status::method_not_allowed, "invalid_request",
                        "AADSTS900561: The endpoint only accepts POST requests."});
  if (tenant != ep_.tenant_id)
    return entra_error({http::status::bad_request, "invalid_request",
                        "AADSTS90002: Tenant '" + tenant +
                            "' not found. Check that AZURE_TENANT_ID is the emulator's tenant."});
  auto ct = req[http::field::content_type];
  if (ct.substr(0, 33) != "application/x-www-form-urlencoded")
    return entra_error({http::status::bad_request, "invalid_request",
                        "AADSTS900144: The request body must be "
                        "application/x-www-form-urlencoded."});
  auto form = parse_form(req.body());
  if (!form)
    return entra_error({http::status::bad_request, "invalid_request",
                        "AADSTS900144: The request body is not valid form encoding."});
  if (auto r = check_client(*form, ep_.client_id, tenant)) return entra_error(*r);
  if (auto r = check_credential(*form, tenant)) return entra_error(*r);
  return issue_access_token();
}

// A client secret, or else an assertion: signed with the application's certificate when its
// header names one (x5t#S256 or x5c), otherwise a federated one the emulator's GitHub OIDC key
// signed.
std::optional<EntraRefusal> Identity::check_credential(const Form& form,
                                                       const std::string& tenant) const {
  if (auto secret = field(form, "client_secret")) {
    if (equal_secret(*secret, ep_.client_secret)) return std::nullopt;
    return EntraRefusal{http::status::unauthorized, "invalid_client",
                        "AADSTS7000215: Invalid client secret provided. Ensure the secret being "
                        "sent in the request is the client secret value."};
  }
  auto assertion = field(form, "client_assertion");
  if (!assertion)
    return EntraRefusal{http::status::bad_request, "invalid_client",
                        "AADSTS7000218: The request body must contain the following parameter: "
                        "'client_assertion' or 'client_secret'."};
  if (field(form, "client_assertion_type") != std::optional<std::string>(kAssertionType))
    return EntraRefusal{
        http::status::bad_request, "invalid_request",
        "AADSTS700023: client_assertion_type must be " + std::string(kAssertionType) + "."};
  auto jwt = jwt_parse(*assertion, oidc_key_);
  if (!jwt)
    return EntraRefusal{http::status::bad_request, "invalid_client",
                        "AADSTS50027: JWT token is invalid or malformed."};
  if (jwt->header.contains("x5t#S256") || jwt->header.contains("x5c"))
    return check_certificate_assertion(*assertion, jwt->header, tenant);
  if (!jwt->signature_valid)
    return EntraRefusal{http::status::unauthorized, "invalid_client",
                        "AADSTS700027: Client assertion contains an invalid signature."};
  return check_assertion_claims(jwt->claims, issuer_, opts_.subject, SysClock::now());
}

std::optional<EntraRefusal> Identity::check_certificate_assertion(const std::string& assertion,
                                                                  const json::object& header,
                                                                  const std::string& tenant) const {
  X509Ptr signer;
  if (auto r =
          certificate_of_assertion(header, pki_.client_cert.get(), pki_.client_ca.get(), signer))
    return r;
  auto jwt = jwt_parse(assertion, X509_get0_pubkey(signer.get()));
  if (!jwt || !jwt->signature_valid)
    return EntraRefusal{http::status::unauthorized, "invalid_client",
                        "AADSTS700027: Client assertion contains an invalid signature. [Reason - "
                        "The key used to sign it is not the certificate's.]"};
  return check_client_assertion_claims(jwt->claims, ep_.base_url + tenant + "/oauth2/v2.0/token",
                                       ep_.client_id, SysClock::now());
}

Answer Identity::issue_access_token() {
  auto now = SysClock::now();
  if (access_tokens_.size() > 4096)
    std::erase_if(access_tokens_, [&](const auto& kv) { return kv.second <= now; });
  std::string token = "emu." + base64url_encode(random_bytes(32));
  access_tokens_[token] = now + opts_.access_token_lifetime;
  auto life = opts_.access_token_lifetime.count();
  return json_answer(http::status::ok,
                     {{"token_type", "Bearer"},
                      {"expires_in", life},
                      {"ext_expires_in", life},
                      {"access_token", token}},
                     "entra");
}

TokenState Identity::check(const std::string& token) const {
  if (token.empty()) return TokenState::missing;
  auto it = access_tokens_.find(token);
  if (it == access_tokens_.end()) return TokenState::unknown;
  return it->second <= SysClock::now() ? TokenState::expired : TokenState::valid;
}

}  // namespace tsign::emulator
