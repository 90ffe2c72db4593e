// Authenticode PKCS#7 SignedData assembly and verification (authenticode.md), built with
// OpenSSL's PKCS7 / ASN.1 templates only. Sequence of a signature:
//   prepare()  -> digest_to_sign()  -> Signer::sign()  -> assemble()  [-> add_timestamp()]
//   [-> nest() into an existing signature for append-signature]
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "authenticode/sign_result.hpp"
#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "common/ossl.hpp"
#include "formats/format.hpp"

namespace tsign::authenticode {

struct SignOptions {
  DigestAlg alg = DigestAlg::sha256;
  std::string description;      // SpcSpOpusInfo programName
  std::string description_url;  // SpcSpOpusInfo moreInfo
};

class PreparedSignature {
 public:
  // Builds the signed content the format asks for (formats::SignedContent: an
  // SpcIndirectDataContent with the format's data member over `file_digest`, or a catalog's own
  // content, whose hash `file_digest` must be) and the authenticated attributes (contentType,
  // messageDigest, SpcStatementType individual, SpcSpOpusInfo; no signingTime).
  static PreparedSignature prepare(const formats::SignedContent& what, ByteView file_digest,
                                   const SignOptions& opts);

  // H(DER of the authenticated attributes as a SET OF): what the Signer signs.
  const Bytes& digest_to_sign() const { return to_sign_; }
  DigestAlg alg() const { return alg_; }

  // Checks `result` (signature verifies over the attributes with the leaf's public key; the
  // leaf has the code-signing EKU; the chain is non-empty) and returns the DER ContentInfo of
  // the complete SignedData. Throws FileError with the reason otherwise.
  Bytes assemble(const SignResult& result) const;

 private:
  DigestAlg alg_ = DigestAlg::sha256;
  std::string content_type_;  // dotted OID of the signed content
  Bytes content_;             // DER of the signed content (SpcIndirectDataContent or a CTL)
  Bytes attrs_;               // DER SET OF authenticated attributes
  Bytes to_sign_;
};

// The SignerInfo's encryptedDigest octets (what an RFC 3161 imprint is computed over).
Bytes signature_value(ByteView pkcs7_der);

// Adds `token_der` (an RFC 3161 TimeStampToken, a DER ContentInfo) as the unsigned attribute
// 1.3.6.1.4.1.311.3.3.1 of the primary SignerInfo. Returns the new DER.
Bytes add_timestamp(ByteView pkcs7_der, ByteView token_der);

// append-signature: returns `outer_der` with `inner_der` added as a value of the unsigned
// attribute 1.3.6.1.4.1.311.2.4.1 of its primary SignerInfo (after any existing nested ones).
Bytes nest(ByteView outer_der, ByteView inner_der);
// Throws FileError unless nest() could add a signature to `outer_der` (a SignedData with a
// SignerInfo): checked before a signature is requested for a file signed with append.
void check_nestable(ByteView outer_der);

struct SignatureReport {
  std::string subject;  // leaf subject, one line
  std::string issuer;
  std::string sha256_thumbprint;      // hex of SHA-256 over the leaf DER
  std::string not_before, not_after;  // ISO 8601 UTC
  DigestAlg alg = DigestAlg::sha256;
  bool timestamped = false;
  std::string timestamp_time;  // ISO 8601 UTC, when timestamped
  bool nested = false;
  // 0: the primary signature or one nested in it (what Windows checks). n > 0: the signature of
  // the file's (n+1)th certificate-table entry (SignableFile::other_signatures), or one nested in
  // it: checked and reported, but not part of VerifyResult::ok().
  std::size_t entry = 0;
  std::vector<std::string> problems;  // empty = this signature verifies
};

struct VerifyOptions {
  // Trusted roots. Null = the platform's (platform::load_trust_roots).
  X509_STORE* roots = nullptr;
  // Also the roots for time-stamp tokens. Null = `roots`.
  X509_STORE* tsa_roots = nullptr;
  // false: check digests and signatures only, not the chain to a root (the self-check of a
  // freshly signed copy before it replaces the original).
  bool check_trust = true;
};

struct VerifyResult {
  // The primary first, then its nested ones, then those of other entries (entry > 0).
  std::vector<SignatureReport> signatures;
  bool ok() const;                    // the primary and its nested signatures verify
  std::string first_problem() const;  // of the primary and its nested signatures
  std::size_t primary_count() const;  // the primary and its nested signatures
};

// Checks every signature of `file`: the file's digest against the one signed, the signature
// over the authenticated attributes, the chain to the roots (at the time-stamp's time when
// there is one, else now), the time-stamp token itself, and nested signatures; then the same
// for the file's other signatures, which are reported but do not decide (Windows reads only the
// first entry of a PE certificate table).
VerifyResult verify(formats::SignableFile& file, const VerifyOptions& opts);

// Leaf certificate facts for the summary and report.
SignatureReport describe_certificate(X509* leaf);

// The DER of `cert` (for SignableFile::check_signing_certificate).
Bytes certificate_der(X509* cert);

}  // namespace tsign::authenticode
