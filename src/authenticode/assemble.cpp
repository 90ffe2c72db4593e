// Authenticode SignedData assembly: SpcIndirectDataContent and the authenticated attributes
// (prepare), the SignedData around the signer's signature and chain (assemble), the RFC 3161
// time-stamp attribute 1.3.6.1.4.1.311.3.3.1 and nested signatures 1.3.6.1.4.1.311.2.4.1.
// Specifications: Microsoft "Windows Authenticode Portable Executable Signature Format"
// (SpcIndirectDataContent, SpcSpOpusInfo), RFC 2315 (PKCS #7 SignedData, §9); the project's
// summary is docs/authenticode.md, "The PKCS#7 SignedData" and "Time-stamps and nested
// signatures". Every structure is encoded by OpenSSL (templates in spc_asn1.cpp, PKCS7_* APIs).
#include <string_view>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "authenticode/authenticode.hpp"
#include "authenticode/der.hpp"
#include "authenticode/spc_asn1.hpp"
#include "common/error.hpp"

namespace tsign::authenticode {

using namespace der;

namespace {

ASN1_STRING* ia5_string(std::string_view text, const char* what) {
  ASN1_STRING* out = nullptr;
  if (ASN1_mbstring_copy(&out, reinterpret_cast<const unsigned char*>(text.data()),
                         static_cast<int>(text.size()), MBSTRING_UTF8, B_ASN1_IA5STRING) < 0) {
    ERR_clear_error();
    throw InputError(std::string(what) + " must be ASCII (an IA5String in the signature)");
  }
  return out;
}

Bytes opus_info_der(const SignOptions& opts) {
  OpusPtr opus(asn1::SpcSpOpusInfo_new());
  if (!opus) throw std::bad_alloc();
  if (!opts.description.empty()) {
    SpcStringPtr name(asn1::SpcString_new());
    if (!name) throw std::bad_alloc();
    name->type = asn1::kSpcStringUnicode;
    name->value.unicode = formats::bmp_string(opts.description, "description");
    opus->programName = name.release();
  }
  if (!opts.description_url.empty()) {
    SpcLinkPtr link(asn1::SpcLink_new());
    if (!link) throw std::bad_alloc();
    link->type = asn1::kSpcLinkUrl;
    link->value.url = ia5_string(opts.description_url, "description-url");
    opus->moreInfo = link.release();
  }
  return item_der(opus.get(), asn1::SpcSpOpusInfo_it(), "SpcSpOpusInfo");
}

void add_attribute(STACK_OF(X509_ATTRIBUTE) * *sk, const ASN1_OBJECT* type, int value_type,
                   const void* data, int len) {
  if (!X509at_add1_attr_by_OBJ(sk, type, value_type, static_cast<const unsigned char*>(data), len))
    throw FileError("cannot add a signed attribute: " + openssl_error_text());
}

}  // namespace

PreparedSignature PreparedSignature::prepare(const formats::SignedContent& what,
                                             ByteView file_digest, const SignOptions& opts) {
  PreparedSignature ps;
  ps.alg_ = opts.alg;
  const EVP_MD* md = evp_md(opts.alg);
  if (!what.digest_is_blob && file_digest.size() != digest_size(opts.alg))
    throw FileError("the file digest has " + std::to_string(file_digest.size()) +
                    " bytes, not the size of " + std::string(digest_name(opts.alg)));

  Bytes md_value;
  if (what.is_own()) {
    // A catalog: its own content is signed as it stands, and the file digest is the hash of
    // that content's octets; a mismatch means the file changed since it was hashed.
    ps.content_type_ = what.own_type;
    ps.content_ = what.own_der;
    md_value = hash(opts.alg, content_octets(ps.content_));
    if (!equal(md_value, file_digest))
      throw FileError("the file changed while it was being signed (its signed content differs)");
  } else {
    IndirectPtr idc(asn1::SpcIndirectDataContent_new());
    if (!idc) throw std::bad_alloc();
    ASN1_OBJECT_free(idc->data->type);
    idc->data->type = oid(what.spc_type.c_str()).release();
    if (!what.spc_value.empty()) {
      const unsigned char* p = what.spc_value.data();
      idc->data->value = d2i_ASN1_TYPE(nullptr, &p, static_cast<long>(what.spc_value.size()));
      if (!idc->data->value || p != what.spc_value.data() + what.spc_value.size())
        throw FileError("the format's SpcIndirectDataContent data is not one DER value");
    }
    X509_ALGOR_set0(idc->messageDigest->digestAlgorithm, OBJ_nid2obj(EVP_MD_get_type(md)),
                    V_ASN1_NULL, nullptr);
    ASN1_OCTET_STRING_set(idc->messageDigest->digest, file_digest.data(),
                          static_cast<int>(file_digest.size()));
    ps.content_type_ = asn1::kSpcIndirectData;
    ps.content_ = item_der(idc.get(), asn1::SpcIndirectDataContent_it(), "SpcIndirectDataContent");
    md_value = hash(opts.alg, content_octets(ps.content_));
  }

  // The authenticated attributes. No signingTime: the time-stamp is the trusted time, and
  // signtool and jsign omit it too.
  STACK_OF(X509_ATTRIBUTE)* raw = nullptr;
  auto content_oid = oid(ps.content_type_.c_str());
  add_attribute(&raw, OBJ_nid2obj(NID_pkcs9_contentType), V_ASN1_OBJECT, content_oid.get(), -1);
  AttributesPtr attrs(raw);
  add_attribute(&raw, OBJ_nid2obj(NID_pkcs9_messageDigest), V_ASN1_OCTET_STRING, md_value.data(),
                static_cast<int>(md_value.size()));

  ObjectsPtr purposes(sk_ASN1_OBJECT_new_null());
  auto individual = oid(asn1::kSpcIndividualSpKeyPurpose);
  if (!purposes || !sk_ASN1_OBJECT_push(purposes.get(), individual.get())) throw std::bad_alloc();
  individual.release();  // owned by the stack
  Bytes statement = item_der(purposes.get(), asn1::SpcStatementType_it(), "SpcStatementType");
  add_attribute(&raw, oid(asn1::kSpcStatementType).get(), V_ASN1_SEQUENCE, statement.data(),
                static_cast<int>(statement.size()));

  Bytes opus = opus_info_der(opts);
  add_attribute(&raw, oid(asn1::kSpcSpOpusInfo).get(), V_ASN1_SEQUENCE, opus.data(),
                static_cast<int>(opus.size()));

  // Exactly the bytes PKCS7_SIGNER_INFO_sign would hash: the SET OF, DER-sorted, tag 0x31.
  ps.attrs_ = item_der(attrs.get(), ASN1_ITEM_rptr(PKCS7_ATTR_SIGN), "signed attributes");
  ps.to_sign_ = hash(opts.alg, ps.attrs_);
  return ps;
}

Bytes PreparedSignature::assemble(const SignResult& result) const {
  if (result.chain.empty() || !result.chain.front())
    throw FileError("the signer returned no certificate");
  X509* leaf = result.chain.front().get();
  EVP_PKEY* key = X509_get0_pubkey(leaf);
  if (!key || !(EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_is_a(key, "EC")))
    throw FileError("the signing certificate's key is neither RSA nor ECDSA");
  const EVP_MD* md = evp_md(alg_);

  // Never embed a signature that does not verify: the file would look signed but fail on
  // every machine (interface.md, "Files are never half-written").
  if (!verify_raw(key, md, result.signature, attrs_))
    throw FileError("the signature returned by the signer does not verify with its certificate");
  // Refuse rather than warn: Windows rejects Authenticode signatures whose leaf lacks the
  // codeSigning EKU, so such a file would only look signed.
  if (!has_code_signing_eku(leaf))
    throw FileError("the signing certificate (" + name_line(X509_get_subject_name(leaf)) +
                    ") lacks the codeSigning extended key usage (1.3.6.1.5.5.7.3.3)");

  PKCS7Ptr p7(PKCS7_new());
  if (!p7 || PKCS7_set_type(p7.get(), NID_pkcs7_signed) != 1) throw std::bad_alloc();

  SignerInfoPtr si(PKCS7_SIGNER_INFO_new());
  // Sets version 1, issuerAndSerialNumber, digestAlgorithm (NULL parameters) and
  // digestEncryptionAlgorithm: rsaEncryption for RSA, ecdsa-with-SHAxxx for EC. Only the
  // public key is needed for that choice.
  if (!si || PKCS7_SIGNER_INFO_set(si.get(), leaf, key, md) != 1)
    throw FileError("cannot build the SignerInfo: " + openssl_error_text());
  {
    const unsigned char* p = attrs_.data();
    AttributesPtr attrs(reinterpret_cast<STACK_OF(X509_ATTRIBUTE)*>(ASN1_item_d2i(
        nullptr, &p, static_cast<long>(attrs_.size()), ASN1_ITEM_rptr(PKCS7_ATTR_SIGN))));
    if (!attrs || PKCS7_set_signed_attributes(si.get(), attrs.get()) != 1)
      throw FileError("cannot set the signed attributes: " + openssl_error_text());
  }
  if (ASN1_STRING_set(si->enc_digest, result.signature.data(),
                      static_cast<int>(result.signature.size())) != 1)
    throw std::bad_alloc();
  if (PKCS7_add_signer(p7.get(), si.get()) != 1)
    throw FileError("cannot add the SignerInfo: " + openssl_error_text());
  si.release();  // owned by p7 now

  for (std::size_t i = 0; i < result.chain.size(); ++i) {
    X509* c = result.chain[i].get();
    bool dup = false;
    for (std::size_t j = 0; j < i && !dup; ++j) dup = X509_cmp(c, result.chain[j].get()) == 0;
    if (!dup && PKCS7_add_certificate(p7.get(), c) != 1)
      throw FileError("cannot add a certificate: " + openssl_error_text());
  }

  // contentInfo { SPC_INDIRECT_DATA (or a catalog's CTL), [0] EXPLICIT the SEQUENCE itself (not
  // an OCTET STRING) }.
  PKCS7Ptr inner(PKCS7_new());
  AsnStringPtr seq(ASN1_STRING_type_new(V_ASN1_SEQUENCE));
  AsnTypePtr other(ASN1_TYPE_new());
  if (!inner || !seq || !other) throw std::bad_alloc();
  if (ASN1_STRING_set(seq.get(), content_.data(), static_cast<int>(content_.size())) != 1)
    throw std::bad_alloc();
  ASN1_TYPE_set(other.get(), V_ASN1_SEQUENCE, seq.release());
  ASN1_OBJECT_free(inner->type);
  inner->type = oid(content_type_.c_str()).release();
  inner->d.other = other.release();
  if (PKCS7_set_content(p7.get(), inner.get()) != 1)
    throw FileError("cannot set the signed content: " + openssl_error_text());
  inner.release();

  return pkcs7_der(p7.get());
}

Bytes signature_value(ByteView pkcs7_der_in) {
  auto p7 = parse_pkcs7(pkcs7_der_in, "the signature");
  auto s = string_bytes(primary_signer(p7.get(), "the signature")->enc_digest);
  return Bytes(s.begin(), s.end());
}

Bytes add_timestamp(ByteView pkcs7_der_in, ByteView token_der) {
  auto p7 = parse_pkcs7(pkcs7_der_in, "the signature");
  auto token = parse_pkcs7(token_der, "the time-stamp token");
  PKCS7_SIGNER_INFO* si = primary_signer(p7.get(), "the signature");
  auto ts_oid = oid(asn1::kSpcRfc3161Timestamp);
  // A signature carries one time-stamp: a new one replaces any earlier one.
  for (int i; (i = X509at_get_attr_by_OBJ(si->unauth_attr, ts_oid.get(), -1)) >= 0;)
    X509_ATTRIBUTE_free(X509at_delete_attr(si->unauth_attr, i));
  if (!X509at_add1_attr_by_OBJ(&si->unauth_attr, ts_oid.get(), V_ASN1_SEQUENCE, token_der.data(),
                               static_cast<int>(token_der.size())))
    throw FileError("cannot add the time-stamp: " + openssl_error_text());
  return pkcs7_der(p7.get());
}

void check_nestable(ByteView outer_der) {
  auto outer = parse_pkcs7(outer_der, "the existing signature");
  primary_signer(outer.get(), "the existing signature");
}

Bytes nest(ByteView outer_der, ByteView inner_der) {
  auto outer = parse_pkcs7(outer_der, "the existing signature");
  parse_pkcs7(inner_der, "the new signature");
  PKCS7_SIGNER_INFO* si = primary_signer(outer.get(), "the existing signature");
  auto nested_oid = oid(asn1::kSpcNestedSignature);
  // All nested signatures are values of one attribute (what Windows and osslsigncode read).
  // Note: DER orders the values of a SET OF by their encoding when it is written.
  if (X509_ATTRIBUTE* attr = find_attribute(si->unauth_attr, nested_oid.get())) {
    if (X509_ATTRIBUTE_set1_data(attr, V_ASN1_SEQUENCE, inner_der.data(),
                                 static_cast<int>(inner_der.size())) != 1)
      throw FileError("cannot add the nested signature: " + openssl_error_text());
  } else if (!X509at_add1_attr_by_OBJ(&si->unauth_attr, nested_oid.get(), V_ASN1_SEQUENCE,
                                      inner_der.data(), static_cast<int>(inner_der.size()))) {
    throw FileError("cannot add the nested signature: " + openssl_error_text());
  }
  return pkcs7_der(outer.get());
}
}  // namespace tsign::authenticode
