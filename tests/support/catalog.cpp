// The catalog generator of catalog.hpp. What MakeCat writes for each listed file (a version 1
// catalog, subject algorithm 1.3.6.1.4.1.311.12.1.2):
//   TrustedSubject { identifier = the member's tag, its SHA-1 in upper-case hex as UTF-16LE,
//                    attributes = { CAT_NAMEVALUE 1.3.6.1.4.1.311.12.2.1: NameValue { "File",
//                                     0x10010001, the file name as UTF-16LE with its NUL },
//                                   CAT_MEMBERINFO 1.3.6.1.4.1.311.12.2.2: MemberInfo {
//                                     the SIP's GUID as text, 512 },
//                                   SPC_INDIRECT_DATA 1.3.6.1.4.1.311.2.1.4:
//                                     SpcIndirectDataContent { SPC_CAB_DATA 1.3.6.1.4.1.311.2.1.25
//                                     with SpcLink.file(""), sha1 digest } } }
// and one catalog attribute in the CTL's extensions (a NameValue "OSAttr" = "2:6.0").
#include "support/catalog.hpp"

#include <stdexcept>

#include <openssl/asn1t.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include "common/digest.hpp"
#include "common/ossl.hpp"
#include "formats/cat.hpp"
#include "formats/spc_data.hpp"

namespace tsign::test::catalog_asn1 {

struct NameValue {
  ASN1_BMPSTRING* tag;
  ASN1_INTEGER* flags;
  ASN1_OCTET_STRING* value;
};
DECLARE_ASN1_FUNCTIONS(NameValue)

struct MemberInfo {
  ASN1_BMPSTRING* guid;
  ASN1_INTEGER* certVersion;
};
DECLARE_ASN1_FUNCTIONS(MemberInfo)

struct TypeAndValue {
  ASN1_OBJECT* type;
  ASN1_TYPE* value;
};
DECLARE_ASN1_FUNCTIONS(TypeAndValue)

struct DigestInfo {
  X509_ALGOR* algorithm;
  ASN1_OCTET_STRING* digest;
};
DECLARE_ASN1_FUNCTIONS(DigestInfo)

struct IndirectData {
  TypeAndValue* data;
  DigestInfo* messageDigest;
};
DECLARE_ASN1_FUNCTIONS(IndirectData)

// clang-format off
ASN1_SEQUENCE(NameValue) = {
  ASN1_SIMPLE(NameValue, tag, ASN1_BMPSTRING),
  ASN1_SIMPLE(NameValue, flags, ASN1_INTEGER),
  ASN1_SIMPLE(NameValue, value, ASN1_OCTET_STRING),
} ASN1_SEQUENCE_END(NameValue)
IMPLEMENT_ASN1_FUNCTIONS(NameValue)

ASN1_SEQUENCE(MemberInfo) = {
  ASN1_SIMPLE(MemberInfo, guid, ASN1_BMPSTRING),
  ASN1_SIMPLE(MemberInfo, certVersion, ASN1_INTEGER),
} ASN1_SEQUENCE_END(MemberInfo)
IMPLEMENT_ASN1_FUNCTIONS(MemberInfo)

ASN1_SEQUENCE(TypeAndValue) = {
  ASN1_SIMPLE(TypeAndValue, type, ASN1_OBJECT),
  ASN1_OPT(TypeAndValue, value, ASN1_ANY),
} ASN1_SEQUENCE_END(TypeAndValue)
IMPLEMENT_ASN1_FUNCTIONS(TypeAndValue)

ASN1_SEQUENCE(DigestInfo) = {
  ASN1_SIMPLE(DigestInfo, algorithm, X509_ALGOR),
  ASN1_SIMPLE(DigestInfo, digest, ASN1_OCTET_STRING),
} ASN1_SEQUENCE_END(DigestInfo)
IMPLEMENT_ASN1_FUNCTIONS(DigestInfo)

ASN1_SEQUENCE(IndirectData) = {
  ASN1_SIMPLE(IndirectData, data, TypeAndValue),
  ASN1_SIMPLE(IndirectData, messageDigest, DigestInfo),
} ASN1_SEQUENCE_END(IndirectData)
IMPLEMENT_ASN1_FUNCTIONS(IndirectData)
// clang-format on

}  // namespace tsign::test::catalog_asn1

namespace tsign::test {

namespace {

namespace ca = catalog_asn1;
namespace cat = formats::cat::asn1;
using ObjectPtr = OsslPtr<ASN1_OBJECT, ASN1_OBJECT_free>;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("catalog generator: ") + what);
}

ASN1_OBJECT* oid(const char* dotted) {
  ASN1_OBJECT* o = OBJ_txt2obj(dotted, 1);
  check(o != nullptr, dotted);
  return o;
}

