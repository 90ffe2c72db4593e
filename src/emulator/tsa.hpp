// The emulator's RFC 3161 time-stamp authority (TimeStampReq -> TimeStampResp, §2.4).
#pragma once

#include <cstdint>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/bytes.hpp"

namespace tsign::emulator {

// Answers a DER TimeStampReq with a DER TimeStampResp signed by `tsa_cert`/`tsa_key`. A request
// OpenSSL cannot parse or does not accept (unknown digest, bad policy) gets a TimeStampResp
// with status rejection, as RFC 3161 §2.4.2 asks. `serial` is the token's serial number.
// Throws FileError only if OpenSSL fails to build any answer at all.
Bytes timestamp_reply(ByteView query, X509* tsa_cert, EVP_PKEY* tsa_key, std::uint64_t serial);

}  // namespace tsign::emulator
