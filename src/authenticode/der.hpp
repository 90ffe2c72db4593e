// DER and ASN.1 helpers shared by Authenticode assembly (assemble.cpp) and verification
// (verify.cpp): owning pointers for the OpenSSL types they use, encoding and parsing of PKCS#7
// ContentInfo (RFC 2315 §7, §9.1), the contents octets of a DER TLV (ITU-T X.690 §8.1.1), the
// attributes of a SignerInfo, and the certificate facts reported to the user. The project's
// summary of the structures is docs/authenticode.md, "The PKCS#7 SignedData".
// Internal to src/authenticode/.
#pragma once

#include <ctime>
#include <optional>
#include <string>

#include <openssl/asn1.h>
#include <openssl/cms.h>
#include <openssl/pkcs7.h>
#include <openssl/ts.h>
#include <openssl/x509.h>

#include "authenticode/spc_asn1.hpp"
#include "common/bytes.hpp"
#include "common/ossl.hpp"

namespace tsign::authenticode::der {

using AsnObjectPtr = OsslPtr<ASN1_OBJECT, ASN1_OBJECT_free>;
using AsnStringPtr = OsslPtr<ASN1_STRING, ASN1_STRING_free>;
using AsnTypePtr = OsslPtr<ASN1_TYPE, ASN1_TYPE_free>;
using AsnTimePtr = OsslPtr<ASN1_TIME, ASN1_TIME_free>;
using SignerInfoPtr = OsslPtr<PKCS7_SIGNER_INFO, PKCS7_SIGNER_INFO_free>;
using MdCtxPtr = OsslPtr<EVP_MD_CTX, EVP_MD_CTX_free>;
using StoreCtxPtr = OsslPtr<X509_STORE_CTX, X509_STORE_CTX_free>;
using TstInfoPtr = OsslPtr<TS_TST_INFO, TS_TST_INFO_free>;
using IndirectPtr = OsslPtr<asn1::SpcIndirectDataContent, asn1::SpcIndirectDataContent_free>;
using OpusPtr = OsslPtr<asn1::SpcSpOpusInfo, asn1::SpcSpOpusInfo_free>;
using SpcStringPtr = OsslPtr<asn1::SpcString, asn1::SpcString_free>;
using SpcLinkPtr = OsslPtr<asn1::SpcLink, asn1::SpcLink_free>;

inline void free_attributes(STACK_OF(X509_ATTRIBUTE) * sk) {
  sk_X509_ATTRIBUTE_pop_free(sk, X509_ATTRIBUTE_free);
}
using AttributesPtr = OsslPtr<STACK_OF(X509_ATTRIBUTE), free_attributes>;
inline void free_objects(STACK_OF(ASN1_OBJECT) * sk) {
  sk_ASN1_OBJECT_pop_free(sk, ASN1_OBJECT_free);
}
using ObjectsPtr = OsslPtr<STACK_OF(ASN1_OBJECT), free_objects>;
// PKCS7_get0_signers returns a new stack of borrowed certificates.
inline void free_stack_only(STACK_OF(X509) * sk) {
  sk_X509_free(sk);
}
using BorrowedCertsPtr = OsslPtr<STACK_OF(X509), free_stack_only>;
inline void free_certs(STACK_OF(X509) * sk) {
  sk_X509_pop_free(sk, X509_free);
}
using CertsPtr = OsslPtr<STACK_OF(X509), free_certs>;
using CmsPtr = OsslPtr<CMS_ContentInfo, CMS_ContentInfo_free>;

// The OID `dotted` (e.g. asn1::kSpcIndirectData).
AsnObjectPtr oid(const char* dotted);
// The dotted text of `o` ("1.3.6.1.4.1.311.2.1.15"), for messages; "(none)" when null.
std::string object_text(const ASN1_OBJECT* o);

// DER of `value` with the ASN.1 template `it`; FileError naming `what` when OpenSSL cannot.
Bytes item_der(const void* value, const ASN1_ITEM* it, const char* what);
Bytes pkcs7_der(PKCS7* p7);

// A DER PKCS#7 ContentInfo, or nullopt (OpenSSL's error queue cleared).
std::optional<PKCS7Ptr> try_parse_pkcs7(ByteView der);
// A DER PKCS#7 SignedData; FileError naming `what` otherwise.
PKCS7Ptr parse_pkcs7(ByteView der, const char* what);
// The first SignerInfo of a SignedData; FileError naming `what` when there is none.
PKCS7_SIGNER_INFO* primary_signer(PKCS7* p7, const char* what);

// The contents octets of a DER TLV (value bytes without tag and length). The header length
// comes from the real encoding: it is 2 bytes only while the content is under 128 bytes.
ByteView content_octets(ByteView der);

// The first attribute of `attrs` with type `type`, or null.
X509_ATTRIBUTE* find_attribute(const STACK_OF(X509_ATTRIBUTE) * attrs, const ASN1_OBJECT* type);

bool has_code_signing_eku(X509* cert);
// Whether `signature` verifies over `data` hashed with `md` (OpenSSL's error queue cleared).
bool verify_raw(EVP_PKEY* key, const EVP_MD* md, ByteView signature, ByteView data);

std::string name_line(const X509_NAME* name);  // RFC 2253, one line
std::string iso8601(const ASN1_TIME* t);       // "" when `t` is null or unreadable
// Seconds since the epoch of an ASN.1 time, without timegm() (not portable to MinGW).
std::optional<std::time_t> to_time_t(const ASN1_TIME* t);

ByteView string_bytes(const ASN1_STRING* s);
bool equal(ByteView a, ByteView b);
// The DER carried by an attribute value or ContentInfo content of type SEQUENCE (ASN1_ANY keeps
// the whole encoding, tag and length included).
std::optional<ByteView> sequence_der(const ASN1_TYPE* t);

}  // namespace tsign::authenticode::der
