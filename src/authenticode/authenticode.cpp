// Authenticode PKCS#7 SignedData assembly and verification.
// Specifications: Microsoft "Windows Authenticode Portable Executable Signature Format"
// (SpcIndirectDataContent, SpcSpOpusInfo, nested signatures 1.3.6.1.4.1.311.2.4.1, RFC 3161
// time-stamps 1.3.6.1.4.1.311.3.3.1), RFC 2315 (PKCS #7 SignedData) and RFC 3161 (TSTInfo);
// the project's summary is docs/authenticode.md, "The PKCS#7 SignedData".
// Every structure is encoded and parsed by OpenSSL (templates in spc_asn1.cpp, PKCS7_* APIs).
#include "authenticode/authenticode.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <string_view>

#include <openssl/asn1.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ts.h>
#include <openssl/x509v3.h>

#include "authenticode/spc_asn1.hpp"
#include "common/error.hpp"
#include "platform/platform.hpp"

namespace tsign::authenticode {

namespace {

using AsnObjectPtr = OsslPtr<ASN1_OBJECT, ASN1_OBJECT_free>;
using AsnStringPtr = OsslPtr<ASN1_STRING, ASN1_STRING_free>;
using AsnTypePtr = OsslPtr<ASN1_TYPE, ASN1_TYPE_free>;
using AsnTimePtr = OsslPtr<ASN1_TIME, ASN1_TIME_free>;
using SignerInfoPtr = OsslPtr<PKCS7_SIGNER_INFO, PKCS7_SIGNER_INFO_free>;
using MdCtxPtr = OsslPtr<EVP_MD_CTX, EVP_MD_CTX_free>;
using StoreCtxPtr = OsslPtr<X509_STORE_CTX, X509_STORE_CTX_free>;
using TstInfoPtr = OsslPtr<TS_TST_INFO, TS_TST_INFO_free>;
using IndirectPtr = OsslPtr<asn1::SpcIndirectDataContent, asn1::SpcIndirectDataContent_free>;
using PeImagePtr = OsslPtr<asn1::SpcPeImageData, asn1::SpcPeImageData_free>;
using OpusPtr = OsslPtr<asn1::SpcSpOpusInfo, asn1::SpcSpOpusInfo_free>;
using SpcStringPtr = OsslPtr<asn1::SpcString, asn1::SpcString_free>;
using SpcLinkPtr = OsslPtr<asn1::SpcLink, asn1::SpcLink_free>;

void free_attributes(STACK_OF(X509_ATTRIBUTE) * sk) {
  sk_X509_ATTRIBUTE_pop_free(sk, X509_ATTRIBUTE_free);
}
using AttributesPtr = OsslPtr<STACK_OF(X509_ATTRIBUTE), free_attributes>;
void free_objects(STACK_OF(ASN1_OBJECT) * sk) {
  sk_ASN1_OBJECT_pop_free(sk, ASN1_OBJECT_free);
}
using ObjectsPtr = OsslPtr<STACK_OF(ASN1_OBJECT), free_objects>;
// PKCS7_get0_signers returns a new stack of borrowed certificates.
void free_stack_only(STACK_OF(X509) * sk) {
  sk_X509_free(sk);
}
using BorrowedCertsPtr = OsslPtr<STACK_OF(X509), free_stack_only>;
void free_certs(STACK_OF(X509) * sk) {
  sk_X509_pop_free(sk, X509_free);
}
using CertsPtr = OsslPtr<STACK_OF(X509), free_certs>;
using CmsPtr = OsslPtr<CMS_ContentInfo, CMS_ContentInfo_free>;

AsnObjectPtr oid(const char* dotted) {
  AsnObjectPtr o(OBJ_txt2obj(dotted, 1));
  if (!o) throw std::runtime_error(std::string("cannot create the OID ") + dotted);
  return o;
}

// DER of `value` with the ASN.1 template `it`.
Bytes item_der(const void* value, const ASN1_ITEM* it, const char* what) {
  unsigned char* out = nullptr;
  int n = ASN1_item_i2d(static_cast<const ASN1_VALUE*>(value), &out, it);
  if (n <= 0)
    throw FileError(std::string("cannot encode the ") + what + ": " + openssl_error_text());
  Bytes b(out, out + n);
  OPENSSL_free(out);
  return b;
}

Bytes pkcs7_der(PKCS7* p7) {
  unsigned char* out = nullptr;
  int n = i2d_PKCS7(p7, &out);
  if (n <= 0) throw FileError("cannot encode the PKCS#7 signature: " + openssl_error_text());
  Bytes b(out, out + n);
  OPENSSL_free(out);
  return b;
}

std::optional<PKCS7Ptr> try_parse_pkcs7(ByteView der) {
  const unsigned char* p = der.data();
  PKCS7Ptr p7(d2i_PKCS7(nullptr, &p, static_cast<long>(der.size())));
  if (!p7) {
    ERR_clear_error();
    return std::nullopt;
  }
  return p7;
}

PKCS7Ptr parse_pkcs7(ByteView der, const char* what) {
  auto p7 = try_parse_pkcs7(der);
  if (!p7) throw FileError(std::string(what) + " is not a DER PKCS#7 ContentInfo");
  if (!PKCS7_type_is_signed(p7->get()))
    throw FileError(std::string(what) + " is not a PKCS#7 SignedData");
  return std::move(*p7);
}

PKCS7_SIGNER_INFO* primary_signer(PKCS7* p7, const char* what) {
  auto* infos = PKCS7_get_signer_info(p7);
  if (!infos || sk_PKCS7_SIGNER_INFO_num(infos) < 1)
    throw FileError(std::string(what) + " has no SignerInfo");
  return sk_PKCS7_SIGNER_INFO_value(infos, 0);
}

// The contents octets of a DER TLV (value bytes without tag and length). The header length
// comes from the real encoding: it is 2 bytes only while the content is under 128 bytes.
ByteView content_octets(ByteView der) {
  const unsigned char* p = der.data();
  long len = 0;
  int tag = 0, cls = 0;
  int r = ASN1_get_object(&p, &len, &tag, &cls, static_cast<long>(der.size()));
  if (r & 0x80) throw FileError("malformed DER in SpcIndirectDataContent");
  auto header = static_cast<std::size_t>(p - der.data());
  if (header + static_cast<std::size_t>(len) > der.size())
    throw FileError("truncated DER in SpcIndirectDataContent");
  return der.subspan(header, static_cast<std::size_t>(len));
}

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

ASN1_STRING* ia5_string(std::string_view text, const char* what) {
  ASN1_STRING* out = nullptr;
  if (ASN1_mbstring_copy(&out, reinterpret_cast<const unsigned char*>(text.data()),
                         static_cast<int>(text.size()), MBSTRING_UTF8, B_ASN1_IA5STRING) < 0) {
    ERR_clear_error();
    throw InputError(std::string(what) + " must be ASCII (an IA5String in the signature)");
  }
  return out;
}

// SpcPeImageData { flags = {} , file = SpcLink.file("<<<Obsolete>>>") }, as osslsigncode and
// signtool write it.
AsnTypePtr pe_image_data_value() {
  PeImagePtr pe(asn1::SpcPeImageData_new());
  SpcStringPtr obsolete(asn1::SpcString_new());
  if (!pe || !obsolete) throw std::bad_alloc();
  obsolete->type = asn1::kSpcStringUnicode;
  obsolete->value.unicode = bmp_string("<<<Obsolete>>>", "the SpcLink file name");
  SpcLinkPtr link(asn1::SpcLink_new());
  if (!link) throw std::bad_alloc();
  link->type = asn1::kSpcLinkFile;
  link->value.file = obsolete.release();
  pe->file = link.release();
  ASN1_TYPE* t = nullptr;
  if (!ASN1_TYPE_pack_sequence(asn1::SpcPeImageData_it(), pe.get(), &t))
    throw FileError("cannot encode SpcPeImageData: " + openssl_error_text());
  return AsnTypePtr(t);
}

Bytes opus_info_der(const SignOptions& opts) {
  OpusPtr opus(asn1::SpcSpOpusInfo_new());
  if (!opus) throw std::bad_alloc();
  if (!opts.description.empty()) {
    SpcStringPtr name(asn1::SpcString_new());
    if (!name) throw std::bad_alloc();
    name->type = asn1::kSpcStringUnicode;
    name->value.unicode = bmp_string(opts.description, "description");
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

// The first attribute of `attrs` with type `type`, or null.
X509_ATTRIBUTE* find_attribute(const STACK_OF(X509_ATTRIBUTE) * attrs, const ASN1_OBJECT* type) {
  int i = X509at_get_attr_by_OBJ(attrs, type, -1);
  return i < 0 ? nullptr : X509at_get_attr(attrs, i);
}

bool has_code_signing_eku(X509* cert) {
  // X509_get_extended_key_usage() answers "all usages" when the extension is absent; Windows
  // requires the extension itself for a code-signing leaf, so test for it explicitly.
  return (X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) &&
         (X509_get_extended_key_usage(cert) & XKU_CODE_SIGN);
}

bool verify_raw(EVP_PKEY* key, const EVP_MD* md, ByteView signature, ByteView data) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) throw std::bad_alloc();
  bool ok = EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key) == 1 &&
            EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), data.data(),
                             data.size()) == 1;
  ERR_clear_error();
  return ok;
}

