// Fuzz target for Authenticode signature verification (src/authenticode/authenticode.cpp,
// authenticode::verify): arbitrary bytes as the DER PKCS#7 SignedData a file carries, through
// the SpcIndirectDataContent, the signed attributes, the signer's certificate, the RFC 3161
// time-stamp token, the chain check and nested signatures. The file's own parsing is fuzz_pe's.
#include <openssl/x509_vfy.h>

#include "authenticode/authenticode.hpp"
#include "common/error.hpp"
#include "formats/spc_data.hpp"
#include "fuzz_targets.hpp"

namespace tsign::fuzz {

namespace {

// A file whose signature is the fuzz input. Its digest is a constant: the verifier goes on
// after a digest mismatch, so every later check is still reached.
class BlobFile final : public formats::SignableFile {
 public:
  explicit BlobFile(ByteView der) : SignableFile("input"), der_(der.begin(), der.end()) {}
  std::string_view format_name() const override { return "pe"; }
  formats::SignedContent signed_content() const override {
    return {std::string(formats::kSpcPeImageDataOid), formats::pe_image_data_der(), {}, {}};
  }
  std::uint64_t size() const override { return der_.size(); }
  Bytes digest(DigestAlg alg) override { return hash(alg, as_bytes("tsign fuzz file")); }
  std::optional<Bytes> existing_signature() override { return der_; }
  Bytes write_signed(ByteView, formats::SignedOutput&, DigestAlg) override { std::abort(); }

 private:
  Bytes der_;
};

}  // namespace

std::string check_authenticode(ByteView data) {
  // An empty store: the chain checks run and fail, without the platform's roots (file I/O).
  static X509_STORE* const roots = X509_STORE_new();  // immutable after initialisation
  BlobFile file(data);
  authenticode::VerifyOptions opts;
  opts.roots = roots;
  authenticode::VerifyResult r;
  try {
    r = authenticode::verify(file, opts);
  } catch (const std::exception& e) {
    // A bad signature is a problem in the report, never an exception that fails the run.
    return std::string("Authenticode: verify threw: ") + e.what();
  }
  if (r.signatures.empty()) return "Authenticode: verify reported no signature at all";
  if (r.ok()) return "Authenticode: an input verified against an empty trust store";
  if (r.first_problem().empty()) return "Authenticode: a failed verification names no problem";
  return {};
}

}  // namespace tsign::fuzz

TSIGN_FUZZ_ENTRY(tsign::fuzz::check_authenticode)
