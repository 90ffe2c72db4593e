// Certificates made at test time, so nothing binary is committed: X.509 v3 (RFC 5280) made
// in-process with OpenSSL's X509 API. The one certificate builder of the tests (the test server's
// TLS certificates, the TSAs, the credential and signer tests' chains), and the encodings those
// tests need: PEM, DER, a PKCS#7 certs-only bundle and MIME base64 as the signing service sends
// them. Header-only: a test that needs a certificate links nothing more.
#pragma once

#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <boost/asio/ip/address.hpp>

#include "common/bytes.hpp"
#include "common/error.hpp"
#include "common/ossl.hpp"

namespace tsign::test {

enum class KeyType { ec_p256, rsa_2048 };

struct CertSpec {
  std::string common_name = "tsign test";
  // subjectAltName entries: IP addresses become iPAddress, anything else dNSName.
  std::vector<std::string> names;
  // extendedKeyUsage in OpenSSL config syntax, e.g. "serverAuth", "codeSigning",
  // "critical,timeStamping" (RFC 3161 requires it critical). Empty: no EKU extension.
  std::string extended_key_usage;
  KeyType key = KeyType::ec_p256;
  std::chrono::seconds lifetime{std::chrono::hours(24 * 7)};
};

namespace pki_detail {

[[noreturn]] inline void fail(const std::string& what) {
  throw std::runtime_error("test certificate: " + what + ": " + openssl_error_text());
}

inline std::string bio_text(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

inline void add_ext(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
  if (!ext) fail("extension " + value);
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  if (!ok) fail("adding extension " + value);
}

inline bool is_ip(const std::string& s) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(s, ec);
  return !ec;
}

}  // namespace pki_detail

inline EvpPkeyPtr make_key(KeyType type) {
  EVP_PKEY* k = type == KeyType::ec_p256 ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
  if (!k) pki_detail::fail("key generation");
  return EvpPkeyPtr(k);
}

inline std::string to_pem(X509* x) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), x);
  return pki_detail::bio_text(bio.get());
}

// Unencrypted PKCS#8.
inline std::string key_pem(EVP_PKEY* k) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), k, nullptr, nullptr, 0, nullptr, nullptr);
  return pki_detail::bio_text(bio.get());
}

struct IssuedCert {
  EvpPkeyPtr key;
  X509Ptr cert;
  std::string cert_pem() const { return to_pem(cert.get()); }
  std::string key_pem() const { return test::key_pem(key.get()); }
};
using Pki = IssuedCert;

// A certificate for `spec`, issued by `issuer` (self-signed when null); `ca`: a CA certificate.
inline IssuedCert make_cert(const CertSpec& spec, const IssuedCert* issuer, bool ca) {
  using pki_detail::add_ext;
  IssuedCert out;
  out.key = make_key(spec.key);
  X509Ptr x(X509_new());
  if (!x) pki_detail::fail("X509_new");
  X509_set_version(x.get(), X509_VERSION_3);
  // Random positive serial: two certificates of one test run must not share one.
  Bytes serial = random_bytes(16);
  serial[0] &= 0x7F;
  OsslPtr<BIGNUM, BN_free> bn(BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr));
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x.get())))
    pki_detail::fail("serial");
  // Valid from an hour ago: clocks of test machines and containers drift a little.
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), static_cast<long>(spec.lifetime.count()));
  X509_set_pubkey(x.get(), out.key.get());
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer->cert.get()) : name);

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer->cert.get() : x.get(), x.get(), nullptr, nullptr, 0);
  add_ext(x.get(), &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_ext(x.get(), &ctx, NID_key_usage,
          ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  add_ext(x.get(), &ctx, NID_subject_key_identifier, "hash");
  add_ext(x.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  if (!spec.names.empty()) {
    std::string san;
    for (const auto& n : spec.names)
      san += std::string(san.empty() ? "" : ",") + (pki_detail::is_ip(n) ? "IP:" : "DNS:") + n;
    add_ext(x.get(), &ctx, NID_subject_alt_name, san);
  }
  if (!spec.extended_key_usage.empty())
    add_ext(x.get(), &ctx, NID_ext_key_usage, spec.extended_key_usage);
  if (X509_sign(x.get(), issuer ? issuer->key.get() : out.key.get(), EVP_sha256()) <= 0)
    pki_detail::fail("signing");
  out.cert = std::move(x);
  return out;
}

// Shorthand for the credential and signer tests: a code-signing certificate for `cn` (a CA
// when `ca`), EC P-256 or RSA 2048, valid for three days.
inline Pki make_cert(const std::string& cn, const Pki* issuer, bool ca, bool rsa = false) {
  CertSpec spec;
  spec.common_name = cn;
  spec.key = rsa ? KeyType::rsa_2048 : KeyType::ec_p256;
  spec.extended_key_usage = ca ? "" : "codeSigning";
  spec.lifetime = std::chrono::hours(3 * 24);
  return make_cert(spec, issuer, ca);
}

// A self-signed root that issues leaf certificates, for servers, TSAs and signers in tests.
class TestCa {
 public:
  explicit TestCa(std::string common_name = "tsign test root", KeyType key = KeyType::ec_p256) {
    CertSpec spec;
    spec.common_name = std::move(common_name);
    spec.key = key;
    spec.lifetime = std::chrono::hours(24 * 30);
    root_ = make_cert(spec, nullptr, true);
  }
  IssuedCert issue(const CertSpec& spec) const { return make_cert(spec, &root_, false); }
  X509* cert() const { return root_.cert.get(); }
  EVP_PKEY* key() const { return root_.key.get(); }
  std::string pem() const { return root_.cert_pem(); }
  void write_pem(const std::filesystem::path& file) const {
    std::ofstream f(file, std::ios::binary | std::ios::trunc);
    f << pem();
    if (!f) throw std::runtime_error("cannot write " + file.string());
  }

 private:
  IssuedCert root_;
};

// root -> intermediate -> leaf (EC P-256, the leaf for code signing).
struct TestChain {
  Pki root = make_cert("test root", nullptr, true);
  Pki inter = make_cert("test intermediate", &root, true);
  Pki leaf = make_cert("test leaf", &inter, false);
};

inline Bytes to_der(X509* x) {
  unsigned char* p = nullptr;
  int n = i2d_X509(x, &p);
  Bytes out(p, p + n);
  OPENSSL_free(p);
  return out;
}

// A PKCS#7 SignedData holding only certificates, DER.
inline Bytes certs_only_pkcs7(const std::vector<X509*>& certs) {
  PKCS7Ptr p7(PKCS7_new());
  PKCS7_set_type(p7.get(), NID_pkcs7_signed);
  PKCS7_content_new(p7.get(), NID_pkcs7_data);
  for (X509* x : certs) PKCS7_add_certificate(p7.get(), x);
  unsigned char* p = nullptr;
  int n = i2d_PKCS7(p7.get(), &p);
  Bytes out(p, p + n);
  OPENSSL_free(p);
  return out;
}

// MIME base64: lines of 76 characters ending in CRLF, as the service's inner encoding.
inline std::string mime_base64(ByteView data) {
  std::string flat = base64_encode(data), out;
  for (std::size_t i = 0; i < flat.size(); i += 76) out += flat.substr(i, 76) + "\r\n";
  return out;
}

}  // namespace tsign::test
