// DER and ASN.1 helpers of src/authenticode/ (see der.hpp): PKCS#7 ContentInfo (RFC 2315),
// DER TLV headers (ITU-T X.690), SignerInfo attributes and certificate facts, all through OpenSSL.
#include "authenticode/der.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "common/error.hpp"

namespace tsign::authenticode::der {

AsnObjectPtr oid(const char* dotted) {
  AsnObjectPtr o(OBJ_txt2obj(dotted, 1));
  if (!o) throw std::runtime_error(std::string("cannot create the OID ") + dotted);
  return o;
}

std::string object_text(const ASN1_OBJECT* o) {
  if (!o) return "(none)";
  char buf[128];
  int n = OBJ_obj2txt(buf, sizeof buf, o, 1);
  if (n <= 0) return "(unreadable)";
  return std::string(buf, static_cast<std::size_t>(std::min<int>(n, sizeof buf - 1)));
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

std::optional<ByteView> sequence_der(const ASN1_TYPE* t) {
  if (!t || t->type != V_ASN1_SEQUENCE || !t->value.sequence) return std::nullopt;
  return string_bytes(t->value.sequence);
}

}  // namespace tsign::authenticode::der
