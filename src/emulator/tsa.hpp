// The emulator's RFC 3161 time-stamp authority (TimeStampReq -> TimeStampResp, §2.4) and its
// plain-HTTP front (RFC 3161 §3.4, docs/protocol.md §4), with the --tsa-fail-every fault.
#pragma once

#include <cstdint>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/bytes.hpp"
#include "emulator/answer.hpp"
#include "emulator/emulator.hpp"

namespace tsign::emulator {

// Answers a DER TimeStampReq with a DER TimeStampResp signed by `tsa_cert`/`tsa_key`. A request
// OpenSSL cannot parse or does not accept (unknown digest, bad policy) gets a TimeStampResp
// with status rejection, as RFC 3161 §2.4.2 asks. `serial` is the token's serial number.
// Throws FileError only if OpenSSL fails to build any answer at all.
Bytes timestamp_reply(ByteView query, X509* tsa_cert, EVP_PKEY* tsa_key, std::uint64_t serial);

// POST / on the time-stamp port. Threading: used on the emulator's io_context thread only.
class TsaService {
 public:
  // `opts` and the certificate and key must outlive the service.
  TsaService(const Options& opts, X509* tsa_cert, EVP_PKEY* tsa_key)
      : opts_(opts), cert_(tsa_cert), key_(tsa_key) {}
  Answer handle(const StringRequest& req);

 private:
  const Options& opts_;
  X509* cert_;
  EVP_PKEY* key_;
  std::uint64_t requests_ = 0;  // counts for --tsa-fail-every
  std::uint64_t serial_ = 0;
};

}  // namespace tsign::emulator
