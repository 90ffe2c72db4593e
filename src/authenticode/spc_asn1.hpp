// ASN.1 types of Microsoft's Authenticode specification ("Windows Authenticode Portable
// Executable Signature Format", section "Authenticode-Specific Structures"), declared as
// OpenSSL ASN.1 templates so that every byte is encoded and parsed by OpenSSL:
//
//   SpcIndirectDataContent ::= SEQUENCE { data SpcAttributeTypeAndOptionalValue,
//                                         messageDigest DigestInfo }
//   SpcAttributeTypeAndOptionalValue ::= SEQUENCE { type OBJECT IDENTIFIER,
//                                                   value ANY DEFINED BY type OPTIONAL }
//   DigestInfo ::= SEQUENCE { digestAlgorithm AlgorithmIdentifier, digest OCTET STRING }
//   SpcSpOpusInfo ::= SEQUENCE { programName [0] EXPLICIT SpcString OPTIONAL,
//                                moreInfo [1] EXPLICIT SpcLink OPTIONAL }
//   SpcStatementType ::= SEQUENCE OF OBJECT IDENTIFIER
//
// SpcString and SpcLink, shared with the formats' data values, are declared in
// formats/spc_data.hpp: each format builds its own SpcIndirectDataContent data member there.
// Internal to src/authenticode/ (and its tests).
#pragma once

#include <openssl/asn1.h>
#include <openssl/asn1t.h>
#include <openssl/x509.h>

#include "formats/spc_data.hpp"

namespace tsign::authenticode::asn1 {

// Object identifiers (dotted text, for OBJ_txt2obj(…, 1): no OID is registered in OpenSSL's
// global table, so nothing here mutates process-wide state).
inline constexpr const char* kSpcIndirectData = "1.3.6.1.4.1.311.2.1.4";
inline constexpr const char* kSpcStatementType = "1.3.6.1.4.1.311.2.1.11";
inline constexpr const char* kSpcSpOpusInfo = "1.3.6.1.4.1.311.2.1.12";
inline constexpr const char* kSpcIndividualSpKeyPurpose = "1.3.6.1.4.1.311.2.1.21";
inline constexpr const char* kSpcNestedSignature = "1.3.6.1.4.1.311.2.4.1";
inline constexpr const char* kSpcRfc3161Timestamp = "1.3.6.1.4.1.311.3.3.1";

using formats::asn1::kSpcLinkFile;
using formats::asn1::kSpcLinkMoniker;
using formats::asn1::kSpcLinkUrl;
using formats::asn1::kSpcStringAscii;
using formats::asn1::kSpcStringUnicode;
using formats::asn1::SpcLink;
using formats::asn1::SpcLink_free;
using formats::asn1::SpcLink_it;
using formats::asn1::SpcLink_new;
using formats::asn1::SpcString;
using formats::asn1::SpcString_free;
using formats::asn1::SpcString_it;
using formats::asn1::SpcString_new;

struct SpcAttributeTypeAndOptionalValue {
  ASN1_OBJECT* type;
  ASN1_TYPE* value;
};
DECLARE_ASN1_FUNCTIONS(SpcAttributeTypeAndOptionalValue)

// PKCS#1's DigestInfo (OpenSSL's X509_SIG has the same shape, but a type of our own keeps the
// Authenticode structure self-describing).
struct SpcDigestInfo {
  X509_ALGOR* digestAlgorithm;
  ASN1_OCTET_STRING* digest;
};
DECLARE_ASN1_FUNCTIONS(SpcDigestInfo)

struct SpcIndirectDataContent {
  SpcAttributeTypeAndOptionalValue* data;
  SpcDigestInfo* messageDigest;
};
DECLARE_ASN1_FUNCTIONS(SpcIndirectDataContent)

struct SpcSpOpusInfo {
  SpcString* programName;
  SpcLink* moreInfo;
};
DECLARE_ASN1_FUNCTIONS(SpcSpOpusInfo)

// SEQUENCE OF OBJECT IDENTIFIER, encoded with ASN1_item_i2d(…, ASN1_ITEM_rptr(SpcStatementType)).
using SpcStatementType = STACK_OF(ASN1_OBJECT);
DECLARE_ASN1_ITEM(SpcStatementType)

}  // namespace tsign::authenticode::asn1
