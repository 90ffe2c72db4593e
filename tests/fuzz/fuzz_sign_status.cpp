// Fuzz target for the signing service's sign / poll answers
// (src/signer/trusted_signing_protocol.cpp, signer::parse_sign_status), whatever API version's
// shape they have.
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
  return {};
}

}  // namespace tsign::fuzz

TSIGN_FUZZ_ENTRY(tsign::fuzz::check_sign_status)
