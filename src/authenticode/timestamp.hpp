// RFC 3161 (Time-Stamp Protocol) client for Authenticode signatures (protocol.md §4): the
// request carries H(SignerInfo.encryptedDigest), a random nonce and certReq; the reply's status,
// nonce and message imprint are checked before its TimeStampToken is used.
#pragma once

#include <string>

#include <boost/asio/awaitable.hpp>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "http/client.hpp"

namespace tsign::authenticode {

struct TimestampRequest {
  Bytes der;    // DER TimeStampReq
  Bytes nonce;  // the nonce's big-endian magnitude, as sent
};

// imprint = H(signature_value) with `alg`, a random 64-bit nonce, certReq true, version 1.
TimestampRequest make_timestamp_request(ByteView signature_value, DigestAlg alg);

// Checks a DER TimeStampResp against the request it answers and returns the DER of its
// TimeStampToken (a ContentInfo of SignedData). Throws FileError when the status is neither
// granted nor grantedWithMods (with the authority's text and failure info), the token is
// missing, the nonce or the message imprint differ from the request's, or the reply is not DER
// of a TimeStampResp. The token's signature and chain are checked later, by verify().
Bytes check_timestamp_response(ByteView reply_der, const TimestampRequest& req,
                               ByteView signature_value, DigestAlg alg);

// Asks one time-stamp authority, over the run's http::Client (so its retry policy and the
// run's deadline apply).
class TimestampClient {
 public:
  TimestampClient(http::Client& client, std::string url, DigestAlg alg);
  // Returns the DER TimeStampToken for `signature_value` (the SignerInfo's encryptedDigest;
  // copied before the first suspension, so the caller's buffer may go away). Throws FileError
  // ("time-stamp authority URL answered HTTP 503", or a bad reply), http::TransportError,
  // DeadlineError.
  boost::asio::awaitable<Bytes> stamp(ByteView signature_value);
  const std::string& url() const { return url_; }

 private:
  boost::asio::awaitable<Bytes> stamp_owned(Bytes signature_value);
  http::Client& client_;
  std::string url_;
  DigestAlg alg_;
};

}  // namespace tsign::authenticode