std::string name_line(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return {};
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string iso8601(const ASN1_TIME* t) {
  std::tm tm{};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

// Seconds since the epoch of an ASN.1 time, without timegm() (not portable to MinGW).
std::optional<std::time_t> to_time_t(const ASN1_TIME* t) {
  AsnTimePtr epoch(ASN1_TIME_set(nullptr, 0));
  int days = 0, secs = 0;
  if (!epoch || !t || ASN1_TIME_diff(&days, &secs, epoch.get(), t) != 1) return std::nullopt;
  return static_cast<std::time_t>(days) * 86400 + secs;
}

ByteView string_bytes(const ASN1_STRING* s) {
  return {ASN1_STRING_get0_data(s), static_cast<std::size_t>(ASN1_STRING_length(s))};
}

bool equal(ByteView a, ByteView b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

// The DER carried by an attribute value or ContentInfo content of type SEQUENCE (ASN1_ANY keeps
// the whole encoding, tag and length included).
std::optional<ByteView> sequence_der(const ASN1_TYPE* t) {
  if (!t || t->type != V_ASN1_SEQUENCE || !t->value.sequence) return std::nullopt;
  return string_bytes(t->value.sequence);
}

// ---------------------------------------------------------------- verification

struct Verifier {
  formats::SignableFile& file;
  const VerifyOptions& opts;
  X509_STORE* roots = nullptr;
  X509_STORE* tsa_roots = nullptr;
  std::map<DigestAlg, Bytes> file_digests;  // each algorithm's file digest computed once
  std::vector<SignatureReport> reports;

  const Bytes& file_digest(DigestAlg alg) {
    auto it = file_digests.find(alg);
    if (it == file_digests.end()) it = file_digests.emplace(alg, file.digest(alg)).first;
    return it->second;
  }

  // Chain of `cert` to `store` at `when` (now if empty), intermediates from `untrusted`.
  std::optional<std::string> chain_problem(X509_STORE* store, X509* cert,
                                           STACK_OF(X509) * untrusted,
                                           std::optional<std::time_t> when) {
    StoreCtxPtr ctx(X509_STORE_CTX_new());
    if (!ctx || X509_STORE_CTX_init(ctx.get(), store, cert, untrusted) != 1)
      return "cannot set up the chain verification: " + openssl_error_text();
    // Purpose "any": the EKU of the leaf is checked separately, and osslsigncode is equally
    // liberal about intermediate CAs' EKUs.
    if (when) X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()), *when);
    if (X509_verify_cert(ctx.get()) == 1) return std::nullopt;
    int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return std::string(X509_verify_cert_error_string(err));
  }

  // RFC 3161 token over `enc_digest`; returns the genTime when the token is sound.
  std::optional<std::time_t> check_timestamp(const ASN1_TYPE* value, ByteView enc_digest,
                                             SignatureReport& r) {
    // Parsed as CMS (RFC 5652), not PKCS#7: real tokens carry certificate choices PKCS#7 cannot
    // read (Microsoft's time-stamp authority adds an attribute certificate, [1], to the
    // certificates of the tokens in the Microsoft-signed shimx64.efi).
    auto der = sequence_der(value);
    CmsPtr token;
    if (der) {
      const unsigned char* p = der->data();
      token.reset(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(der->size())));
    }
    if (!token || OBJ_obj2nid(CMS_get0_type(token.get())) != NID_pkcs7_signed) {
      ERR_clear_error();
      r.problems.push_back("time-stamp: the token is not a CMS SignedData");
      return std::nullopt;
    }
    r.timestamped = true;
    TstInfoPtr tst;
    ASN1_OCTET_STRING** content = CMS_get0_content(token.get());
    if (OBJ_obj2nid(CMS_get0_eContentType(token.get())) == NID_id_smime_ct_TSTInfo && content &&
        *content) {
      const unsigned char* p = (*content)->data;
      tst.reset(d2i_TS_TST_INFO(nullptr, &p, (*content)->length));
    }
    if (!tst) {
      ERR_clear_error();
      r.problems.push_back("time-stamp: the token holds no TSTInfo");
      return std::nullopt;
    }
    const ASN1_GENERALIZEDTIME* gen = TS_TST_INFO_get_time(tst.get());
    r.timestamp_time = iso8601(gen);
    bool ok = true;

    // The imprint is the hash of the SignerInfo's encryptedDigest (authenticode.md).
    TS_MSG_IMPRINT* imprint = TS_TST_INFO_get_msg_imprint(tst.get());
    const EVP_MD* md = EVP_get_digestbyobj(TS_MSG_IMPRINT_get_algo(imprint)->algorithm);
    if (!md) {
      r.problems.push_back("time-stamp: unsupported message imprint algorithm");
      ok = false;
    } else {
      Bytes h(EVP_MAX_MD_SIZE);
      unsigned int n = 0;
      EVP_Digest(enc_digest.data(), enc_digest.size(), h.data(), &n, md, nullptr);
      h.resize(n);
      if (!equal(h, string_bytes(TS_MSG_IMPRINT_get_msg(imprint)))) {
        r.problems.push_back(
            "time-stamp: the token's message imprint is not the hash of this signature");
        ok = false;
      }
    }

    // The token's own signature (chain checked below, at genTime, with the TSA roots).
    BioPtr sink(BIO_new(BIO_s_null()));
    if (CMS_verify(token.get(), nullptr, nullptr, nullptr, sink.get(),
                   CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1) {
      r.problems.push_back("time-stamp: the token's signature does not verify: " +
                           openssl_error_text());
      return std::nullopt;
    }
    BorrowedCertsPtr signers(CMS_get0_signers(token.get()));
    X509* tsa =
        signers && sk_X509_num(signers.get()) > 0 ? sk_X509_value(signers.get(), 0) : nullptr;
    if (!tsa) {
      ERR_clear_error();
      r.problems.push_back("time-stamp: the token does not carry its signer's certificate");
      return std::nullopt;
    }
    if (!((X509_get_extension_flags(tsa) & EXFLAG_XKUSAGE) &&
          (X509_get_extended_key_usage(tsa) & XKU_TIMESTAMP))) {
      r.problems.push_back("time-stamp: the authority's certificate lacks the timeStamping EKU");
      ok = false;
    }
    auto when = to_time_t(gen);
    if (opts.check_trust) {
      CertsPtr certs(CMS_get1_certs(token.get()));
      if (auto p = chain_problem(tsa_roots, tsa, certs.get(), when)) {
        r.problems.push_back("time-stamp: the authority's certificate is not trusted: " + *p);
        ok = false;
      }
    }
    return ok ? when : std::nullopt;
  }

  void check(ByteView der, bool nested) {
    SignatureReport r;
    r.nested = nested;
    auto parsed = try_parse_pkcs7(der);
    if (!parsed || !PKCS7_type_is_signed(parsed->get())) {
      r.problems.push_back("the signature is not a PKCS#7 SignedData");
      reports.push_back(std::move(r));
      return;
    }
    PKCS7* p7 = parsed->get();
    std::size_t index = reports.size();
    reports.push_back(std::move(r));
    check_signed_data(p7, index);
    // Nested signatures are values of one unsigned attribute of the primary SignerInfo.
    auto* infos = PKCS7_get_signer_info(p7);
    if (infos && sk_PKCS7_SIGNER_INFO_num(infos) > 0) {
      auto nested_oid = oid(asn1::kSpcNestedSignature);
      auto* si = sk_PKCS7_SIGNER_INFO_value(infos, 0);
      for (int i = -1; (i = X509at_get_attr_by_OBJ(si->unauth_attr, nested_oid.get(), i)) >= 0;) {
        X509_ATTRIBUTE* attr = X509at_get_attr(si->unauth_attr, i);
        for (int v = 0; v < X509_ATTRIBUTE_count(attr); ++v) {
          auto inner = sequence_der(X509_ATTRIBUTE_get0_type(attr, v));
          if (inner) {
            check(*inner, true);
          } else {
            SignatureReport bad;
            bad.nested = true;
            bad.problems.push_back("a nested signature is not a SEQUENCE");
            reports.push_back(std::move(bad));
          }
        }
      }
    }
  }

  void check_signed_data(PKCS7* p7, std::size_t index) {
    auto problem = [&](std::string s) { reports[index].problems.push_back(std::move(s)); };

    PKCS7* contents = p7->d.sign->contents;
    auto spc_oid = oid(asn1::kSpcIndirectData);
    if (!contents || !contents->type || OBJ_cmp(contents->type, spc_oid.get()) != 0) {
      problem("the signed content is not SpcIndirectDataContent (1.3.6.1.4.1.311.2.1.4)");
      return;
    }
    // The content is [0] EXPLICIT SpcIndirectDataContent; a few old signers wrapped it in an
    // OCTET STRING, which Windows also accepts.
    std::optional<ByteView> indirect_der;
    if (contents->d.other && contents->d.other->type == V_ASN1_SEQUENCE)
      indirect_der = sequence_der(contents->d.other);
    else if (contents->d.other && contents->d.other->type == V_ASN1_OCTET_STRING)
      indirect_der = string_bytes(contents->d.other->value.octet_string);
    if (!indirect_der) {
      problem("the SpcIndirectDataContent is missing");
      return;
    }
    const unsigned char* p = indirect_der->data();
    IndirectPtr idc(
        asn1::d2i_SpcIndirectDataContent(nullptr, &p, static_cast<long>(indirect_der->size())));
    if (!idc) {
      ERR_clear_error();
      problem("the SpcIndirectDataContent cannot be parsed");
      return;
    }

    // 1. The file's digest.
    int file_nid = OBJ_obj2nid(idc->messageDigest->digestAlgorithm->algorithm);
    auto file_alg = digest_from_nid(file_nid);
    if (!file_alg) {
      problem(std::string("unsupported file digest algorithm ") +
              (file_nid != NID_undef ? OBJ_nid2sn(file_nid) : "(unknown)"));
    } else {
      reports[index].alg = *file_alg;
      if (!equal(file_digest(*file_alg), string_bytes(idc->messageDigest->digest)))
        problem(
            "the file's digest does not match the signed digest (the file was modified "
            "after signing)");
    }

    auto* infos = PKCS7_get_signer_info(p7);
    if (!infos || sk_PKCS7_SIGNER_INFO_num(infos) != 1) {
      problem("the signature must have exactly one SignerInfo");
      return;
    }
    PKCS7_SIGNER_INFO* si = sk_PKCS7_SIGNER_INFO_value(infos, 0);
    const EVP_MD* si_md = nullptr;
    if (auto a = digest_from_nid(OBJ_obj2nid(si->digest_alg->algorithm))) si_md = evp_md(*a);
    if (!si_md) {
      problem("unsupported SignerInfo digest algorithm");
      return;
    }

    // 2. The signed attributes bind the content.
    ASN1_TYPE* ct = PKCS7_get_signed_attribute(si, NID_pkcs9_contentType);
    if (!ct || ct->type != V_ASN1_OBJECT || OBJ_cmp(ct->value.object, spc_oid.get()) != 0)
      problem("the contentType signed attribute is not SpcIndirectDataContent");
    ASN1_OCTET_STRING* md_attr = PKCS7_digest_from_attributes(si->auth_attr);
    Bytes expect(EVP_MAX_MD_SIZE);
    unsigned int n = 0;
    ByteView content = content_octets(*indirect_der);
    EVP_Digest(content.data(), content.size(), expect.data(), &n, si_md, nullptr);
    expect.resize(n);
    if (!md_attr || !equal(expect, string_bytes(md_attr)))
      problem("the messageDigest signed attribute does not match the SpcIndirectDataContent");

    // 3. The signer's certificate and its signature over the attributes.
    X509* leaf = X509_find_by_issuer_and_serial(p7->d.sign->cert, si->issuer_and_serial->issuer,
                                                si->issuer_and_serial->serial);
    if (!leaf) {
      problem("the signer's certificate is not in the signature");
      return;
    }
    {
      auto facts = describe_certificate(leaf);
      auto& r = reports[index];
      r.subject = facts.subject;
      r.issuer = facts.issuer;
      r.sha256_thumbprint = facts.sha256_thumbprint;
      r.not_before = facts.not_before;
      r.not_after = facts.not_after;
    }
    Bytes attrs = item_der(si->auth_attr, ASN1_ITEM_rptr(PKCS7_ATTR_VERIFY), "signed attributes");
    if (!verify_raw(X509_get0_pubkey(leaf), si_md, string_bytes(si->enc_digest), attrs))
      problem(
          "the signature over the signed attributes does not verify with the signer's "
          "certificate");
    if (!has_code_signing_eku(leaf))
      problem("the signer's certificate lacks the codeSigning extended key usage");

    // 4. The time-stamp, then the chain at the time-stamp's time (a signature made while the
    //    certificate was valid stays valid after it expires; osslsigncode and Windows agree).
    std::optional<std::time_t> when;
    auto ts_oid = oid(asn1::kSpcRfc3161Timestamp);
    if (X509_ATTRIBUTE* ts = find_attribute(si->unauth_attr, ts_oid.get())) {
      when = check_timestamp(X509_ATTRIBUTE_get0_type(ts, 0), string_bytes(si->enc_digest),
                             reports[index]);
    }
    if (opts.check_trust) {
      if (auto p2 = chain_problem(roots, leaf, p7->d.sign->cert, when))
        problem("the certificate chain is not trusted: " + *p2);
    }
  }
};

}  // namespace

