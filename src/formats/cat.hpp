// Security catalogs (.cat): a PKCS #7 SignedData (RFC 2315 §9) whose content is a Microsoft
// certificate trust list, content type szOID_CTL 1.3.6.1.4.1.311.10.1 (Microsoft,
// "Certificate Trust List" in the CryptoAPI reference: CTL_INFO; the catalog entries as MakeCat
// writes them). Unlike every other format the signature is not stored inside the file: the file
// IS the signature. MakeCat writes the SignedData with no SignerInfo; signing replaces the
// SignedData with one that carries the same CTL, byte for byte, and a signer, its certificates
// and its time-stamp. The messageDigest attribute is the hash of the CTL's content octets (the
// SEQUENCE's value, without its tag and length), so that hash is this format's digest.
// docs/formats.md, "Catalogs", says what is refused and why.
//
// The functions here work on bytes in memory (a catalog is parsed whole by OpenSSL), so the unit
// tests and the fuzz target exercise exactly the code the signer runs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>

#include <openssl/asn1t.h>
#include <openssl/x509.h>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "formats/format.hpp"

namespace tsign::platform {
class ReadFile;
}

namespace tsign::formats::cat {

// OpenSSL ASN.1 templates of the CTL, used to check that a catalog's content is one and by the
// tests' catalog generator to write one (wincrypt's CTL_INFO):
//
//   CertificateTrustList ::= SEQUENCE {
//     version          INTEGER DEFAULT v1,          -- absent in MakeCat's catalogs
//     subjectUsage     SEQUENCE OF OBJECT IDENTIFIER,  -- {1.3.6.1.4.1.311.12.1.1} for a catalog
//     listIdentifier   OCTET STRING OPTIONAL,
//     sequenceNumber   INTEGER OPTIONAL,
//     ctlThisUpdate    Time,                        -- UTCTime or GeneralizedTime
//     ctlNextUpdate    Time OPTIONAL,
//     subjectAlgorithm AlgorithmIdentifier,         -- 1.3.6.1.4.1.311.12.1.2 (v1) / .3 (v2)
//     trustedSubjects  SEQUENCE OF TrustedSubject OPTIONAL,
//     ctlExtensions    [0] EXPLICIT Extensions OPTIONAL }
//   TrustedSubject ::= SEQUENCE { subjectIdentifier OCTET STRING,  -- a member's tag or hash
//                                 subjectAttributes SET OF Attribute OPTIONAL }
namespace asn1 {

struct TrustedSubject {
  ASN1_OCTET_STRING* identifier;
  STACK_OF(X509_ATTRIBUTE) * attributes;
};
DECLARE_ASN1_FUNCTIONS(TrustedSubject)
DEFINE_STACK_OF(TrustedSubject)

struct CertificateTrustList {
  ASN1_INTEGER* version;
  STACK_OF(ASN1_OBJECT) * subjectUsage;
  ASN1_OCTET_STRING* listIdentifier;
  ASN1_INTEGER* sequenceNumber;
  ASN1_TIME* thisUpdate;
  ASN1_TIME* nextUpdate;
  X509_ALGOR* subjectAlgorithm;
  STACK_OF(TrustedSubject) * trustedSubjects;
  STACK_OF(X509_EXTENSION) * extensions;
};
DECLARE_ASN1_FUNCTIONS(CertificateTrustList)

}  // namespace asn1

// szOID_CTL, the content type of a catalog's SignedData (dotted; nothing is registered in
// OpenSSL's process-wide table).
inline constexpr std::string_view kCtlOid = "1.3.6.1.4.1.311.10.1";

// A catalog is read whole: its signature carries all of it. Larger files are refused rather than
// read into memory (Windows' own largest catalogs are tens of MiB).
inline constexpr std::uint64_t kMaxCatalogSize = 128ull << 20;

// What parse() found.
struct Layout {
  std::uint64_t file_size = 0;
  Bytes ctl_der;               // the CTL: the SEQUENCE inside the content's [0] EXPLICIT
  bool has_signature = false;  // one SignerInfo (a catalog as MakeCat writes it has none)
};

// Content detection only: a DER SEQUENCE { signedData, [0] { SEQUENCE { version, digest
// algorithms, SEQUENCE { szOID_CTL ... } } } }, judged on the first bytes `head` of the file.
// Never throws.
bool detect(ByteView head);
// How many first bytes detect() needs at most.
inline constexpr std::size_t kDetectBytes = 4096;

// Full validation of a whole catalog file. Throws FileError "<name>: <reason>" for anything the
// signer must refuse: not one DER PKCS#7 SignedData (trailing bytes, BER indefinite lengths), a
// content that is not a CTL, more than one SignerInfo.
Layout parse(ByteView file, std::string_view name);

// The digest the messageDigest attribute holds: the hash of the CTL's content octets.
Bytes ctl_digest(ByteView ctl_der, DigestAlg alg);

// Checks that `pkcs7_der` is a catalog carrying exactly `ctl_der` with one SignerInfo, writes it
// to `out` as the whole file and returns ctl_digest() of the CTL as written. Throws FileError
// "<name>: ..." otherwise (nothing is written then).
Bytes write_signed(ByteView ctl_der, ByteView pkcs7_der, SignedOutput& out, std::string_view name,
                   DigestAlg alg = DigestAlg::sha256);

// The SignableFile for a catalog. Reopens the file for each operation (as pe::open does).
std::unique_ptr<SignableFile> open(const std::filesystem::path& path);
bool detect(platform::ReadFile& file);

}  // namespace tsign::formats::cat
