// The environment credential: a service principal with a client secret (RFC 6749 §4.4 client
// credentials grant) or a client certificate (a self-signed JWT client assertion, RFC 7523 §2.2
// with RFC 7515 JWS / RFC 7519 JWT, RS256 of RFC 7518 §3.3), as Microsoft Entra ID's
// "certificate credentials" document them (header x5t#S256; with x5c, RFC 7515 §4.1.6, for
// subject name + issuer authentication). The file is PEM or PKCS#12 (RFC 7292), told apart by its
// content, as the Azure SDKs accept both under AZURE_CLIENT_CERTIFICATE_PATH.
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <boost/json.hpp>

#include <algorithm>

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

namespace {

using Pkcs12Ptr = OsslPtr<PKCS12, PKCS12_free>;
void free_certs(STACK_OF(X509) * s) {
  sk_X509_pop_free(s, X509_free);
}
using CertStackPtr = OsslPtr<STACK_OF(X509), free_certs>;

std::string where(const std::string& path) {
  return "AZURE_CLIENT_CERTIFICATE_PATH " + path;
}

// Leaf first, then each certificate's issuer as far as the file holds them (x5c's order, RFC 7515
// §4.1.6); certificates that chain to nothing follow in file order rather than being dropped.
std::vector<X509Ptr> order_chain(X509Ptr leaf, std::vector<X509Ptr> others) {
  std::vector<X509Ptr> chain;
  chain.push_back(std::move(leaf));
  for (;;) {
    X509* last = chain.back().get();
    if (X509_check_issued(last, last) == X509_V_OK) break;  // a self-signed root ends it
    auto it = std::find_if(others.begin(), others.end(), [&](const X509Ptr& c) {
      return c && X509_check_issued(c.get(), last) == X509_V_OK;
    });
    if (it == others.end()) break;
    chain.push_back(std::move(*it));
    others.erase(it);
  }
  for (auto& c : others)
    if (c && X509_cmp(c.get(), chain.front().get()) != 0) chain.push_back(std::move(c));
  return chain;
}

void check_rsa(const ClientCertificate& cc, const std::string& path) {
  if (EVP_PKEY_get_base_id(cc.key.get()) != EVP_PKEY_RSA)
    throw InputError(where(path) + ": the private key is not an RSA key (Entra ID expects RS256)");
}

ClientCertificate parse_pem(std::string_view pem, const std::string& path) {
  ClientCertificate cc;
  {
    BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    cc.key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, nullptr));
  }
  if (!cc.key)
    throw InputError(where(path) +
                     ": no unencrypted private key found (the file must hold the certificate and "
                     "its key in PEM, or be a PKCS#12 file): " +
                     openssl_error_text());
  check_rsa(cc, path);
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  // The certificate that matches the key, wherever it is in the file (chains are common).
  std::vector<X509Ptr> others;
  X509Ptr leaf;
  while (X509Ptr cert{PEM_read_bio_X509(bio.get(), nullptr, no_password, nullptr)}) {
    if (!leaf && EVP_PKEY_eq(X509_get0_pubkey(cert.get()), cc.key.get()) == 1)
      leaf = std::move(cert);
    else
      others.push_back(std::move(cert));
  }
  openssl_error_text();  // drop the expected end-of-file error of the loop
  if (!leaf) throw InputError(where(path) + ": no certificate in the file matches its private key");
  cc.chain = order_chain(std::move(leaf), std::move(others));
  cc.cert = clone(cc.chain.front());
  return cc;
}

