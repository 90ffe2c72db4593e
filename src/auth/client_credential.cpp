// The environment credential: a service principal with a client secret (RFC 6749 §4.4 client
// credentials grant) or a client certificate (a self-signed JWT client assertion, RFC 7523 §2.2
// with RFC 7515 JWS / RFC 7519 JWT, RS256 of RFC 7518 §3.3), as Microsoft Entra ID's
// "certificate credentials" document them (header x5t#S256).
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <boost/json.hpp>

#include "auth/auth_internal.hpp"
#include "common/digest.hpp"
#include "common/error.hpp"
#include "platform/platform.hpp"

namespace tsign::auth {

namespace json = boost::json;

namespace {

// No passphrase prompt on a terminal: an encrypted key is an input error, not a hang.
int no_password(char*, int, int, void*) {
  return 0;
}

std::int64_t unix_seconds(SysClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

ClientCertificate parse_client_certificate(std::string_view pem, const std::string& path) {
  const std::string where = "AZURE_CLIENT_CERTIFICATE_PATH " + path;
  ClientCertificate cc;
  {
    BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    cc.key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, nullptr));
  }
  if (!cc.key)
    throw InputError(where +
                     ": no unencrypted private key found (the file must hold the certificate and "
                     "its key in PEM): " +
                     openssl_error_text());
  if (EVP_PKEY_get_base_id(cc.key.get()) != EVP_PKEY_RSA)
    throw InputError(where + ": the private key is not an RSA key (Entra ID expects RS256)");
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  // The certificate that matches the key, wherever it is in the file (chains are common).
  while (X509Ptr cert{PEM_read_bio_X509(bio.get(), nullptr, no_password, nullptr)}) {
    if (EVP_PKEY_eq(X509_get0_pubkey(cert.get()), cc.key.get()) == 1) {
      cc.cert = std::move(cert);
      break;
    }
  }
  openssl_error_text();  // drop the expected end-of-file error of the loop
  if (!cc.cert) throw InputError(where + ": no certificate in the file matches its private key");
  return cc;
}

ClientCertificate load_client_certificate(const std::string& path) {
  Bytes b;
  try {
    platform::ReadFile f(platform::from_utf8(path));
    if (f.size() > 1024 * 1024) throw InputError(path + ": too large for a PEM certificate file");
    b = f.read_at(0, static_cast<std::size_t>(f.size()));
  } catch (const FileError& e) {
    // A configuration problem (exit 2), not a failure of one file being signed.
    throw InputError(std::string("AZURE_CLIENT_CERTIFICATE_PATH: ") + e.what());
  }
  return parse_client_certificate(to_string(b), path);
}

Secret build_client_assertion(const ClientCertificate& cc, const std::string& client_id,
                              const std::string& token_url, SysClock::time_point now) {
  unsigned char* der = nullptr;
  int der_len = i2d_X509(cc.cert.get(), &der);
  if (der_len <= 0)
    throw AuthError("cannot encode the client certificate: " + openssl_error_text());
  Bytes thumb = hash(DigestAlg::sha256, ByteView(der, static_cast<std::size_t>(der_len)));
  OPENSSL_free(der);

  json::object header{{"alg", "RS256"}, {"typ", "JWT"}, {"x5t#S256", base64url_encode(thumb)}};
  auto t = unix_seconds(now);
  json::object claims{
      {"aud", token_url}, {"iss", client_id}, {"sub", client_id}, {"jti", to_hex(random_bytes(16))},
      {"nbf", t},         {"iat", t},         {"exp", t + 600}};
  std::string signing_input = base64url_encode(as_bytes(json::serialize(header))) + "." +
                              base64url_encode(as_bytes(json::serialize(claims)));

  OsslPtr<EVP_MD_CTX, EVP_MD_CTX_free> ctx(EVP_MD_CTX_new());
  std::size_t sig_len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, cc.key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &sig_len,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1)
    throw AuthError("cannot sign the client assertion: " + openssl_error_text());
  Bytes sig(sig_len);
  if (EVP_DigestSign(ctx.get(), sig.data(), &sig_len,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1)
    throw AuthError("cannot sign the client assertion: " + openssl_error_text());
  sig.resize(sig_len);
  return Secret(signing_input + "." + base64url_encode(sig));
}

namespace {

class ClientSecretSource final : public TokenSource {
 public:
  ClientSecretSource(const ResolvedSettings& s, http::Client& client, NowFn now)
      : client_(client),
        now_(std::move(now)),
        client_id_(s.client_id),
        secret_(s.client_secret),
        url_(entra_token_url(s.authority, s.tenant_id)),
        who_("client secret of client " + s.client_id + " in tenant " + s.tenant_id) {}

