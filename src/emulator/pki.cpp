// The emulator's PKI: X.509 v3 certificates per RFC 5280 (§4.2.1 extensions), built with
// OpenSSL's X509 and X509V3 configuration APIs; the leaf mirrors Trusted Signing's (protocol.md
// §3), the TSA certificate follows RFC 3161 §2.3 (sole, critical timeStamping EKU).
#include "emulator/pki.hpp"

#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>

#include "common/digest.hpp"
#include "common/error.hpp"
#include "platform/platform.hpp"

namespace tsign::emulator {

namespace fs = std::filesystem;

namespace {

using BignumPtr = OsslPtr<BIGNUM, BN_free>;
using X509ExtPtr = OsslPtr<X509_EXTENSION, X509_EXTENSION_free>;

constexpr long kDay = 24L * 60 * 60;

// The stack borrows its certificates from the Pki.
void free_stack_only(STACK_OF(X509) * s) {
  sk_X509_free(s);
}

[[noreturn]] void fail(const std::string& what) {
  throw FileError("emulator: " + what + ": " + openssl_error_text());
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const fs::path& p, const std::string& text, bool owner_only) {
  {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw FileError("emulator: cannot write " + platform::to_utf8(p));
  }
  if (owner_only) {
    // Private keys: nobody else on the machine should be able to sign with them.
    std::error_code ec;
    fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace,
                    ec);
  }
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

EvpPkeyPtr read_key(const fs::path& p) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return nullptr;
  std::string text = read_text(p);
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();  // a broken file is simply replaced
  return key;
}

void write_key(const fs::path& p, EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr))
    fail("cannot encode key " + platform::to_utf8(p));
  write_text(p, bio_text(bio.get()), true);
}

X509Ptr read_cert(const fs::path& p) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return nullptr;
  std::string text = read_text(p);
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  return cert;
}

// A key from `dir/name.key`, or a new one (written there) made by `generate`.
EvpPkeyPtr key_slot(const fs::path& dir, const std::string& name,
                    const std::function<EVP_PKEY*()>& generate) {
  fs::path p = dir / (name + ".key");
  if (auto key = read_key(p)) return key;
  EvpPkeyPtr key(generate());
  if (!key) fail("cannot generate the " + name + " key");
  write_key(p, key.get());
  return key;
}

EVP_PKEY* rsa(unsigned bits) {
  return EVP_RSA_gen(bits);
}
EVP_PKEY* p256() {
  return EVP_EC_gen("P-256");
}

struct CertSpec {
  std::string cn;
  std::string org = "tsign emulator";
  long days = 3650;
  // X509V3 configuration values (OpenSSL's x509v3_config syntax), empty = absent.
  std::string basic_constraints;
  std::string key_usage;
  std::string ext_key_usage;
  std::string subject_alt_name;
};

void add_ext(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  if (value.empty()) return;
  X509ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value.c_str()));
  if (!ext || !X509_add_ext(cert, ext.get(), -1))
    fail(std::string("cannot add the ") + OBJ_nid2sn(nid) + " extension '" + value + "'");
}

// Issues a certificate for `key`; self-signed when issuer is null.
X509Ptr issue(const CertSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  X509Ptr cert(X509_new());
  if (!cert) fail("X509_new");
  X509_set_version(cert.get(), X509_VERSION_3);

  // 159 random bits: unique and positive, as RFC 5280 §4.1.2.2 asks.
  BignumPtr bn(BN_new());
  if (!bn || !BN_rand(bn.get(), 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
      !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())))
    fail("cannot make a serial number");

  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.org.c_str()), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);

  // Back-dated an hour so a client whose clock is a little behind accepts it.
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.days * kDay);
  X509_set_pubkey(cert.get(), key);

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  add_ext(cert.get(), &ctx, NID_basic_constraints, spec.basic_constraints);
  add_ext(cert.get(), &ctx, NID_key_usage, spec.key_usage);
  add_ext(cert.get(), &ctx, NID_ext_key_usage, spec.ext_key_usage);
  add_ext(cert.get(), &ctx, NID_subject_alt_name, spec.subject_alt_name);
  add_ext(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  add_ext(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");

  if (!X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha256()))
    fail("cannot sign the certificate '" + spec.cn + "'");
  return cert;
}

