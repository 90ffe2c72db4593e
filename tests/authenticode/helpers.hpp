// Shared helpers of the Authenticode tests: an in-memory SignableFile, trust stores from the
// fixtures, and a local RFC 3161 authority (`openssl ts`).
#pragma once

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include <catch2/catch.hpp>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "authenticode/authenticode.hpp"
#include "common/digest.hpp"
#include "formats/format.hpp"
#include "formats/spc_data.hpp"
#include "signer/local_key.hpp"
#include "signer/signer.hpp"
#include "support/coro.hpp"
#include "support/fixtures.hpp"
#include "support/memory_output.hpp"

namespace tsign::test {

// What a PE signature signs (SpcPeImageData): the content the tests' files claim.
inline formats::SignedContent pe_content() {
  return {std::string(formats::kSpcPeImageDataOid), formats::pe_image_data_der(), {}, {}};
}

// The whole signing sequence above the Signer, for a file digest.
inline Bytes sign_digest(signer::Signer& s, ByteView file_digest,
                         const authenticode::SignOptions& opts) {
  auto prepared = authenticode::PreparedSignature::prepare(pe_content(), file_digest, opts);
  auto result = run_coro(s.sign(prepared.digest_to_sign(), opts.alg));
  return prepared.assemble(result);
}

// A signable "format" whose digest is the hash of its bytes: tests assembly and verification
// without any real file format.
class MemoryFile : public formats::SignableFile {
 public:
  explicit MemoryFile(Bytes content) : SignableFile("memory.bin"), content_(std::move(content)) {}
  std::string_view format_name() const override { return "memory"; }
  formats::SignedContent signed_content() const override { return pe_content(); }
  std::uint64_t size() const override { return content_.size(); }
  Bytes digest(DigestAlg alg) override {
    ++digest_calls;
    return hash(alg, content_);
  }
  std::optional<Bytes> existing_signature() override { return signature; }
  Bytes write_signed(ByteView pkcs7_der, formats::SignedOutput& out, DigestAlg alg) override {
    out.write(content_);
    out.write(pkcs7_der);
    return hash(alg, content_);
  }
  Bytes& content() { return content_; }

  std::optional<Bytes> signature;
  int digest_calls = 0;

 private:
  Bytes content_;
};

// An X509_STORE holding the PEM certificates of `paths`.
inline X509StorePtr store_of(std::initializer_list<std::filesystem::path> paths) {
  X509StorePtr store(X509_STORE_new());
  for (const auto& p : paths)
    if (X509_STORE_load_file(store.get(), p.string().c_str()) != 1)
      throw std::runtime_error("cannot load " + p.string());
  return store;
}

inline X509Ptr load_cert(const std::filesystem::path& p) {
  auto data = read_all(p);
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  X509Ptr x(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!x) throw std::runtime_error("cannot parse " + p.string());
  return x;
}

// The message of the `E` that `f` throws ("" and a failed check when it throws nothing).
template <typename E, typename F>
std::string thrown_message(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL_CHECK("nothing was thrown");
  return {};
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A time-stamp authority under the fixtures' root CA, run with `openssl ts -reply`.
class LocalTsa {
 public:
  explicit LocalTsa(const std::filesystem::path& dir) : dir_(dir) {
    const auto fx = fixtures_dir();
    std::ofstream(dir_ / "tsa.cnf")
        << "[tsa]\ndefault_tsa = tsa1\n[tsa1]\n"
           "serial = "
        << (dir_ / "serial").string()
        << "\ncrypto_device = builtin\nsigner_digest = sha256\n"
           "default_policy = 1.2.3.4.1\ndigests = sha256, sha384, sha512\n"
           "accuracy = secs:1\ness_cert_id_alg = sha256\n"
           "[ext]\nbasicConstraints = critical, CA:FALSE\n"
           "keyUsage = critical, digitalSignature\n"
           "extendedKeyUsage = critical, timeStamping\n";
    std::ofstream(dir_ / "serial") << "01\n";
    sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " + q("tsa.key"));
    sh("openssl req -new -key " + q("tsa.key") + " -subj '/CN=tsign test TSA' -out " +
       q("tsa.csr"));
    sh("openssl x509 -req -in " + q("tsa.csr") + " -CA " + quote(fx / "root.pem") + " -CAkey " +
       quote(fx / "root.key") + " -set_serial 0x2001 -days 3650 -sha256 -extfile " + q("tsa.cnf") +
       " -extensions ext -out " + q("tsa.pem"));
  }

  // The DER TimeStampToken (ContentInfo) for `imprint` (hashed with SHA-256).
  Bytes token_for(ByteView imprint) {
    sh("openssl ts -query -sha256 -digest " + to_hex(imprint) + " -cert -out " + q("q.tsq"));
    sh("openssl ts -reply -config " + q("tsa.cnf") + " -queryfile " + q("q.tsq") + " -signer " +
       q("tsa.pem") + " -inkey " + q("tsa.key") + " -token_out -out " + q("token.der"));
    return read_all(dir_ / "token.der");
  }

  std::filesystem::path cert() const { return dir_ / "tsa.pem"; }

 private:
  std::string q(const std::string& name) const { return quote(dir_ / name); }
  static void sh(const std::string& cmd) {
    auto r = run_command(cmd);
    if (r.exit_code != 0) throw std::runtime_error(cmd + " failed:\n" + r.output);
  }
  std::filesystem::path dir_;
};

}  // namespace tsign::test
