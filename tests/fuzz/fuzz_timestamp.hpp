// The request fuzz_timestamp's replies answer, shared with the seed generator (make_seeds.cpp) so
// that the seeds get past the nonce and message imprint checks into the token.
#pragma once

#include "authenticode/timestamp.hpp"

namespace tsign::fuzz {

// The signature value the request time-stamps, and the request with a fixed nonce (the product
// draws it at random).
inline ByteView timestamp_signature_value() {
  return as_bytes("tsign fuzz signature value");
}
inline authenticode::TimestampRequest timestamp_request() {
  authenticode::TimestampRequest r;
  r.nonce = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x08};
  return r;
}

}  // namespace tsign::fuzz
