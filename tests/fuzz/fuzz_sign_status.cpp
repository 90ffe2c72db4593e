// Fuzz target for the signing service's sign / poll answers
// (src/signer/trusted_signing_protocol.cpp, signer::parse_sign_status), whatever API version's
// shape they have, and for the reading of a 401 (says_token_invalid, its body and its
// WWW-Authenticate) and of a certificate-chain answer (is_certificate_chain) over the same bytes.
#include "common/error.hpp"
#include "fuzz_targets.hpp"
#include "signer/trusted_signing_protocol.hpp"

namespace tsign::fuzz {

std::string check_sign_status(ByteView data) {
  try {
    (void)signer::parse_sign_status(as_text(data));
  } catch (const FileError&) {
    // "the signing service sent a malformed answer": that file fails, the run goes on.
  } catch (const std::exception& e) {
    return std::string("sign status: not a FileError: ") + e.what();
  }
  try {
    http::Response refused;
    refused.status = 401;
    refused.body = std::string(as_text(data));
    (void)signer::says_token_invalid(refused);
    refused.headers["www-authenticate"] = refused.body;
    (void)signer::says_token_invalid(refused);
    refused.status = 403;
    if (signer::says_token_invalid(refused)) return "sign status: a 403 read as an invalid token";
    (void)signer::is_certificate_chain(as_text(data));
  } catch (const std::exception& e) {
    return std::string("sign status: reading a refusal or a chain threw: ") + e.what();
  }
  return {};
}

}  // namespace tsign::fuzz

TSIGN_FUZZ_ENTRY(tsign::fuzz::check_sign_status)