// Reuses dir/name.pem when it belongs to `key`, was issued by `issuer` (with `issuer_key`) and
// stays valid for at least another day; otherwise issues and writes a new one.
X509Ptr cert_slot(const fs::path& dir, const std::string& name, const CertSpec& spec, EVP_PKEY* key,
                  X509* issuer, EVP_PKEY* issuer_key) {
  fs::path p = dir / (name + ".pem");
  if (auto cert = read_cert(p)) {
    X509* iss = issuer ? issuer : cert.get();
    EVP_PKEY* ikey = issuer_key ? issuer_key : key;
    time_t soon = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now()) + kDay;
    bool ok = X509_check_private_key(cert.get(), key) == 1 &&
              X509_check_issued(iss, cert.get()) == X509_V_OK &&
              X509_verify(cert.get(), ikey) == 1 &&
              X509_cmp_time(X509_get0_notAfter(cert.get()), &soon) > 0;
    ERR_clear_error();
    if (ok) return cert;
  }
  X509Ptr cert = issue(spec, key, issuer, issuer_key);
  write_text(p, to_pem(cert.get()), false);
  return cert;
}

}  // namespace

Bytes to_der(X509* cert) {
  int n = i2d_X509(cert, nullptr);
  if (n <= 0) fail("i2d_X509");
  Bytes out(static_cast<std::size_t>(n));
  unsigned char* p = out.data();
  i2d_X509(cert, &p);
  return out;
}

std::string to_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_X509(bio.get(), cert)) fail("PEM_write_bio_X509");
  return bio_text(bio.get());
}

std::string identity_eku(const std::string& account, const std::string& profile) {
  // Derived from the names so that it is the same across leaf rotations and restarts, like the
  // service's per-identity value; each arc kept below 2^31.
  Bytes h = hash(DigestAlg::sha256, as_bytes(account + "/" + profile));
  std::string oid = "1.3.6.1.4.1.311.97";
  for (int i = 0; i < 4; ++i) {
    std::uint32_t v = 0;
    for (int j = 0; j < 4; ++j) v = (v << 8) | h[static_cast<std::size_t>(i * 4 + j)];
    oid += "." + std::to_string(v & 0x7fffffffU);
  }
  return oid;
}

