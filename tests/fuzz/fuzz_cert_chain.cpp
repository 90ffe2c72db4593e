// Fuzz target for the signing service's signingCertificate
// (src/signer/trusted_signing_protocol.cpp, signer::decode_certificate_chain): base64 once or
// twice, PKCS#7 certs-only, PEM, or concatenated DER, then ordered leaf first.
#include "common/error.hpp"
#include "fuzz_targets.hpp"
#include "signer/trusted_signing_protocol.hpp"

namespace tsign::fuzz {

std::string check_cert_chain(ByteView data) {
  std::vector<X509Ptr> chain;
  try {
    chain = signer::decode_certificate_chain(as_text(data));
  } catch (const FileError&) {
    return {};  // the documented refusal
  } catch (const std::exception& e) {
    return std::string("certificate chain: not a FileError: ") + e.what();
  }
  if (chain.empty()) return "certificate chain: accepted without a certificate";
  for (std::size_t i = 0; i < chain.size(); ++i) {
    if (!chain[i]) return "certificate chain: a null certificate";
    for (std::size_t j = 0; j < i; ++j)
      if (X509_cmp(chain[i].get(), chain[j].get()) == 0)
        return "certificate chain: a certificate is listed twice";
  }
  return {};
}

}  // namespace tsign::fuzz

TSIGN_FUZZ_ENTRY(tsign::fuzz::check_cert_chain)
