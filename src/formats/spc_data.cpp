// OpenSSL ASN.1 templates of the SpcIndirectDataContent data values declared in spc_data.hpp
// (Microsoft, "Windows Authenticode Portable Executable Signature Format", "Authenticode-Specific
// Structures"; SpcSipInfo as signtool writes it for formats signed through a SIP). The templates
// are constant data: OpenSSL does all encoding and parsing.
#include "formats/spc_data.hpp"

#include <new>
#include <string>

#include <openssl/err.h>

#include "common/error.hpp"
#include "common/ossl.hpp"

namespace tsign::formats {

namespace asn1 {

// clang-format off
ASN1_CHOICE(SpcString) = {
  ASN1_IMP_OPT(SpcString, value.unicode, ASN1_BMPSTRING, 0),
  ASN1_IMP_OPT(SpcString, value.ascii, ASN1_IA5STRING, 1),
} ASN1_CHOICE_END(SpcString)
IMPLEMENT_ASN1_FUNCTIONS(SpcString)

ASN1_SEQUENCE(SpcSerializedObject) = {
  ASN1_SIMPLE(SpcSerializedObject, classId, ASN1_OCTET_STRING),
  ASN1_SIMPLE(SpcSerializedObject, serializedData, ASN1_OCTET_STRING),
} ASN1_SEQUENCE_END(SpcSerializedObject)
IMPLEMENT_ASN1_FUNCTIONS(SpcSerializedObject)

// `file` is [2] EXPLICIT because SpcString is itself a CHOICE (a CHOICE cannot be tagged
// implicitly).
ASN1_CHOICE(SpcLink) = {
  ASN1_IMP_OPT(SpcLink, value.url, ASN1_IA5STRING, 0),
  ASN1_IMP_OPT(SpcLink, value.moniker, SpcSerializedObject, 1),
  ASN1_EXP_OPT(SpcLink, value.file, SpcString, 2),
} ASN1_CHOICE_END(SpcLink)
IMPLEMENT_ASN1_FUNCTIONS(SpcLink)

ASN1_SEQUENCE(SpcPeImageData) = {
  ASN1_SIMPLE(SpcPeImageData, flags, ASN1_BIT_STRING),
  ASN1_EXP_OPT(SpcPeImageData, file, SpcLink, 0),
} ASN1_SEQUENCE_END(SpcPeImageData)
IMPLEMENT_ASN1_FUNCTIONS(SpcPeImageData)

ASN1_SEQUENCE(SpcSipInfo) = {
  ASN1_SIMPLE(SpcSipInfo, dwSIPversion, ASN1_INTEGER),
  ASN1_SIMPLE(SpcSipInfo, gSIPguid, ASN1_OCTET_STRING),
  ASN1_SIMPLE(SpcSipInfo, dwReserved1, ASN1_INTEGER),
  ASN1_SIMPLE(SpcSipInfo, dwReserved2, ASN1_INTEGER),
  ASN1_SIMPLE(SpcSipInfo, dwReserved3, ASN1_INTEGER),
  ASN1_SIMPLE(SpcSipInfo, dwReserved4, ASN1_INTEGER),
  ASN1_SIMPLE(SpcSipInfo, dwReserved5, ASN1_INTEGER),
} ASN1_SEQUENCE_END(SpcSipInfo)
IMPLEMENT_ASN1_FUNCTIONS(SpcSipInfo)
// clang-format on

}  // namespace asn1

namespace {
using SpcStringPtr = OsslPtr<asn1::SpcString, asn1::SpcString_free>;
using SpcLinkPtr = OsslPtr<asn1::SpcLink, asn1::SpcLink_free>;
using PeImagePtr = OsslPtr<asn1::SpcPeImageData, asn1::SpcPeImageData_free>;
using SipInfoPtr = OsslPtr<asn1::SpcSipInfo, asn1::SpcSipInfo_free>;
}  // namespace

ASN1_STRING* bmp_string(std::string_view utf8, const char* what) {
  ASN1_STRING* out = nullptr;
  if (ASN1_mbstring_copy(&out, reinterpret_cast<const unsigned char*>(utf8.data()),
                         static_cast<int>(utf8.size()), MBSTRING_UTF8, B_ASN1_BMPSTRING) < 0) {
    ERR_clear_error();
    throw InputError(std::string(what) +
                     " is not valid UTF-8 text within the Basic Multilingual Plane");
  }
  return out;
}

Bytes encode_der(const void* value, const ASN1_ITEM* it, const char* what) {
  unsigned char* out = nullptr;
  int n = ASN1_item_i2d(static_cast<const ASN1_VALUE*>(value), &out, it);
  if (n <= 0) throw FileError(std::string("cannot encode ") + what + ": " + openssl_error_text());
  Bytes der(out, out + n);
  OPENSSL_free(out);
  return der;
}

asn1::SpcLink* obsolete_file_link() {
  SpcStringPtr obsolete(asn1::SpcString_new());
  SpcLinkPtr link(asn1::SpcLink_new());
  if (!obsolete || !link) throw std::bad_alloc();
  obsolete->type = asn1::kSpcStringUnicode;
  obsolete->value.unicode = bmp_string("<<<Obsolete>>>", "the SpcLink file name");
  link->type = asn1::kSpcLinkFile;
  link->value.file = obsolete.release();
  return link.release();
}

Bytes pe_image_data_der() {
  PeImagePtr pe(asn1::SpcPeImageData_new());
  if (!pe) throw std::bad_alloc();
  pe->file = obsolete_file_link();
  return encode_der(pe.get(), asn1::SpcPeImageData_it(), "SpcPeImageData");
}

Bytes cab_data_der() {
  SpcLinkPtr link(obsolete_file_link());
  return encode_der(link.get(), asn1::SpcLink_it(), "SpcLink");
}

Bytes sip_info_der(long version, const SipGuid& guid) {
  SipInfoPtr sip(asn1::SpcSipInfo_new());
  if (!sip) throw std::bad_alloc();
  if (ASN1_INTEGER_set(sip->dwSIPversion, version) != 1 ||
      ASN1_OCTET_STRING_set(sip->gSIPguid, guid.data(), static_cast<int>(guid.size())) != 1)
    throw std::bad_alloc();
  for (ASN1_INTEGER* r :
       {sip->dwReserved1, sip->dwReserved2, sip->dwReserved3, sip->dwReserved4, sip->dwReserved5})
    if (ASN1_INTEGER_set(r, 0) != 1) throw std::bad_alloc();
  return encode_der(sip.get(), asn1::SpcSipInfo_it(), "SpcSipInfo");
}

}  // namespace tsign::formats
