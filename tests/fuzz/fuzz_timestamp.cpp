// Fuzz target for the RFC 3161 TimeStampResp check (src/authenticode/timestamp.cpp,
// check_timestamp_response): arbitrary bytes as the time-stamp authority's HTTP answer body.
#include <openssl/pkcs7.h>

#include "common/error.hpp"
#include "common/ossl.hpp"
#include "fuzz_targets.hpp"
#include "fuzz_timestamp.hpp"

namespace tsign::fuzz {

std::string check_timestamp(ByteView data) {
  static const authenticode::TimestampRequest req = timestamp_request();
  Bytes token;
  try {
    token = authenticode::check_timestamp_response(data, req, timestamp_signature_value(),
                                                   DigestAlg::sha256);
  } catch (const FileError&) {
    return {};  // the documented refusal
  } catch (const std::exception& e) {
    return std::string("timestamp: not a FileError: ") + e.what();
  }
  // What is returned is embedded as the signature's time-stamp: it must be a SignedData.
  const unsigned char* p = token.data();
  PKCS7Ptr p7(d2i_PKCS7(nullptr, &p, static_cast<long>(token.size())));
  if (!p7 || !PKCS7_type_is_signed(p7.get()) || p != token.data() + token.size())
    return "timestamp: the accepted token is not a DER PKCS#7 SignedData";
  return {};
}

}  // namespace tsign::fuzz

TSIGN_FUZZ_ENTRY(tsign::fuzz::check_timestamp)
