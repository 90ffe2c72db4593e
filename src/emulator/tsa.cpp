// RFC 3161 time-stamp responses (§2.4.2 TimeStampResp, §2.4.2 TSTInfo) built by OpenSSL's
// TS_RESP_CTX / TS_RESP_create_response; SHA-256/384/512 imprints, certReq honoured by OpenSSL.
#include "emulator/tsa.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ts.h>

#include "common/error.hpp"
#include "common/ossl.hpp"

namespace tsign::emulator {

namespace {
using TsRespCtxPtr = OsslPtr<TS_RESP_CTX, TS_RESP_CTX_free>;
using TsRespPtr = OsslPtr<TS_RESP, TS_RESP_free>;

// A TSA policy OID of the emulator's own (TSTInfo.policy is mandatory).
constexpr const char* kPolicy = "1.3.6.1.4.1.311.97.9999.1";

ASN1_INTEGER* serial_cb(TS_RESP_CTX* ctx, void* data) {
  std::uint64_t value = *static_cast<std::uint64_t*>(data);
  ASN1_INTEGER* serial = ASN1_INTEGER_new();
  if (serial && ASN1_INTEGER_set_uint64(serial, value)) return serial;
  ASN1_INTEGER_free(serial);
  TS_RESP_CTX_set_status_info(ctx, TS_STATUS_REJECTION, "Error during serial number generation.");
  return nullptr;
}
}  // namespace

Bytes timestamp_reply(ByteView query, X509* tsa_cert, EVP_PKEY* tsa_key, std::uint64_t serial) {
  // A context per answer: TS_RESP_CTX holds per-request state and is cheap to make.
  TsRespCtxPtr ctx(TS_RESP_CTX_new());
  OsslPtr<ASN1_OBJECT, ASN1_OBJECT_free> policy(OBJ_txt2obj(kPolicy, 1));
  if (!ctx || !policy || !TS_RESP_CTX_set_signer_cert(ctx.get(), tsa_cert) ||
      !TS_RESP_CTX_set_signer_key(ctx.get(), tsa_key) ||
      !TS_RESP_CTX_set_signer_digest(ctx.get(), EVP_sha256()) ||
      !TS_RESP_CTX_set_ess_cert_id_digest(ctx.get(), EVP_sha256()) ||
      !TS_RESP_CTX_set_def_policy(ctx.get(), policy.get()) ||
      !TS_RESP_CTX_add_md(ctx.get(), EVP_sha256()) ||
      !TS_RESP_CTX_add_md(ctx.get(), EVP_sha384()) ||
      !TS_RESP_CTX_add_md(ctx.get(), EVP_sha512()) || !TS_RESP_CTX_set_accuracy(ctx.get(), 1, 0, 0))
    throw FileError("emulator: cannot set up the time-stamp authority: " + openssl_error_text());
  TS_RESP_CTX_set_serial_cb(ctx.get(), serial_cb, &serial);

  BioPtr in(BIO_new_mem_buf(query.data(), static_cast<int>(query.size())));
  TsRespPtr resp(TS_RESP_create_response(ctx.get(), in.get()));
  if (!resp)
    throw FileError("emulator: cannot build a time-stamp response: " + openssl_error_text());
  ERR_clear_error();  // a rejected request leaves errors in the queue; the answer says it all
  int n = i2d_TS_RESP(resp.get(), nullptr);
  if (n <= 0) throw FileError("emulator: cannot encode a time-stamp response");
  Bytes out(static_cast<std::size_t>(n));
  unsigned char* p = out.data();
  i2d_TS_RESP(resp.get(), &p);
  return out;
}

// protocol.md §4.
Answer TsaService::handle(const StringRequest& req) {
  namespace http = boost::beast::http;
  Answer a;
  a.kind = "tsa";
  if (req.method() != http::verb::post) {
    a.res.result(http::status::method_not_allowed);
    a.res.set(http::field::allow, "POST");
    return a;
  }
  if (every_nth(opts_.tsa_fail_every, ++requests_)) {
    a.res.result(http::status::service_unavailable);
    a.res.set(http::field::content_type, "text/plain");
    a.res.body() = "emulator: time-stamp authority unavailable (injected fault)\n";
    a.fault = "tsa-fail";
    return a;
  }
  if (req[http::field::content_type] != "application/timestamp-query") {
    a.res.result(http::status::unsupported_media_type);
    a.res.set(http::field::content_type, "text/plain");
    a.res.body() = "Content-Type must be application/timestamp-query\n";
    return a;
  }
  // The time in the high bits keeps serials unique across restarts on one state directory.
  Bytes reply = timestamp_reply(as_bytes(req.body()), cert_, key_,
                                ++serial_ + (static_cast<std::uint64_t>(unix_now()) << 20));
  a.res.result(http::status::ok);
  a.res.set(http::field::content_type, "application/timestamp-reply");
  a.res.body() = to_string(reply);
  return a;
}

}  // namespace tsign::emulator