ASN1_OCTET_STRING* octets(const Bytes& b) {
  ASN1_OCTET_STRING* s = ASN1_OCTET_STRING_new();
  check(s && ASN1_OCTET_STRING_set(s, b.data(), static_cast<int>(b.size())), "OCTET STRING");
  return s;
}

// UTF-16LE of ASCII text, optionally with a terminating NUL (as MakeCat stores names).
Bytes utf16le(const std::string& ascii, bool nul) {
  Bytes out;
  for (char c : ascii) {
    out.push_back(static_cast<std::uint8_t>(c));
    out.push_back(0);
  }
  if (nul) out.insert(out.end(), {0, 0});
  return out;
}

std::string upper_hex(const Bytes& b) {
  static const char* d = "0123456789ABCDEF";
  std::string s;
  for (auto v : b) {
    s += d[v >> 4];
    s += d[v & 15];
  }
  return s;
}

Bytes name_value(const std::string& tag, const std::string& value) {
  OsslPtr<ca::NameValue, ca::NameValue_free> nv(ca::NameValue_new());
  check(nv != nullptr, "NameValue");
  ASN1_STRING_free(nv->tag);
  nv->tag = formats::bmp_string(tag, "tag");
  ASN1_INTEGER_set(nv->flags, 0x10010001);
  ASN1_OCTET_STRING_free(nv->value);
  nv->value = octets(utf16le(value, true));
  return formats::encode_der(nv.get(), ca::NameValue_it(), "NameValue");
}

Bytes member_info() {
  OsslPtr<ca::MemberInfo, ca::MemberInfo_free> mi(ca::MemberInfo_new());
  check(mi != nullptr, "MemberInfo");
  ASN1_STRING_free(mi->guid);
  mi->guid = formats::bmp_string("{C689AAB8-8E78-11D0-8C47-00C04FC295EE}", "guid");
  ASN1_INTEGER_set(mi->certVersion, 512);
  return formats::encode_der(mi.get(), ca::MemberInfo_it(), "MemberInfo");
}

Bytes indirect_data(const Bytes& sha1) {
  OsslPtr<ca::IndirectData, ca::IndirectData_free> idc(ca::IndirectData_new());
  check(idc != nullptr, "SpcIndirectDataContent");
  ASN1_OBJECT_free(idc->data->type);
  idc->data->type = oid("1.3.6.1.4.1.311.2.1.25");
  // SpcLink.file(SpcString.unicode("")), as MakeCat writes for a flat file.
  OsslPtr<formats::asn1::SpcLink, formats::asn1::SpcLink_free> link(formats::asn1::SpcLink_new());
  OsslPtr<formats::asn1::SpcString, formats::asn1::SpcString_free> empty(
      formats::asn1::SpcString_new());
  check(link && empty, "SpcLink");
  empty->type = formats::asn1::kSpcStringUnicode;
  empty->value.unicode = ASN1_BMPSTRING_new();
  link->type = formats::asn1::kSpcLinkFile;
  link->value.file = empty.release();
  Bytes link_der = formats::encode_der(link.get(), formats::asn1::SpcLink_it(), "SpcLink");
  const unsigned char* p = link_der.data();
  idc->data->value = d2i_ASN1_TYPE(nullptr, &p, static_cast<long>(link_der.size()));
  check(idc->data->value != nullptr, "SpcLink as ANY");
  check(X509_ALGOR_set0(idc->messageDigest->algorithm, OBJ_nid2obj(NID_sha1), V_ASN1_NULL,
                        nullptr) == 1,
        "sha1");
  check(ASN1_OCTET_STRING_set(idc->messageDigest->digest, sha1.data(),
                              static_cast<int>(sha1.size())) == 1,
        "digest");
  return formats::encode_der(idc.get(), ca::IndirectData_it(), "SpcIndirectDataContent");
}

Bytes sha1_of(const Bytes& data) {
  Bytes out(EVP_MAX_MD_SIZE);
  unsigned int n = 0;
  check(EVP_Digest(data.data(), data.size(), out.data(), &n, EVP_sha1(), nullptr) == 1, "SHA-1");
  out.resize(n);
  return out;
}

void add_attribute(STACK_OF(X509_ATTRIBUTE) * *sk, const char* type, const Bytes& sequence_der) {
  ObjectPtr o(oid(type));
  check(X509at_add1_attr_by_OBJ(sk, o.get(), V_ASN1_SEQUENCE, sequence_der.data(),
                                static_cast<int>(sequence_der.size())) != nullptr,
        "attribute");
}

}  // namespace

