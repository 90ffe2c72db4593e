// RFC 3161 Time-Stamp Protocol messages: TimeStampReq (§2.4.1) and the checks of a TimeStampResp
// (§2.4.2: PKIStatusInfo, the TSTInfo's nonce and messageImprint) required by §2.4.2 and by
// protocol.md §4. The transport ("TSP over HTTP", §3.4) is src/tsa/timestamp_client.cpp.
// Everything ASN.1 goes through OpenSSL's TS_* types.
#include "authenticode/timestamp.hpp"

#include <algorithm>
#include <array>
#include <string>
#include <utility>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ts.h>

#include "common/error.hpp"
#include "common/ossl.hpp"

namespace tsign::authenticode {

namespace {

using TsReqPtr = OsslPtr<TS_REQ, TS_REQ_free>;
using TsRespPtr = OsslPtr<TS_RESP, TS_RESP_free>;
using TsImprintPtr = OsslPtr<TS_MSG_IMPRINT, TS_MSG_IMPRINT_free>;
using AlgorPtr = OsslPtr<X509_ALGOR, X509_ALGOR_free>;
using BnPtr = OsslPtr<BIGNUM, BN_free>;
using Asn1IntPtr = OsslPtr<ASN1_INTEGER, ASN1_INTEGER_free>;

[[noreturn]] void fail(const std::string& what) {
  throw FileError("the time-stamp authority's answer " + what);
}

Bytes bn_bytes(const BIGNUM* bn) {
  Bytes out(static_cast<std::size_t>(BN_num_bytes(bn)));
  BN_bn2bin(bn, out.data());
  return out;
}

// PKIStatus (RFC 3161 §2.4.2).
std::string status_name(long s) {
  switch (s) {
    case 0:
      return "granted";
    case 1:
      return "grantedWithMods";
    case 2:
      return "rejection";
    case 3:
      return "waiting";
    case 4:
      return "revocationWarning";
    case 5:
      return "revocationNotification";
    default:
      return "status " + std::to_string(s);
  }
}

// The authority's free text and PKIFailureInfo bits, for a message the user can act on.
std::string status_details(const TS_STATUS_INFO* info) {
  std::string out;
  if (const auto* texts = TS_STATUS_INFO_get0_text(info)) {
    for (int i = 0; i < sk_ASN1_UTF8STRING_num(texts); ++i) {
      const ASN1_UTF8STRING* t = sk_ASN1_UTF8STRING_value(texts, i);
      out += out.empty() ? ": " : "; ";
      out.append(reinterpret_cast<const char*>(ASN1_STRING_get0_data(t)),
                 static_cast<std::size_t>(ASN1_STRING_length(t)));
    }
  }
  if (const ASN1_BIT_STRING* fi = TS_STATUS_INFO_get0_failure_info(info)) {
    static constexpr std::array<std::pair<int, const char*>, 8> bits = {{
        {0, "badAlg"},
        {2, "badRequest"},
        {5, "badDataFormat"},
        {14, "timeNotAvailable"},
        {15, "unacceptedPolicy"},
        {16, "unacceptedExtension"},
        {17, "addInfoNotAvailable"},
        {25, "systemFailure"},
    }};
    std::string names;
    for (auto [bit, name] : bits)
      if (ASN1_BIT_STRING_get_bit(fi, bit)) names += std::string(names.empty() ? "" : ",") + name;
    if (!names.empty()) out += " (failure info: " + names + ")";
  }
  return out;
}

}  // namespace

TimestampRequest make_timestamp_request(ByteView signature_value, DigestAlg alg) {
  const Bytes digest = hash(alg, signature_value);
  TsReqPtr req(TS_REQ_new());
  TsImprintPtr imprint(TS_MSG_IMPRINT_new());
  AlgorPtr algo(X509_ALGOR_new());
  if (!req || !imprint || !algo) throw std::bad_alloc();
  // Parameters NULL, as `openssl ts -query` and signtool send them.
  bool ok = X509_ALGOR_set0(algo.get(), OBJ_nid2obj(EVP_MD_get_type(evp_md(alg))), V_ASN1_NULL,
                            nullptr) == 1 &&
            TS_MSG_IMPRINT_set_algo(imprint.get(), algo.get()) == 1 &&
            TS_MSG_IMPRINT_set_msg(imprint.get(), const_cast<unsigned char*>(digest.data()),
                                   static_cast<int>(digest.size())) == 1 &&
            TS_REQ_set_version(req.get(), 1) == 1 &&
            TS_REQ_set_msg_imprint(req.get(), imprint.get()) == 1 &&
            TS_REQ_set_cert_req(req.get(), 1) == 1;

  // A random 64-bit nonce binds the answer to this request (RFC 3161 §2.4.1).
  Bytes raw = random_bytes(8);
  BnPtr bn(BN_bin2bn(raw.data(), static_cast<int>(raw.size()), nullptr));
  Asn1IntPtr nonce(bn ? BN_to_ASN1_INTEGER(bn.get(), nullptr) : nullptr);
  ok = ok && nonce && TS_REQ_set_nonce(req.get(), nonce.get()) == 1;
  if (!ok) throw FileError("cannot build the time-stamp request: " + openssl_error_text());

  TimestampRequest out;
  out.nonce = bn_bytes(bn.get());
  int n = i2d_TS_REQ(req.get(), nullptr);
  if (n <= 0) throw FileError("cannot encode the time-stamp request: " + openssl_error_text());
  out.der.resize(static_cast<std::size_t>(n));
  unsigned char* p = out.der.data();
  i2d_TS_REQ(req.get(), &p);
  return out;
}

Bytes check_timestamp_response(ByteView reply_der, const TimestampRequest& req,
                               ByteView signature_value, DigestAlg alg) {
  const unsigned char* p = reply_der.data();
  const unsigned char* end = p + reply_der.size();
  TsRespPtr resp(d2i_TS_RESP(nullptr, &p, static_cast<long>(reply_der.size())));
  if (!resp) {
    // OpenSSL's decoder itself refuses a "granted" answer without a token; say so plainly.
    bool no_token = false;
    for (unsigned long e; (e = ERR_get_error()) != 0;)
      no_token =
          no_token || (ERR_GET_LIB(e) == ERR_LIB_TS && ERR_GET_REASON(e) == TS_R_TOKEN_NOT_PRESENT);
    if (no_token) fail("grants the request but carries no time-stamp token");
    fail("is not an RFC 3161 TimeStampResp (" + std::to_string(reply_der.size()) + " bytes)");
  }
  if (p != end) fail("has trailing bytes after the TimeStampResp");

  const TS_STATUS_INFO* info = TS_RESP_get_status_info(resp.get());
  const long status = ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(info));
  if (status != 0 && status != 1)
    fail("refused the request: " + status_name(status) + status_details(info));

