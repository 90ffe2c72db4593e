// Security catalogs: a PKCS #7 SignedData (RFC 2315 §9) of a Microsoft certificate trust list
// (szOID_CTL; wincrypt's CTL_INFO). What is signed, kept and refused is described in cat.hpp and
// docs/formats.md, "Catalogs". Every byte is parsed by OpenSSL (d2i_PKCS7, the CTL templates
// below, ASN1_get_object for a header); nothing here builds DER.
#include "formats/cat.hpp"

#include <algorithm>
#include <string>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>

#include "common/error.hpp"
#include "common/ossl.hpp"
#include "platform/platform.hpp"

namespace tsign::formats::cat {

namespace asn1 {

// clang-format off
ASN1_SEQUENCE(TrustedSubject) = {
  ASN1_SIMPLE(TrustedSubject, identifier, ASN1_OCTET_STRING),
  ASN1_SET_OF_OPT(TrustedSubject, attributes, X509_ATTRIBUTE),
} ASN1_SEQUENCE_END(TrustedSubject)
IMPLEMENT_ASN1_FUNCTIONS(TrustedSubject)

ASN1_SEQUENCE(CertificateTrustList) = {
  ASN1_OPT(CertificateTrustList, version, ASN1_INTEGER),
  ASN1_SEQUENCE_OF(CertificateTrustList, subjectUsage, ASN1_OBJECT),
  ASN1_OPT(CertificateTrustList, listIdentifier, ASN1_OCTET_STRING),
  ASN1_OPT(CertificateTrustList, sequenceNumber, ASN1_INTEGER),
  ASN1_SIMPLE(CertificateTrustList, thisUpdate, ASN1_TIME),
  ASN1_OPT(CertificateTrustList, nextUpdate, ASN1_TIME),
  ASN1_SIMPLE(CertificateTrustList, subjectAlgorithm, X509_ALGOR),
  ASN1_SEQUENCE_OF_OPT(CertificateTrustList, trustedSubjects, TrustedSubject),
  ASN1_EXP_SEQUENCE_OF_OPT(CertificateTrustList, extensions, X509_EXTENSION, 0),
} ASN1_SEQUENCE_END(CertificateTrustList)
IMPLEMENT_ASN1_FUNCTIONS(CertificateTrustList)
// clang-format on

}  // namespace asn1

namespace {

using CtlPtr = OsslPtr<asn1::CertificateTrustList, asn1::CertificateTrustList_free>;
using ObjectPtr = OsslPtr<ASN1_OBJECT, ASN1_OBJECT_free>;

[[noreturn]] void fail(std::string_view name, const std::string& reason) {
  ERR_clear_error();
  throw FileError(std::string(name) + ": " + reason);
}

const ASN1_OBJECT* ctl_oid() {
  // OBJ_txt2obj with no_name=1 only parses the dotted text; the object is immutable afterwards.
  static const ObjectPtr oid(OBJ_txt2obj(std::string(kCtlOid).c_str(), 1));
  return oid.get();
}

// One DER header at `p` (before `end`). With `whole`, the value must lie inside [p, end) too;
// without, only the header must (detection sees the first bytes of a longer file). Indefinite
// lengths (BER) are refused: a catalog is DER.
struct Header {
  int tag = 0;
  int cls = 0;
  bool constructed = false;
  long len = 0;
};
bool read_header(const unsigned char*& p, const unsigned char* end, Header& h, bool whole) {
  const unsigned char* q = p;
  int r = ASN1_get_object(&q, &h.len, &h.tag, &h.cls, static_cast<long>(end - p));
  // 0x80 alone with q moved is "the value runs past the buffer"; with q unmoved the header
  // itself is bad. Bit 0x01 is an indefinite length.
  bool too_long = (r & 0x80) != 0;
  ERR_clear_error();
  if (q == p || (r & 0x01)) return false;
  if (too_long && whole) return false;
  h.constructed = (r & V_ASN1_CONSTRUCTED) != 0;
  p = q;
  return true;
}

// True if the OBJECT IDENTIFIER at `p` (a whole element inside [p, end)) is `want`.
bool object_is(const unsigned char* p, const unsigned char* end, const ASN1_OBJECT* want) {
  const unsigned char* q = p;
  ObjectPtr obj(d2i_ASN1_OBJECT(nullptr, &q, static_cast<long>(end - p)));
  ERR_clear_error();
  return obj && OBJ_cmp(obj.get(), want) == 0;
}

// The CTL's content octets: the value of its outer SEQUENCE, which must span exactly `ctl_der`.
ByteView ctl_octets(ByteView ctl_der) {
  const unsigned char* p = ctl_der.data();
  Header h;
  if (!read_header(p, ctl_der.data() + ctl_der.size(), h, true) || h.tag != V_ASN1_SEQUENCE ||
      h.cls != V_ASN1_UNIVERSAL || !h.constructed)
    throw FileError("the certificate trust list is not one DER SEQUENCE");
  auto header = static_cast<std::size_t>(p - ctl_der.data());
  if (header + static_cast<std::size_t>(h.len) != ctl_der.size())
    throw FileError("the certificate trust list is not one DER SEQUENCE");
  return ctl_der.subspan(header);
}

std::string object_text(const ASN1_OBJECT* obj) {
  char buf[128] = {};
  if (!obj || OBJ_obj2txt(buf, sizeof buf, obj, 1) <= 0) return "(unknown)";
  return buf;
}

Bytes read_whole(platform::ReadFile& f, std::string_view name) {
  if (f.size() > kMaxCatalogSize)
    fail(name, "a catalog of " + std::to_string(f.size()) + " bytes is larger than tsign reads (" +
                   std::to_string(kMaxCatalogSize >> 20) + " MiB)");
  return f.read_at(0, static_cast<std::size_t>(f.size()));
}

}  // namespace

bool detect(ByteView head) {
  const unsigned char* p = head.data();
  const unsigned char* end = head.data() + head.size();
  Header h;
  // ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content }
  if (!read_header(p, end, h, false) || h.tag != V_ASN1_SEQUENCE || !h.constructed) return false;
  const unsigned char* at = p;
  if (!read_header(p, end, h, true) || h.tag != V_ASN1_OBJECT) return false;
  if (!object_is(at, p + h.len, OBJ_nid2obj(NID_pkcs7_signed))) return false;
  p += h.len;
  if (!read_header(p, end, h, false) || h.cls != V_ASN1_CONTEXT_SPECIFIC || h.tag != 0 ||
      !h.constructed)
    return false;
  // SignedData ::= SEQUENCE { version, digestAlgorithms SET, contentInfo SEQUENCE, ... }
  if (!read_header(p, end, h, false) || h.tag != V_ASN1_SEQUENCE || !h.constructed) return false;
  if (!read_header(p, end, h, true) || h.tag != V_ASN1_INTEGER) return false;
  p += h.len;
  if (!read_header(p, end, h, true) || h.tag != V_ASN1_SET) return false;
  p += h.len;
  if (!read_header(p, end, h, false) || h.tag != V_ASN1_SEQUENCE || !h.constructed) return false;
  at = p;
  if (!read_header(p, end, h, true) || h.tag != V_ASN1_OBJECT) return false;
  return object_is(at, p + h.len, ctl_oid());
}

Layout parse(ByteView file, std::string_view name) {
  if (file.size() > kMaxCatalogSize)
    fail(name, "a catalog of " + std::to_string(file.size()) +
                   " bytes is larger than tsign reads (" + std::to_string(kMaxCatalogSize >> 20) +
                   " MiB)");
  Layout l;
  l.file_size = file.size();
  const unsigned char* p = file.data();
  PKCS7Ptr p7(d2i_PKCS7(nullptr, &p, static_cast<long>(file.size())));
  if (!p7) fail(name, "not a catalog: the file is not a DER PKCS #7 ContentInfo");
  if (p != file.data() + file.size())
    fail(name, "not a catalog: " + std::to_string(file.data() + file.size() - p) +
                   " bytes follow the PKCS #7 ContentInfo (a catalog is that one DER value)");
  if (!PKCS7_type_is_signed(p7.get()))
    fail(name,
         "not a catalog: the PKCS #7 ContentInfo is " + object_text(p7->type) + ", not SignedData");
  PKCS7* contents = p7->d.sign ? p7->d.sign->contents : nullptr;
  if (!contents || !contents->type || OBJ_cmp(contents->type, ctl_oid()) != 0)
    fail(name, "not a catalog: the SignedData's content is " +
                   object_text(contents ? contents->type : nullptr) +
                   ", not a certificate trust list (" + std::string(kCtlOid) + ")");
  // The header walk of detection too, so that what is parsed is what is detected: d2i_PKCS7
  // also takes BER's indefinite lengths, and a catalog is DER.
  if (!detect(file)) fail(name, "not a catalog: the SignedData is not DER-encoded");
  if (!contents->d.other || contents->d.other->type != V_ASN1_SEQUENCE ||
      !contents->d.other->value.sequence)
    fail(name, "the catalog's certificate trust list is missing or not a SEQUENCE");
  const ASN1_STRING* seq = contents->d.other->value.sequence;
  l.ctl_der.assign(ASN1_STRING_get0_data(seq),
                   ASN1_STRING_get0_data(seq) + ASN1_STRING_length(seq));
  try {
    ctl_octets(l.ctl_der);
  } catch (const FileError& e) {
    fail(name, e.what());
  }
  const unsigned char* q = l.ctl_der.data();
  CtlPtr ctl(asn1::d2i_CertificateTrustList(nullptr, &q, static_cast<long>(l.ctl_der.size())));
  if (!ctl || q != l.ctl_der.data() + l.ctl_der.size())
    fail(name, "the catalog's content is not a valid certificate trust list");

  auto* infos = PKCS7_get_signer_info(p7.get());
  int signers = infos ? sk_PKCS7_SIGNER_INFO_num(infos) : 0;
  if (signers > 1)
    fail(name, "the catalog has " + std::to_string(signers) +
                   " SignerInfos; tsign signs catalogs with one (further signatures are nested "
                   "inside it)");
  l.has_signature = signers == 1;
  return l;
}

Bytes ctl_digest(ByteView ctl_der, DigestAlg alg) {
  return hash(alg, ctl_octets(ctl_der));
}

Bytes write_signed(ByteView ctl_der, ByteView pkcs7_der, SignedOutput& out, std::string_view name,
                   DigestAlg alg) {
  Layout w = parse(pkcs7_der, std::string(name) + ": the new signature");
  if (!w.has_signature) fail(name, "the new signature has no SignerInfo");
  if (!std::equal(w.ctl_der.begin(), w.ctl_der.end(), ctl_der.begin(), ctl_der.end()))
    fail(name, "the new signature carries another certificate trust list than the catalog's");
  out.write(pkcs7_der);
  return ctl_digest(w.ctl_der, alg);
}

namespace {

class CatFile final : public SignableFile {
 public:
  CatFile(const std::filesystem::path& p, Layout layout, Bytes file_hash)
      : SignableFile(p),
        name_(platform::to_utf8(p)),
        layout_(std::move(layout)),
        file_hash_(std::move(file_hash)) {}

