// The "data" member of Authenticode's SpcIndirectDataContent, which says what kind of file a
// signature is for (Microsoft, "Windows Authenticode Portable Executable Signature Format",
// "Authenticode-Specific Structures"; docs/authenticode.md, "Other formats"). Each format builds
// its own value here, so the layer that assembles signatures never names a format. Declared as
// OpenSSL ASN.1 templates so that every byte is encoded and parsed by OpenSSL:
//
//   SpcPeImageData ::= SEQUENCE { flags SpcPeImageFlags DEFAULT {includeResources},
//                                 file [0] EXPLICIT SpcLink OPTIONAL }
//   SpcLink ::= CHOICE { url [0] IMPLICIT IA5String, moniker [1] IMPLICIT SpcSerializedObject,
//                        file [2] EXPLICIT SpcString }
//   SpcSerializedObject ::= SEQUENCE { classId OCTET STRING, serializedData OCTET STRING }
//   SpcString ::= CHOICE { unicode [0] IMPLICIT BMPString, ascii [1] IMPLICIT IA5String }
//   SpcSipInfo ::= SEQUENCE { dwSIPversion INTEGER, gSIPguid OCTET STRING (16 bytes),
//                             dwReserved1 .. dwReserved5 INTEGER }   (formats with a SIP)
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include <openssl/asn1.h>
#include <openssl/asn1t.h>

#include "common/bytes.hpp"

namespace tsign::formats {

namespace asn1 {

struct SpcString {
  int type;
  union {
    ASN1_BMPSTRING* unicode;
    ASN1_IA5STRING* ascii;
  } value;
};
DECLARE_ASN1_FUNCTIONS(SpcString)

struct SpcSerializedObject {
  ASN1_OCTET_STRING* classId;
  ASN1_OCTET_STRING* serializedData;
};
DECLARE_ASN1_FUNCTIONS(SpcSerializedObject)

struct SpcLink {
  int type;
  union {
    ASN1_IA5STRING* url;
    SpcSerializedObject* moniker;
    SpcString* file;
  } value;
};
DECLARE_ASN1_FUNCTIONS(SpcLink)

// SpcLink CHOICE selectors (the position of the alternative in the template).
inline constexpr int kSpcLinkUrl = 0;
inline constexpr int kSpcLinkMoniker = 1;
inline constexpr int kSpcLinkFile = 2;
inline constexpr int kSpcStringUnicode = 0;
inline constexpr int kSpcStringAscii = 1;

struct SpcPeImageData {
  ASN1_BIT_STRING* flags;
  SpcLink* file;
};
DECLARE_ASN1_FUNCTIONS(SpcPeImageData)

struct SpcSipInfo {
  ASN1_INTEGER* dwSIPversion;
  ASN1_OCTET_STRING* gSIPguid;
  ASN1_INTEGER* dwReserved1;
  ASN1_INTEGER* dwReserved2;
  ASN1_INTEGER* dwReserved3;
  ASN1_INTEGER* dwReserved4;
  ASN1_INTEGER* dwReserved5;
};
DECLARE_ASN1_FUNCTIONS(SpcSipInfo)

}  // namespace asn1

// Object identifiers of the data member (dotted text; nothing is registered in OpenSSL's
// process-wide table).
inline constexpr std::string_view kSpcPeImageDataOid = "1.3.6.1.4.1.311.2.1.15";
inline constexpr std::string_view kSpcSipInfoOid = "1.3.6.1.4.1.311.2.1.30";
// SPC_CAB_DATA_OBJID: a cabinet's data member, whose value is an SpcLink.
inline constexpr std::string_view kSpcCabDataOid = "1.3.6.1.4.1.311.2.1.25";

// A SIP's GUID as it is stored in SpcSipInfo: the first three fields little-endian, as Windows
// lays a GUID out in memory (F1100C00-0000-0000-C000-000000000046 is stored 00 0C 10 F1 …).
using SipGuid = std::array<std::uint8_t, 16>;

// A BMPString of `utf8` (caller frees). Throws InputError naming `what` when the text is not
// valid UTF-8 within the Basic Multilingual Plane.
ASN1_STRING* bmp_string(std::string_view utf8, const char* what);

// SpcLink.file(SpcString.unicode("<<<Obsolete>>>")), as signtool writes it where a link is
// required but unused. Caller frees.
asn1::SpcLink* obsolete_file_link();

// DER of SpcPeImageData { flags = {}, file = the obsolete link }, as signtool and osslsigncode
// write it for PE files.
Bytes pe_image_data_der();

// DER of the obsolete SpcLink alone, the value signtool and osslsigncode give a cabinet's
// SPC_CAB_DATA_OBJID.
Bytes cab_data_der();

// DER of SpcSipInfo { version, guid, 0, 0, 0, 0, 0 }.
Bytes sip_info_der(long version, const SipGuid& guid);

// DER of `value` encoded with `it`; throws FileError naming `what` if OpenSSL cannot encode it.
Bytes encode_der(const void* value, const ASN1_ITEM* it, const char* what);

}  // namespace tsign::formats
