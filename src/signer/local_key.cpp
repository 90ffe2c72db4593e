// The local-key Signer: PEM key + PEM chain (RFC 7468), or PKCS#12 (RFC 7292). Signs an
// already-computed digest with EVP_PKEY_sign: RSA PKCS#1 v1.5 (RFC 8017, section 8.2) with the
// DigestInfo of the named algorithm, or ECDSA (DER Ecdsa-Sig-Value, RFC 3279).
#include "signer/local_key.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rsa.h>

#include "common/error.hpp"
#include "platform/platform.hpp"

namespace tsign::signer {

namespace {

using PkeyCtxPtr = OsslPtr<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using Pkcs12Ptr = OsslPtr<PKCS12, PKCS12_free>;
void free_certs(STACK_OF(X509) * sk) {
  sk_X509_pop_free(sk, X509_free);
}
using CertsPtr = OsslPtr<STACK_OF(X509), free_certs>;

// Whole file through the platform layer (wide paths on Windows). Unreadable key material is a
// configuration problem: nothing can be signed, so InputError (exit 2).
Bytes read_all(const std::filesystem::path& path) {
  try {
    platform::ReadFile f(path);
    if (f.size() > (64u << 20))
      throw InputError(platform::to_utf8(path) + ": too large for a key file");
    return f.read_at(0, static_cast<std::size_t>(f.size()));
  } catch (const FileError& e) {
    throw InputError(e.what());
  }
}

BioPtr memory_bio(const Bytes& data) {
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (!bio) throw std::bad_alloc();
  return bio;
}

void require_supported_key(EVP_PKEY* key, const std::filesystem::path& path) {
  if (!EVP_PKEY_is_a(key, "RSA") && !EVP_PKEY_is_a(key, "EC"))
    throw InputError(platform::to_utf8(path) +
                     ": unsupported key type (Authenticode signing needs RSA or ECDSA)");
}

class LocalKeySigner : public Signer {
 public:
  LocalKeySigner(EvpPkeyPtr key, std::vector<X509Ptr> chain, std::string description)
      : key_(std::move(key)), chain_(std::move(chain)), description_(std::move(description)) {}

  boost::asio::awaitable<SignResult> sign(Bytes digest, DigestAlg alg) override {
    // Nothing to await: the engine runs this on its hashing pool (a CPU-bound signer), several
    // files at once. Safe to call concurrently: each call has its own EVP_PKEY_CTX and the key
    // and chain are only read.
    co_return sign_now(digest, alg);
  }

  boost::asio::awaitable<std::vector<X509Ptr>> certificate_chain() override {
    std::vector<X509Ptr> out;
    for (const auto& c : chain_) out.push_back(clone(c));
    co_return out;
  }

  std::string describe() const override { return description_; }

 private:
  SignResult sign_now(const Bytes& digest, DigestAlg alg) const {
    if (digest.size() != digest_size(alg))
      throw FileError("the digest to sign has " + std::to_string(digest.size()) +
                      " bytes, not the size of " + std::string(digest_name(alg)));
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new(key_.get(), nullptr));
    if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1)
      throw FileError("cannot initialise signing with " + description_ + ": " +
                      openssl_error_text());
    // The input is already hashed: the signature_md makes RSA wrap it in the DigestInfo of
    // that algorithm (PKCS#1 v1.5), which is what Authenticode's rsaEncryption expects.
    if (EVP_PKEY_is_a(key_.get(), "RSA") &&
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1)
      throw FileError("cannot select PKCS#1 v1.5 padding: " + openssl_error_text());
    if (EVP_PKEY_CTX_set_signature_md(ctx.get(), evp_md(alg)) != 1)
      throw FileError("cannot select " + std::string(digest_name(alg)) + ": " +
                      openssl_error_text());
    std::size_t len = 0;
    if (EVP_PKEY_sign(ctx.get(), nullptr, &len, digest.data(), digest.size()) != 1)
      throw FileError("signing with " + description_ + " failed: " + openssl_error_text());
    SignResult result;
    result.signature.resize(len);
    if (EVP_PKEY_sign(ctx.get(), result.signature.data(), &len, digest.data(), digest.size()) != 1)
      throw FileError("signing with " + description_ + " failed: " + openssl_error_text());
    result.signature.resize(len);
    for (const auto& c : chain_) result.chain.push_back(clone(c));
    return result;
  }

