// The emulator's Trusted Signing data plane (docs/protocol.md §3; see signing.hpp). Signatures
// are real: RSASSA-PKCS1-v1_5 by the leaf's key over the digest sent, so a client can verify
// what it gets against the chain it gets.
#include "emulator/signing.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>

#include <openssl/pkcs7.h>
#include <openssl/rsa.h>

#include "common/error.hpp"
#include "common/ossl.hpp"

namespace tsign::emulator {

namespace http = boost::beast::http;
namespace json = boost::json;

namespace {

// The Azure Core error shape of the GA api-version (its OpenAPI description's
// Azure.Core.Foundations.ErrorResponse), with the x-ms-error-code header it declares.
Answer core_error(http::status status, const std::string& code, const std::string& message,
                  const std::string& target, std::string kind) {
  json::object error{{"code", code}, {"message", message}};
  if (!target.empty()) error["target"] = target;
  Answer a = json_answer(status, {{"error", error}}, std::move(kind));
  a.res.set("x-ms-error-code", code);
  return a;
}

// A signing-service error in the shape of the api-version asked for.
Answer service_error(const std::string& api, http::status status, const std::string& code,
                     const std::string& message, const std::string& target, std::string kind) {
  return api_shape(api) == ApiShape::ga2024
             ? core_error(status, code, message, target, std::move(kind))
             : error_detail(status, code, message, target, std::move(kind));
}

const EVP_MD* rs_md(std::string_view alg) {
  if (alg == "RS256") return EVP_sha256();
  if (alg == "RS384") return EVP_sha384();
  if (alg == "RS512") return EVP_sha512();
  return nullptr;
}

// A certs-only PKCS#7 SignedData (RFC 2315 §9.1 degenerate case), leaf first.
Bytes certs_only_pkcs7(const std::vector<X509*>& certs) {
  PKCS7Ptr p7(PKCS7_new());
  if (!p7 || !PKCS7_set_type(p7.get(), NID_pkcs7_signed) ||
      !PKCS7_content_new(p7.get(), NID_pkcs7_data))
    throw FileError("emulator: cannot build the certificate chain: " + openssl_error_text());
  for (X509* c : certs)
    if (!PKCS7_add_certificate(p7.get(), c))
      throw FileError("emulator: cannot build the certificate chain: " + openssl_error_text());
  int n = i2d_PKCS7(p7.get(), nullptr);
  if (n <= 0) throw FileError("emulator: cannot encode the certificate chain");
  Bytes out(static_cast<std::size_t>(n));
  unsigned char* p = out.data();
  i2d_PKCS7(p7.get(), &p);
  return out;
}

// "Retry-After: 1", as Azure services say when they will be back (RFC 9110 §10.2.3).
Answer retry_soon(Answer a) {
  a.res.set(http::field::retry_after, "1");
  return a;
}

}  // namespace

Answer error_detail(http::status status, const std::string& code, const std::string& message,
                    const std::string& target, std::string kind) {
  return json_answer(status,
                     {{"errorDetail", {{"code", code}, {"message", message}, {"target", target}}}},
                     std::move(kind));
}

SigningService::SigningService(const Options& opts, const Endpoints& ep, const Pki& pki,
                               const Identity& identity)
    : opts_(opts),
      ep_(ep),
      pki_(pki),
      identity_(identity),
      chain_der_(certs_only_pkcs7({pki.leaf.get(), pki.cs_ca.get(), pki.cs_root.get()})),
      root_der_(to_der(pki.cs_root.get())),
      signing_certificate_(double_base64(chain_der_)) {}

bool SigningService::occupies(const Answer& a) {
  return (a.kind == "sign" || a.kind == "poll") && a.fault.empty();
}

Answer SigningService::handle(const StringRequest& req, const boost::urls::url_view& u,
                              const std::vector<std::string>& segs) {
  ServiceRequest r = classify_service_request(segs, req.method());
  const std::string& kind = r.kind;
  if (kind == "unknown")
    return error_detail(http::status::not_found, "NotFound",
                        "the emulator serves no Trusted Signing operation at this path",
                        std::string(u.encoded_path()), kind);

  if (kind == "sign" || kind == "poll")
    if (auto f = fault(kind, kind == "sign")) return std::move(*f);

  std::string api;
  if (auto p = u.params().find("api-version"); p != u.params().end()) api = (*p).value;
  // Authentication comes before resource lookup, as at the service.
  if (TokenState state = identity_.check(bearer(req)); state != TokenState::valid)
    return unauthorized(api, kind, state);
  if (!api_served(opts_.api_versions, api)) return refuse_version(req, api, kind);
  if (kind == "sign" && !sign_route_exists(api, r.colon_sign))
    return service_error(api, http::status::not_found, "NotFound",
                         "api-version " + api + " has no sign operation at this path",
                         std::string(u.encoded_path()), kind);
  if (auto not_found = find_profile(r, api)) return std::move(*not_found);

  if (kind == "sign") {
    if (opts_.forbid) {
      Answer a;
      a.kind = kind;
      a.res.result(http::status::forbidden);
      a.fault = "forbid";
      return a;
    }
    return sign(req, api, "codesigningaccounts/" + r.account + "/certificateprofiles/" + r.profile);
  }
  if (kind == "poll") return poll(r.operation, api);
  if (kind == "eku")
    return json_answer(http::status::ok, eku_body(api_shape(api), pki_.leaf_ekus), kind);
  return certificate(kind);
}

// The fault injected into this sign/poll request, if any (see Options).
std::optional<Answer> SigningService::fault(const std::string& kind, bool is_sign) {
  Fault f = faults_.next(opts_, is_sign, in_flight);
  Answer a;
  switch (f) {
    case Fault::none:
      return std::nullopt;
    case Fault::capacity:
      a = retry_soon(error_detail(http::status::too_many_requests, "TooManyRequests",
                                  "The emulator serves at most " + std::to_string(opts_.capacity) +
                                      " signing requests at once.",
                                  "", kind));
      break;
    case Fault::drop:
      a.kind = kind;
      a.drop = true;
      break;
    case Fault::throttle:
      a = retry_soon(error_detail(
          http::status::too_many_requests, "TooManyRequests",
          "The emulator throttles every " + std::to_string(opts_.throttle_every) + "th request.",
          "", kind));
      break;
    case Fault::fail:
      a = retry_soon(error_detail(
          http::status::service_unavailable, "ServiceUnavailable",
          "The emulator fails every " + std::to_string(opts_.fail_every) + "th request.", "",
          kind));
      break;
    case Fault::malformed:
      a = json_answer(is_sign ? http::status::accepted : http::status::ok, nullptr, kind);
      a.res.body() = R"({"operationId":")" + random_id() + R"(","status":"InPro)";
      break;
  }
  a.fault = fault_name(f);
  return a;
}

