// What a signer hands back for one signature (docs/authenticode.md, "The PKCS#7 SignedData"):
// the raw signature value and the certificate chain that PreparedSignature::assemble() puts into
// the SignedData. Here, below both, so that authenticode/ never includes signer/ (whose
// signer::SignResult is this type).
#pragma once

#include <vector>

#include "common/bytes.hpp"
#include "common/ossl.hpp"

namespace tsign::authenticode {

struct SignResult {
  Bytes signature;  // raw signature value (RSA: modulus-sized; ECDSA: DER Ecdsa-Sig-Value)
  std::vector<X509Ptr> chain;  // leaf first, then intermediates (the root may be included)
};

}  // namespace tsign::authenticode