  PKCS7* token = TS_RESP_get_token(resp.get());
  TS_TST_INFO* tst = TS_RESP_get_tst_info(resp.get());
  if (!token || !tst) fail("grants the request but carries no time-stamp token");

  const ASN1_INTEGER* got_nonce = TS_TST_INFO_get_nonce(tst);
  if (!got_nonce) fail("carries no nonce (the request sent one)");
  BnPtr got_bn(ASN1_INTEGER_to_BN(got_nonce, nullptr));
  if (!got_bn || BN_is_negative(got_bn.get()) || bn_bytes(got_bn.get()) != req.nonce)
    fail("carries a different nonce than the request (a replayed or mixed-up answer)");

  TS_MSG_IMPRINT* imprint = TS_TST_INFO_get_msg_imprint(tst);
  const X509_ALGOR* algo = imprint ? TS_MSG_IMPRINT_get_algo(imprint) : nullptr;
  const ASN1_OCTET_STRING* msg = imprint ? TS_MSG_IMPRINT_get_msg(imprint) : nullptr;
  if (!algo || !msg) fail("has no message imprint");
  const ASN1_OBJECT* oid = nullptr;
  X509_ALGOR_get0(&oid, nullptr, nullptr, algo);
  if (OBJ_obj2nid(oid) != EVP_MD_get_type(evp_md(alg)))
    fail("time-stamps a digest of another algorithm than " + std::string(digest_name(alg)));
  const Bytes expected = hash(alg, signature_value);
  const auto* got = ASN1_STRING_get0_data(msg);
  if (static_cast<std::size_t>(ASN1_STRING_length(msg)) != expected.size() ||
      !std::equal(expected.begin(), expected.end(), got))
    fail("time-stamps another digest than this signature's");

  int n = i2d_PKCS7(token, nullptr);
  if (n <= 0) fail("has a token that cannot be encoded: " + openssl_error_text());
  Bytes out(static_cast<std::size_t>(n));
  unsigned char* q = out.data();
  i2d_PKCS7(token, &q);
  // OpenSSL decodes some encodings it writes back as DER it cannot decode again (found by
  // fuzz_timestamp); such a token would be embedded, then fail every verification.
  const unsigned char* r = out.data();
  if (PKCS7Ptr again{d2i_PKCS7(nullptr, &r, static_cast<long>(out.size()))};
      !again || r != out.data() + out.size()) {
    ERR_clear_error();
    fail("has a token that does not decode again once encoded");
  }
  return out;
}

}  // namespace tsign::authenticode