  boost::asio::awaitable<AccessToken> get_token() override {
    // Named, not a temporary in the co_await expression (GCC 12 coroutine bug).
    const std::vector<std::pair<std::string, std::string>> form{
        {"client_id", client_id_},
        {"scope", kCodeSigningScope},
        {"client_secret", secret_.reveal()},
        {"grant_type", "client_credentials"}};
    co_return co_await request_entra_token(client_, url_, form, who_, now_());
  }
  std::string name() const override { return "client secret"; }

 private:
  http::Client& client_;
  NowFn now_;
  std::string client_id_;
  Secret secret_;
  std::string url_, who_;
};

class ClientCertificateSource final : public TokenSource {
 public:
  ClientCertificateSource(const ResolvedSettings& s, http::Client& client, NowFn now)
      : client_(client),
        now_(std::move(now)),
        client_id_(s.client_id),
        cert_(load_client_certificate(s.client_certificate_path)),
        url_(entra_token_url(s.authority, s.tenant_id)),
        who_("client certificate " + s.client_certificate_path + " of client " + s.client_id +
             " in tenant " + s.tenant_id) {}

  boost::asio::awaitable<AccessToken> get_token() override {
    // A new assertion per request: each lives 10 minutes and carries its own jti.
    Secret assertion = build_client_assertion(cert_, client_id_, url_, now_());
    const std::vector<std::pair<std::string, std::string>> form{
        {"client_id", client_id_},
        {"scope", kCodeSigningScope},
        {"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
        {"client_assertion", assertion.reveal()},
        {"grant_type", "client_credentials"}};
    co_return co_await request_entra_token(client_, url_, form, who_, now_());
  }
  std::string name() const override { return "client certificate"; }

 private:
  http::Client& client_;
  NowFn now_;
  std::string client_id_;
  ClientCertificate cert_;
  std::string url_, who_;
};

}  // namespace

std::unique_ptr<TokenSource> make_client_secret_source(const ResolvedSettings& s,
                                                       http::Client& client, Log& log, NowFn now) {
  log.mask(s.client_secret);
  return std::make_unique<ClientSecretSource>(s, client, std::move(now));
}

std::unique_ptr<TokenSource> make_client_certificate_source(const ResolvedSettings& s,
                                                            http::Client& client, Log&, NowFn now) {
  return std::make_unique<ClientCertificateSource>(s, client, std::move(now));
}

// Its row in credential_table.hpp: a client secret, else a certificate, with both IDs.
LinkOutcome environment_credential(const LinkInputs& in) {
  const ResolvedSettings& s = in.settings;
  const bool ids = !s.tenant_id.empty() && !s.client_id.empty();
  if (ids && !s.client_secret.empty())
    return {make_client_secret_source(s, in.client, in.log, in.now), {}};
  if (ids && !s.client_certificate_path.empty())
    return {make_client_certificate_source(s, in.client, in.log, in.now), {}};
  return {nullptr,
          missing_list({{"AZURE_TENANT_ID", !s.tenant_id.empty()},
                        {"AZURE_CLIENT_ID", !s.client_id.empty()},
                        {"AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH",
                         !s.client_secret.empty() || !s.client_certificate_path.empty()}})};
}

}  // namespace tsign::auth