// 401 in the shape of the api-version asked for, with the challenge Azure services give.
Answer SigningService::unauthorized(const std::string& api, const std::string& kind,
                                    TokenState state) const {
  std::string why = state == TokenState::missing   ? ""
                    : state == TokenState::expired ? "The access token expired"
                                                   : "The access token is invalid";
  Answer a = service_error(api, http::status::unauthorized, "Unauthorized",
                           why.empty() ? "No bearer token." : why + ".", "", kind);
  a.res.set(http::field::www_authenticate, bearer_challenge(ep_.base_url + ep_.tenant_id, why));
  return a;
}

// 404 for an account or profile the emulator does not have.
std::optional<Answer> SigningService::find_profile(const ServiceRequest& r,
                                                   const std::string& api) const {
  if (r.account != opts_.account)
    return service_error(api, http::status::not_found, "NotFound",
                         "Code signing account '" + r.account + "' was not found.", r.account,
                         r.kind);
  if (r.profile != opts_.profile)
    return service_error(
        api, http::status::not_found, "NotFound",
        "Certificate profile '" + r.profile + "' was not found in account '" + r.account + "'.",
        r.profile, r.kind);
  return std::nullopt;
}

// An api-version this emulator was told not to serve, refused the way the service was seen to:
// 400 with an Azure Core UnsupportedApiVersion error (in the words of Azure's API gateway), or a
// bare 401 or 404.
Answer SigningService::refuse_version(const StringRequest& req, const std::string& api,
                                      const std::string& kind) const {
  Answer a;
  if (opts_.unsupported_version_status == 400) {
    std::string served;
    for (const auto& v : opts_.api_versions) served += (served.empty() ? "" : ", ") + v;
    a = core_error(http::status::bad_request, "UnsupportedApiVersion",
                   "The HTTP resource that matches the request URI '" + ep_.base_url +
                       std::string(req.target()).substr(1) +
                       "' does not support the API version '" + api +
                       "'. Supported versions: " + served + ".",
                   "api-version", kind);
  } else {
    a.kind = kind;
    a.res.result(static_cast<http::status>(opts_.unsupported_version_status));
    if (opts_.unsupported_version_status == 401)
      a.res.set(http::field::www_authenticate, bearer_challenge(ep_.base_url + ep_.tenant_id, ""));
  }
  a.fault = "unsupported-version";
  return a;
}

