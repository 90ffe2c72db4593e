// Certificates made at test time for the auth and signer tests (root -> intermediate -> leaf,
// RSA or EC), a PKCS#7 certs-only bundle as the signing service sends it, and a coroutine runner.
#pragma once

#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "common/bytes.hpp"
#include "common/ossl.hpp"

namespace tsign::test {

struct Pki {
  EvpPkeyPtr key;
  X509Ptr cert;
};

inline EvpPkeyPtr make_key(bool rsa) {
  EVP_PKEY* k = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
  if (!k) throw std::runtime_error("key generation failed");
  return EvpPkeyPtr(k);
}

inline void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) throw std::runtime_error("bad extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `cn`, issued by `issuer` (self-signed when null).
inline Pki make_cert(const std::string& cn, const Pki* issuer, bool ca, bool rsa = false) {
  Pki p{make_key(rsa), X509Ptr(X509_new())};
  X509* c = p.cert.get();
  X509_set_version(c, 2);
  Bytes serial = random_bytes(8);
  serial[0] &= 0x7F;
  BIGNUM* bn = BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(c), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c), 3 * 24 * 3600);
  X509_NAME* name = X509_get_subject_name(c);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* issuer_cert = issuer ? issuer->cert.get() : c;
  X509_set_issuer_name(c, X509_get_subject_name(issuer_cert));
  X509_set_pubkey(c, p.key.get());
  add_ext(c, issuer_cert, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
  add_ext(c, issuer_cert, NID_key_usage,
          ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  add_ext(c, issuer_cert, NID_subject_key_identifier, "hash");
  add_ext(c, issuer_cert, NID_authority_key_identifier, "keyid:always");
  if (!ca) add_ext(c, issuer_cert, NID_ext_key_usage, "codeSigning");
  X509_sign(c, issuer ? issuer->key.get() : p.key.get(), EVP_sha256());
  return p;
}

struct TestChain {
  Pki root = make_cert("test root", nullptr, true);
  Pki inter = make_cert("test intermediate", &root, true);
  Pki leaf = make_cert("test leaf", &inter, false);
};

inline std::string to_pem(X509* x) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), x);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

inline std::string key_pem(EVP_PKEY* k) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), k, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

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

// Runs a coroutine to completion on its own io_context (returns when it has finished).
template <typename T>
T run_coro(boost::asio::io_context& io, boost::asio::awaitable<T> a) {
  std::optional<T> out;
  std::exception_ptr err;
  boost::asio::co_spawn(io, std::move(a), [&](std::exception_ptr e, T v) {
    err = e;
    if (!e) out.emplace(std::move(v));
  });
  io.restart();
  io.run();
  if (err) std::rethrow_exception(err);
  return std::move(*out);
}

}  // namespace tsign::test
