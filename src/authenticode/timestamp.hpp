// RFC 3161 (Time-Stamp Protocol) messages for Authenticode signatures (protocol.md §4): the
// request carries H(SignerInfo.encryptedDigest), a random nonce and certReq; the reply's status,
// nonce and message imprint are checked before its TimeStampToken is used. Pure functions, no
// transport: the client that sends them over HTTP is src/tsa/ (one layer up).
#pragma once

#include "common/bytes.hpp"
#include "common/digest.hpp"

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

}  // namespace tsign::authenticode