  std::string_view format_name() const override { return "cat"; }
  SignedContent signed_content() const override {
    return {{}, {}, std::string(kCtlOid), layout_.ctl_der};
  }
  std::uint64_t size() const override { return layout_.file_size; }

  Bytes digest(DigestAlg alg) override {
    reread();
    return ctl_digest(layout_.ctl_der, alg);
  }

  std::optional<Bytes> existing_signature() override {
    if (!layout_.has_signature) return std::nullopt;
    return reread();
  }

  // The new SignedData carries the CTL and replaces the whole file: MakeCat's certificates (or
  // an earlier signer's) are not kept, as osslsigncode does not keep them either; a nested
  // signature was already moved into the new one by the caller.
  Bytes write_signed(ByteView pkcs7_der, SignedOutput& out, DigestAlg alg) override {
    reread();
    return cat::write_signed(layout_.ctl_der, pkcs7_der, out, name_, alg);
  }

 private:
  // The file as it is now, which must be the file that was opened: its signature and the CTL
  // the signature covers are both in these bytes.
  Bytes reread() const {
    platform::ReadFile f(path());
    Bytes now = read_whole(f, name_);
    if (now.size() != layout_.file_size || hash(DigestAlg::sha256, now) != file_hash_)
      fail(name_, "the file changed while it was being signed");
    return now;
  }

  std::string name_;
  Layout layout_;
  Bytes file_hash_;  // SHA-256 of the file at open
};

}  // namespace

bool detect(platform::ReadFile& file) {
  try {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(file.size(), kDetectBytes));
    Bytes head = file.read_at(0, n);
    return detect(ByteView(head));
  } catch (const Error&) {
    return false;
  }
}

std::unique_ptr<SignableFile> open(const std::filesystem::path& path) {
  const std::string name = platform::to_utf8(path);
  platform::ReadFile f(path);
  Bytes file = read_whole(f, name);
  Layout layout = parse(file, name);
  return std::make_unique<CatFile>(path, std::move(layout), hash(DigestAlg::sha256, file));
}

}  // namespace tsign::formats::cat
