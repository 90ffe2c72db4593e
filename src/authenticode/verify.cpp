// Authenticode signature verification (tsign verify, and the self-check of every signed copy):
// the file's digest against SpcIndirectDataContent, the authenticated attributes against the
// content and the leaf's key, the leaf's codeSigning EKU, the RFC 3161 token (RFC 3161 §2.4.2
// TSTInfo, parsed as CMS, RFC 5652) and the chain at its time, and nested signatures.
// Specifications: Microsoft "Windows Authenticode Portable Executable Signature Format",
// RFC 2315 (PKCS #7 SignedData), RFC 3161; the project's summary is docs/authenticode.md,
// "Verification (`tsign verify`)".
#include <algorithm>
#include <map>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ts.h>
#include <openssl/x509v3.h>

#include "authenticode/authenticode.hpp"
#include "authenticode/der.hpp"
#include "authenticode/spc_asn1.hpp"
#include "common/error.hpp"
#include "platform/platform.hpp"

namespace tsign::authenticode {

using namespace der;

namespace {

struct Verifier {
  formats::SignableFile& file;
  const VerifyOptions& opts;
  X509_STORE* roots = nullptr;
  X509_STORE* tsa_roots = nullptr;
  std::map<DigestAlg, Bytes> file_digests;  // each algorithm's file digest computed once
  std::vector<SignatureReport> reports;
  formats::SignedContent expected = file.signed_content();  // what a signature of it must sign

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
    auto content_oid = oid(expected.is_own() ? expected.own_type.c_str() : asn1::kSpcIndirectData);
    if (!contents || !contents->type || OBJ_cmp(contents->type, content_oid.get()) != 0) {
      problem(expected.is_own() ? "the signed content is not this file's own content type (" +
                                      expected.own_type + ")"
                                : std::string("the signed content is not SpcIndirectDataContent "
                                              "(1.3.6.1.4.1.311.2.1.4)"));
      return;
    }
    // The content is [0] EXPLICIT SEQUENCE; a few old signers wrapped it in an OCTET STRING,
    // which Windows also accepts.
    std::optional<ByteView> content_der;
    if (contents->d.other && contents->d.other->type == V_ASN1_SEQUENCE)
      content_der = sequence_der(contents->d.other);
    else if (contents->d.other && contents->d.other->type == V_ASN1_OCTET_STRING)
      content_der = string_bytes(contents->d.other->value.octet_string);
    if (!content_der) {
      problem(expected.is_own() ? "the signed content is missing"
                                : "the SpcIndirectDataContent is missing");
      return;
    }

    // 1. The file's digest.
    if (expected.is_own()) {
      // A catalog's signature carries the catalog itself: the content must be the file's.
      if (!equal(*content_der, expected.own_der))
        problem("the signed content differs from the file's (the file was modified after signing)");
    } else {
      const unsigned char* p = content_der->data();
      IndirectPtr idc(
          asn1::d2i_SpcIndirectDataContent(nullptr, &p, static_cast<long>(content_der->size())));
      if (!idc) {
        ERR_clear_error();
        problem("the SpcIndirectDataContent cannot be parsed");
        return;
      }
      auto data_oid = oid(expected.spc_type.c_str());
      if (OBJ_cmp(idc->data->type, data_oid.get()) != 0)
        problem("the signature is for another kind of file (its SpcIndirectDataContent data is " +
                object_text(idc->data->type) + ", not " + expected.spc_type + ")");
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
    if (expected.is_own()) {
      if (auto a = digest_from_nid(OBJ_obj2nid(si->digest_alg->algorithm))) reports[index].alg = *a;
    }
    ASN1_TYPE* ct = PKCS7_get_signed_attribute(si, NID_pkcs9_contentType);
    if (!ct || ct->type != V_ASN1_OBJECT || OBJ_cmp(ct->value.object, content_oid.get()) != 0)
      problem("the contentType signed attribute does not name the signed content's type");
    ASN1_OCTET_STRING* md_attr = PKCS7_digest_from_attributes(si->auth_attr);
    Bytes expect(EVP_MAX_MD_SIZE);
    unsigned int n = 0;
    ByteView content = content_octets(*content_der);
    EVP_Digest(content.data(), content.size(), expect.data(), &n, si_md, nullptr);
    expect.resize(n);
    if (!md_attr || !equal(expect, string_bytes(md_attr)))
      problem("the messageDigest signed attribute does not match the signed content");

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

Bytes certificate_der(X509* cert) {
  unsigned char* out = nullptr;
  int n = cert ? i2d_X509(cert, &out) : -1;
  if (n <= 0) throw FileError("cannot encode the signing certificate: " + openssl_error_text());
  Bytes der(out, out + n);
  OPENSSL_free(out);
  return der;
}

}  // namespace tsign::authenticode