CatBytes make_ctl(const CatalogOptions& opts) {
  OsslPtr<cat::CertificateTrustList, cat::CertificateTrustList_free> ctl(
      cat::CertificateTrustList_new());
  check(ctl != nullptr, "CTL");
  check(sk_ASN1_OBJECT_push(ctl->subjectUsage, oid("1.3.6.1.4.1.311.12.1.1")) > 0, "usage");
  std::string names;
  for (const auto& m : opts.members) names += m.name + '\n';
  Bytes id = hash(DigestAlg::sha256,
                  ByteView(reinterpret_cast<const std::uint8_t*>(names.data()), names.size()));
  id.resize(16);
  ctl->listIdentifier = octets(id);
  check(ASN1_TIME_set_string(ctl->thisUpdate, "250605080048Z") == 1, "time");
  check(X509_ALGOR_set0(ctl->subjectAlgorithm, oid("1.3.6.1.4.1.311.12.1.2"), V_ASN1_NULL,
                        nullptr) == 1,
        "subject algorithm");

  ctl->trustedSubjects = cat::sk_TrustedSubject_new_null();
  check(ctl->trustedSubjects != nullptr, "subjects");
  for (const auto& m : opts.members) {
    OsslPtr<cat::TrustedSubject, cat::TrustedSubject_free> ts(cat::TrustedSubject_new());
    check(ts != nullptr, "subject");
    Bytes sha1 = sha1_of(m.content);
    ASN1_OCTET_STRING_free(ts->identifier);
    ts->identifier = octets(utf16le(upper_hex(sha1), false));
    add_attribute(&ts->attributes, "1.3.6.1.4.1.311.12.2.1", name_value("File", m.name));
    add_attribute(&ts->attributes, "1.3.6.1.4.1.311.12.2.2", member_info());
    add_attribute(&ts->attributes, "1.3.6.1.4.1.311.2.1.4", indirect_data(sha1));
    check(cat::sk_TrustedSubject_push(ctl->trustedSubjects, ts.get()) > 0, "push subject");
    ts.release();
  }

  ctl->extensions = sk_X509_EXTENSION_new_null();
  check(ctl->extensions != nullptr, "extensions");
  Bytes os_attr = name_value("OSAttr", "2:6.0");
  OsslPtr<ASN1_OCTET_STRING, ASN1_OCTET_STRING_free> value(octets(os_attr));
  ObjectPtr type(oid("1.3.6.1.4.1.311.12.2.1"));
  X509_EXTENSION* ext = X509_EXTENSION_create_by_OBJ(nullptr, type.get(), 0, value.get());
  check(ext && sk_X509_EXTENSION_push(ctl->extensions, ext) > 0, "extension");
  return formats::encode_der(ctl.get(), cat::CertificateTrustList_it(), "CTL");
}

CatBytes make_catalog(const CatalogOptions& opts) {
  Bytes ctl = opts.content.empty() ? make_ctl(opts) : opts.content;
  PKCS7Ptr p7(PKCS7_new());
  check(p7 && PKCS7_set_type(p7.get(), NID_pkcs7_signed) == 1, "SignedData");
  PKCS7Ptr inner(PKCS7_new());
  check(inner != nullptr, "content");
  inner->type = oid(opts.content_type.c_str());
  ASN1_STRING* seq = ASN1_STRING_new();
  check(seq && ASN1_STRING_set(seq, ctl.data(), static_cast<int>(ctl.size())) == 1, "CTL");
  inner->d.other = ASN1_TYPE_new();
  check(inner->d.other != nullptr, "ANY");
  ASN1_TYPE_set(inner->d.other, V_ASN1_SEQUENCE, seq);
  check(PKCS7_set_content(p7.get(), inner.get()) == 1, "set content");
  inner.release();
  for (int i = 0; i < opts.dummy_signers; ++i) {
    PKCS7_SIGNER_INFO* si = PKCS7_SIGNER_INFO_new();
    check(si != nullptr, "SignerInfo");
    ASN1_INTEGER_set(si->version, 1);
    ASN1_INTEGER_set(si->issuer_and_serial->serial, i + 1);
    X509_ALGOR_set0(si->digest_alg, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, nullptr);
    X509_ALGOR_set0(si->digest_enc_alg, OBJ_nid2obj(NID_rsaEncryption), V_ASN1_NULL, nullptr);
    ASN1_OCTET_STRING_set(si->enc_digest, reinterpret_cast<const unsigned char*>("sig"), 3);
    if (PKCS7_add_signer(p7.get(), si) != 1) {
      PKCS7_SIGNER_INFO_free(si);
      check(false, "add signer");
    }
  }
  return formats::encode_der(p7.get(), ASN1_ITEM_rptr(PKCS7), "catalog");
}

}  // namespace tsign::test