// PKCS12_parse does the decoding and decryption; only the password check is ours, so that a
// wrong password is named as such rather than as an OpenSSL error queue.
ClientCertificate parse_pfx(PKCS12* p12, const std::string& path, const Secret& password) {
  const std::string& pass = password.reveal();
  const std::string hint =
      " (set azure-client-certificate-password or AZURE_CLIENT_CERTIFICATE_PASSWORD)";
  if (PKCS12_mac_present(p12)) {
    // An empty password is "" or NULL depending on the tool that exported the file.
    bool ok = PKCS12_verify_mac(p12, pass.c_str(), static_cast<int>(pass.size())) == 1 ||
              (pass.empty() && PKCS12_verify_mac(p12, nullptr, 0) == 1);
    ERR_clear_error();
    if (!ok)
      throw InputError(where(path) + ": " +
                       (pass.empty() ? "the PKCS#12 file needs a password"
                                     : "wrong password for the PKCS#12 file") +
                       hint);
  }
  EVP_PKEY* key_raw = nullptr;
  X509* cert_raw = nullptr;
  STACK_OF(X509)* ca_raw = nullptr;
  int ok = PKCS12_parse(p12, pass.c_str(), &key_raw, &cert_raw, &ca_raw);
  ClientCertificate cc;
  cc.key.reset(key_raw);
  X509Ptr leaf(cert_raw);
  CertStackPtr ca(ca_raw);
  if (ok != 1)
    throw InputError(where(path) + ": cannot read the PKCS#12 file (" + openssl_error_text() +
                     "); if it uses legacy RC2/3DES encryption, export it again with AES");
  if (!cc.key || !leaf)
    throw InputError(where(path) + ": the PKCS#12 file lacks a private key or its certificate");
  check_rsa(cc, path);
  if (X509_check_private_key(leaf.get(), cc.key.get()) != 1) {
    ERR_clear_error();
    throw InputError(where(path) + ": no certificate in the file matches its private key");
  }
  std::vector<X509Ptr> others;
  for (int i = 0; ca && i < sk_X509_num(ca.get()); ++i) {
    X509* c = sk_X509_value(ca.get(), i);
    X509_up_ref(c);
    others.emplace_back(c);
  }
  cc.chain = order_chain(std::move(leaf), std::move(others));
  cc.cert = clone(cc.chain.front());
  return cc;
}

Bytes der_of(X509* cert) {
  unsigned char* der = nullptr;
  int der_len = i2d_X509(cert, &der);
  if (der_len <= 0)
    throw AuthError("cannot encode the client certificate: " + openssl_error_text());
  Bytes out(der, der + der_len);
  OPENSSL_free(der);
  return out;
}

}  // namespace

ClientCertificate parse_client_certificate(std::string_view content, const std::string& path,
                                           const Secret& password) {
  // By content, not by name: a PKCS#12 file is a DER SEQUENCE that d2i_PKCS12 accepts, and PEM
  // is text, which it never does.
  const auto* p = reinterpret_cast<const unsigned char*>(content.data());
  Pkcs12Ptr p12(d2i_PKCS12(nullptr, &p, static_cast<long>(content.size())));
  ERR_clear_error();
  if (p12) return parse_pfx(p12.get(), path, password);
  return parse_pem(content, path);
}

ClientCertificate load_client_certificate(const std::string& path, const Secret& password) {
  Bytes b;
  try {
    platform::ReadFile f(platform::from_utf8(path));
    if (f.size() > 1024 * 1024) throw InputError(path + ": too large for a certificate file");
    b = f.read_at(0, static_cast<std::size_t>(f.size()));
  } catch (const FileError& e) {
    // A configuration problem (exit 2), not a failure of one file being signed.
    throw InputError(std::string("AZURE_CLIENT_CERTIFICATE_PATH: ") + e.what());
  }
  return parse_client_certificate(to_string(b), path, password);
}

Secret build_client_assertion(const ClientCertificate& cc, const std::string& client_id,
                              const std::string& token_url, SysClock::time_point now,
                              bool send_chain) {
  Bytes thumb = hash(DigestAlg::sha256, der_of(cc.cert.get()));
  json::object header{{"alg", "RS256"}, {"typ", "JWT"}, {"x5t#S256", base64url_encode(thumb)}};
  if (send_chain) {
    // Standard base64 (not base64url) of each DER certificate, leaf first: RFC 7515 §4.1.6.
    json::array x5c;
    for (const auto& c : cc.chain) x5c.emplace_back(base64_encode(der_of(c.get())));
    header["x5c"] = std::move(x5c);
  }
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
        cert_(load_client_certificate(s.client_certificate_path, s.client_certificate_password)),
        send_chain_(s.send_certificate_chain),
        url_(entra_token_url(s.authority, s.tenant_id)),
        who_("client certificate " + s.client_certificate_path + " of client " + s.client_id +
             " in tenant " + s.tenant_id) {}

  boost::asio::awaitable<AccessToken> get_token() override {
    // A new assertion per request: each lives 10 minutes and carries its own jti.
    Secret assertion = build_client_assertion(cert_, client_id_, url_, now_(), send_chain_);
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
  bool send_chain_;
  std::string url_, who_;
};

}  // namespace

std::unique_ptr<TokenSource> make_client_secret_source(const ResolvedSettings& s,
                                                       http::Client& client, Log& log, NowFn now) {
  log.mask(s.client_secret);
  return std::make_unique<ClientSecretSource>(s, client, std::move(now));
}

std::unique_ptr<TokenSource> make_client_certificate_source(const ResolvedSettings& s,
                                                            http::Client& client, Log& log,
                                                            NowFn now) {
  log.mask(s.client_certificate_password);
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