// ---------------------------------------------------------------- assembly

PreparedSignature PreparedSignature::prepare(formats::SpcKind kind, ByteView file_digest,
                                             const SignOptions& opts) {
  PreparedSignature ps;
  ps.alg_ = opts.alg;
  const EVP_MD* md = evp_md(opts.alg);
  if (file_digest.size() != digest_size(opts.alg))
    throw FileError("the file digest has " + std::to_string(file_digest.size()) +
                    " bytes, not the size of " + std::string(digest_name(opts.alg)));

  IndirectPtr idc(asn1::SpcIndirectDataContent_new());
  if (!idc) throw std::bad_alloc();
  switch (kind) {
    case formats::SpcKind::pe_image: {
      ASN1_OBJECT_free(idc->data->type);
      idc->data->type = oid(asn1::kSpcPeImageData).release();
      idc->data->value = pe_image_data_value().release();
      break;
    }
  }
  X509_ALGOR_set0(idc->messageDigest->digestAlgorithm, OBJ_nid2obj(EVP_MD_get_type(md)),
                  V_ASN1_NULL, nullptr);
  ASN1_OCTET_STRING_set(idc->messageDigest->digest, file_digest.data(),
                        static_cast<int>(file_digest.size()));
  ps.indirect_data_ =
      item_der(idc.get(), asn1::SpcIndirectDataContent_it(), "SpcIndirectDataContent");

  // The authenticated attributes. No signingTime: the time-stamp is the trusted time, and
  // signtool and jsign omit it too.
  STACK_OF(X509_ATTRIBUTE)* raw = nullptr;
  auto spc_oid = oid(asn1::kSpcIndirectData);
  add_attribute(&raw, OBJ_nid2obj(NID_pkcs9_contentType), V_ASN1_OBJECT, spc_oid.get(), -1);
  AttributesPtr attrs(raw);
  Bytes md_value = hash(opts.alg, content_octets(ps.indirect_data_));
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

Bytes PreparedSignature::assemble(const signer::SignResult& result) const {
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

  // contentInfo { SPC_INDIRECT_DATA, [0] EXPLICIT the SEQUENCE itself (not an OCTET STRING) }.
  PKCS7Ptr inner(PKCS7_new());
  AsnStringPtr seq(ASN1_STRING_type_new(V_ASN1_SEQUENCE));
  AsnTypePtr other(ASN1_TYPE_new());
  if (!inner || !seq || !other) throw std::bad_alloc();
  if (ASN1_STRING_set(seq.get(), indirect_data_.data(), static_cast<int>(indirect_data_.size())) !=
      1)
    throw std::bad_alloc();
  ASN1_TYPE_set(other.get(), V_ASN1_SEQUENCE, seq.release());
  ASN1_OBJECT_free(inner->type);
  inner->type = oid(asn1::kSpcIndirectData).release();
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

bool VerifyResult::ok() const {
  if (signatures.empty()) return false;
  for (const auto& s : signatures)
    if (s.entry == 0 && !s.problems.empty()) return false;
  return true;
}

std::size_t VerifyResult::primary_count() const {
  return static_cast<std::size_t>(std::count_if(
      signatures.begin(), signatures.end(), [](const SignatureReport& s) { return s.entry == 0; }));
}

std::string VerifyResult::first_problem() const {
  for (std::size_t i = 0; i < signatures.size(); ++i) {
    if (signatures[i].entry != 0 || signatures[i].problems.empty()) continue;
    std::string prefix = signatures[i].nested ? "nested signature " + std::to_string(i) + ": " : "";
    return prefix + signatures[i].problems.front();
  }
  return signatures.empty() ? "no signature" : std::string{};
}

VerifyResult verify(formats::SignableFile& file, const VerifyOptions& opts) {
  VerifyResult result;
  auto existing = file.existing_signature();
  if (!existing) {
    SignatureReport r;
    r.problems.push_back("no signature");
    result.signatures.push_back(std::move(r));
    return result;
  }
  X509StorePtr platform_roots;
  X509_STORE* roots = opts.roots;
  if (!roots && opts.check_trust) {
    platform_roots.reset(X509_STORE_new());
    if (!platform_roots) throw std::bad_alloc();
    platform::load_trust_roots(platform_roots.get());
    roots = platform_roots.get();
  }
  Verifier v{file, opts, roots, opts.tsa_roots ? opts.tsa_roots : roots, {}, {}};
  v.check(*existing, false);
  const auto others = file.other_signatures();
  for (std::size_t i = 0; i < others.size(); ++i) {
    const std::size_t first = v.reports.size();
    v.check(others[i], false);
    for (std::size_t k = first; k < v.reports.size(); ++k) v.reports[k].entry = i + 1;
  }
  result.signatures = std::move(v.reports);
  return result;
}

SignatureReport describe_certificate(X509* leaf) {
  SignatureReport r;
  if (!leaf) return r;
  r.subject = name_line(X509_get_subject_name(leaf));
  r.issuer = name_line(X509_get_issuer_name(leaf));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(leaf, EVP_sha256(), md, &n) == 1) r.sha256_thumbprint = to_hex(ByteView(md, n));
  r.not_before = iso8601(X509_get0_notBefore(leaf));
  r.not_after = iso8601(X509_get0_notAfter(leaf));
  return r;
}

}  // namespace tsign::authenticode