Pki load_or_create_pki(const PkiOptions& opts) {
  const fs::path& d = opts.dir;
  Pki pki;

  // TLS: EC keys, quick to make and to handshake with when hundreds of connections arrive.
  pki.tls_root_key = key_slot(d, "tls-ca", p256);
  pki.tls_root = cert_slot(d, "tls-ca",
                           {.cn = "tsign Emulator TLS Root",
                            .basic_constraints = "critical,CA:TRUE",
                            .key_usage = "critical,keyCertSign,cRLSign"},
                           pki.tls_root_key.get(), nullptr, nullptr);
  pki.tls_server_key = key_slot(d, "tls-server", p256);
  pki.tls_server = cert_slot(d, "tls-server",
                             {.cn = "localhost",
                              .days = 365,
                              .basic_constraints = "critical,CA:FALSE",
                              .key_usage = "critical,digitalSignature",
                              .ext_key_usage = "serverAuth",
                              .subject_alt_name = "DNS:localhost,IP:127.0.0.1,IP:::1"},
                             pki.tls_server_key.get(), pki.tls_root.get(), pki.tls_root_key.get());

  // Code signing: RSA like the service's chain; the leaf is RSA-3072 as the service's is.
  pki.cs_root_key = key_slot(d, "codesign-root", [] { return rsa(3072); });
  pki.cs_root = cert_slot(d, "codesign-root",
                          {.cn = "Emulator Identity Verification Root Certificate Authority 2020",
                           .basic_constraints = "critical,CA:TRUE",
                           .key_usage = "critical,digitalSignature,keyCertSign,cRLSign"},
                          pki.cs_root_key.get(), nullptr, nullptr);
  pki.cs_ca_key = key_slot(d, "codesign-ca", [] { return rsa(3072); });
  pki.cs_ca = cert_slot(d, "codesign-ca",
                        {.cn = "Emulator ID Verified CS EOC CA 01",
                         .basic_constraints = "critical,CA:TRUE,pathlen:0",
                         .key_usage = "critical,digitalSignature,keyCertSign,cRLSign",
                         .ext_key_usage = "codeSigning"},
                        pki.cs_ca_key.get(), pki.cs_root.get(), pki.cs_root_key.get());
  pki.leaf_key = key_slot(d, "codesign-leaf", [] { return rsa(3072); });
  if (!opts.leaf_without_code_signing) pki.leaf_ekus.push_back("1.3.6.1.5.5.7.3.3");
  pki.leaf_ekus.push_back("1.3.6.1.4.1.311.97.1.0");
  pki.leaf_ekus.push_back(identity_eku(opts.account, opts.profile));
  std::string ekus;
  for (const auto& e : pki.leaf_ekus) ekus += (ekus.empty() ? "" : ",") + e;
  // Fresh on every start, 3 days, like the service's rotating leaf.
  pki.leaf = issue({.cn = "tsign Emulator Publisher (" + opts.account + "/" + opts.profile + ")",
                    .days = 3,
                    .basic_constraints = "critical,CA:FALSE",
                    .key_usage = "critical,digitalSignature",
                    .ext_key_usage = ekus},
                   pki.leaf_key.get(), pki.cs_ca.get(), pki.cs_ca_key.get());
  write_text(d / "codesign-leaf.pem", to_pem(pki.leaf.get()), false);

  pki.tsa_root_key = key_slot(d, "tsa-root", [] { return rsa(2048); });
  pki.tsa_root = cert_slot(d, "tsa-root",
                           {.cn = "Emulator Time Stamping Root",
                            .basic_constraints = "critical,CA:TRUE",
                            .key_usage = "critical,keyCertSign,cRLSign"},
                           pki.tsa_root_key.get(), nullptr, nullptr);
  pki.tsa_key = key_slot(d, "tsa", [] { return rsa(2048); });
  pki.tsa = cert_slot(d, "tsa",
                      {.cn = "Emulator Time Stamping Authority",
                       .days = 365,
                       .basic_constraints = "critical,CA:FALSE",
                       .key_usage = "critical,digitalSignature,nonRepudiation",
                       .ext_key_usage = "critical,timeStamping"},
                      pki.tsa_key.get(), pki.tsa_root.get(), pki.tsa_root_key.get());

  pki.oidc_key = key_slot(d, "oidc", [] { return rsa(2048); });

  pki.client_ca_key = key_slot(d, "client-ca", [] { return rsa(2048); });
  pki.client_ca = cert_slot(d, "client-ca",
                            {.cn = "tsign Emulator Client CA",
                             .basic_constraints = "critical,CA:TRUE",
                             .key_usage = "critical,keyCertSign,cRLSign"},
                            pki.client_ca_key.get(), nullptr, nullptr);
  pki.client_key = key_slot(d, "client", [] { return rsa(2048); });
  pki.client_cert = cert_slot(d, "client",
                              {.cn = "tsign-emulator-client",
                               .days = 365,
                               .basic_constraints = "critical,CA:FALSE",
                               .key_usage = "critical,digitalSignature",
                               .ext_key_usage = "clientAuth"},
                              pki.client_key.get(), pki.client_ca.get(), pki.client_ca_key.get());
  return pki;
}

void write_client_certificate(const Pki& pki, const fs::path& pem, const fs::path& pfx,
                              const std::string& password) {
  BioPtr key_bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(key_bio.get(), pki.client_key.get(), nullptr, nullptr, 0, nullptr,
                                nullptr))
    fail("cannot encode the client key");
  write_text(pem,
             to_pem(pki.client_cert.get()) + bio_text(key_bio.get()) + to_pem(pki.client_ca.get()),
             true);

  OsslPtr<STACK_OF(X509), free_stack_only> ca(sk_X509_new_null());
  if (!ca || !sk_X509_push(ca.get(), pki.client_ca.get())) fail("sk_X509_push");
  // OpenSSL 3's defaults: AES-256-CBC with PBKDF2 and a SHA-256 MAC, as current tools export.
  OsslPtr<PKCS12, PKCS12_free> p12(PKCS12_create(password.c_str(), "tsign emulator client",
                                                 pki.client_key.get(), pki.client_cert.get(),
                                                 ca.get(), 0, 0, 0, 0, 0));
  if (!p12) fail("cannot make the client PKCS#12 file");
  BioPtr out(BIO_new(BIO_s_mem()));
  if (i2d_PKCS12_bio(out.get(), p12.get()) != 1) fail("cannot encode the client PKCS#12 file");
  write_text(pfx, bio_text(out.get()), true);
}

}  // namespace tsign::emulator