// 202 with the operation in the shape of the api-version (signing_rules.hpp); the signature is
// made now and handed out once the operation has been polled enough.
Answer SigningService::sign(const StringRequest& req, const std::string& api,
                            const std::string& base_path) {
  boost::system::error_code ec;
  json::value v = json::parse(req.body(), ec);
  if (ec || !v.is_object())
    return service_error(api, http::status::bad_request, "BadRequest",
                         "The request body is not a JSON object.", "body", "sign");
  const json::object& body = v.as_object();
  std::string alg = json_string(body, "signatureAlgorithm");
  const EVP_MD* md = rs_md(alg);
  if (!md)
    return service_error(api, http::status::bad_request, "BadRequest",
                         "signatureAlgorithm '" + alg +
                             "' is not supported by this RSA profile; use RS256, RS384 or RS512.",
                         "signatureAlgorithm", "sign");
  auto digest = base64_decode(json_string(body, "digest"));
  std::size_t want = static_cast<std::size_t>(EVP_MD_get_size(md));
  if (!digest || digest->size() != want)
    return service_error(
        api, http::status::bad_request, "BadRequest",
        "digest must be the base64 of a " + std::to_string(want) + "-byte " + alg + " digest.",
        "digest", "sign");

  Bytes signed_digest = *digest;
  if (opts_.bad_signature) signed_digest.back() ^= 0x01;  // a valid signature, of another digest
  std::string id = random_id();
  operations_[id] = {base64_encode(sign_digest(signed_digest, md)), opts_.polls_before_success};

  Answer a = json_answer(http::status::accepted, sign_accepted_body(api_shape(api), id), "sign");
  a.res.set("Operation-Location", ep_.base_url + base_path + "/sign/" + id + "?api-version=" + api);
  a.res.set(http::field::retry_after, std::to_string(opts_.poll_retry_after));
  return a;
}

Answer SigningService::poll(const std::string& id, const std::string& api) {
  auto it = operations_.find(id);
  if (it == operations_.end())
    return service_error(api, http::status::not_found, "NotFound",
                         "Operation '" + id + "' was not found.", id, "poll");
  Operation& op = it->second;
  bool done = op.polls_left <= 0;
  if (!done) --op.polls_left;
  Answer a =
      json_answer(http::status::ok,
                  poll_body(api_shape(api), id, done, op.signature, signing_certificate_), "poll");
  if (!done) a.res.set(http::field::retry_after, std::to_string(opts_.poll_retry_after));
  return a;
}

// certchain (the certs-only PKCS#7) or rootcert (DER), as the service sends them.
Answer SigningService::certificate(const std::string& kind) const {
  Answer a;
  a.kind = kind;
  a.res.result(http::status::ok);
  const Bytes& body = kind == "certchain" ? chain_der_ : root_der_;
  a.res.set(http::field::content_type,
            kind == "certchain" ? "application/pkcs7-mime" : "application/x-x509-ca-cert");
  a.res.body() = to_string(body);
  return a;
}

Bytes SigningService::sign_digest(ByteView digest, const EVP_MD* md) const {
  // Raw RSASSA-PKCS1-v1_5 over a given digest (RFC 8017 §8.2): EVP_PKEY_sign with the digest
  // type set wraps it in a DigestInfo, exactly what the service returns.
  using PkeyCtxPtr = OsslPtr<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new(pki_.leaf_key.get(), nullptr));
  std::size_t len = 0;
  if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1 ||
      EVP_PKEY_CTX_set_signature_md(ctx.get(), md) != 1 ||
      EVP_PKEY_sign(ctx.get(), nullptr, &len, digest.data(), digest.size()) != 1)
    throw FileError("emulator: cannot sign: " + openssl_error_text());
  Bytes sig(len);
  if (EVP_PKEY_sign(ctx.get(), sig.data(), &len, digest.data(), digest.size()) != 1)
    throw FileError("emulator: cannot sign: " + openssl_error_text());
  sig.resize(len);
  return sig;
}

}  // namespace tsign::emulator