  EvpPkeyPtr key_;
  std::vector<X509Ptr> chain_;  // leaf first
  std::string description_;
};

}  // namespace

std::unique_ptr<Signer> make_local_key_signer(const std::filesystem::path& key_pem,
                                              const std::filesystem::path& chain_pem) {
  const std::string key_name = platform::to_utf8(key_pem);
  const std::string cert_name = platform::to_utf8(chain_pem);

  Bytes key_bytes = read_all(key_pem);
  auto key_bio = memory_bio(key_bytes);
  // No passphrase callback: an encrypted key must fail here rather than prompt on a CI runner.
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, const_cast<char*>("")));
  OPENSSL_cleanse(key_bytes.data(), key_bytes.size());
  if (!key) {
    ERR_clear_error();
    throw InputError(key_name + ": not an unencrypted PEM private key");
  }
  require_supported_key(key.get(), key_pem);

  Bytes chain_bytes = read_all(chain_pem);
  auto chain_bio = memory_bio(chain_bytes);
  std::vector<X509Ptr> certs;
  while (X509* x = PEM_read_bio_X509(chain_bio.get(), nullptr, nullptr, nullptr))
    certs.emplace_back(x);
  ERR_clear_error();  // the loop ends on "no start line"
  if (certs.empty()) throw InputError(cert_name + ": no PEM certificate found");

  // The certificate of the key goes first, wherever it was in the file.
  auto leaf = std::find_if(certs.begin(), certs.end(), [&](const X509Ptr& c) {
    bool match = X509_check_private_key(c.get(), key.get()) == 1;
    ERR_clear_error();
    return match;
  });
  if (leaf == certs.end())
    throw InputError(key_name + " does not match the certificate " + cert_name);
  std::rotate(certs.begin(), leaf, leaf + 1);

  return std::make_unique<LocalKeySigner>(std::move(key), std::move(certs),
                                          "local key " + key_name);
}

std::unique_ptr<Signer> make_pfx_signer(const std::filesystem::path& path, const Secret& password) {
  const std::string name = platform::to_utf8(path);
  Bytes data = read_all(path);
  auto bio = memory_bio(data);
  Pkcs12Ptr p12(d2i_PKCS12_bio(bio.get(), nullptr));
  if (!p12) {
    ERR_clear_error();
    throw InputError(name + ": not a PKCS#12 (.pfx/.p12) file");
  }
  const std::string& pass = password.reveal();
  if (PKCS12_mac_present(p12.get())) {
    // An empty password may mean "no password" (NULL) or "" depending on the exporting tool.
    bool ok = PKCS12_verify_mac(p12.get(), pass.c_str(), static_cast<int>(pass.size())) == 1 ||
              (pass.empty() && PKCS12_verify_mac(p12.get(), nullptr, 0) == 1);
    ERR_clear_error();
    if (!ok)
      throw InputError(name +
                       ": wrong password for the PKCS#12 file (check the variable named by "
                       "--pfx-password-env)");
  }
  EVP_PKEY* key_raw = nullptr;
  X509* cert_raw = nullptr;
  STACK_OF(X509)* ca_raw = nullptr;
  int ok = PKCS12_parse(p12.get(), pass.c_str(), &key_raw, &cert_raw, &ca_raw);
  EvpPkeyPtr key(key_raw);
  X509Ptr cert(cert_raw);
  CertsPtr ca(ca_raw);
  if (ok != 1) {
    std::string why = openssl_error_text();
    throw InputError(name + ": cannot read the PKCS#12 file (" + why +
                     "); if it uses legacy RC2/3DES encryption, export it again with AES");
  }
  if (!key || !cert)
    throw InputError(name + ": the PKCS#12 file lacks a private key or its certificate");
  require_supported_key(key.get(), path);
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    throw InputError(name + ": the private key does not match the certificate in the file");
  }
  std::vector<X509Ptr> chain;
  chain.push_back(std::move(cert));
  for (int i = 0; ca && i < sk_X509_num(ca.get()); ++i) {
    X509* c = sk_X509_value(ca.get(), i);
    X509_up_ref(c);
    chain.emplace_back(c);
  }
  return std::make_unique<LocalKeySigner>(std::move(key), std::move(chain), "PKCS#12 " + name);
}

}  // namespace tsign::signer
