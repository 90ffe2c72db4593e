// The Signer interface: everything above it (formats, Authenticode assembly, time-stamps, the
// engine) is shared between the cloud service and a local key, so the local key is also the
// test double of the cloud.
#pragma once

#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "authenticode/sign_result.hpp"
#include "common/bytes.hpp"
#include "common/digest.hpp"

namespace tsign::signer {

// The signature value and chain; declared in authenticode/ (the layer below, which assembles it).
using SignResult = authenticode::SignResult;

class Signer {
 public:
  virtual ~Signer() = default;
  // Signs `digest` (already hashed with `alg`: the hash of the DER signed attributes).
  // Throws tsign::Error subclasses: FileError for a per-file failure, AuthError for 401/403,
  // DeadlineError when the run's deadline passes.
  // Threads: a network signer is called on the engine's io thread only; a CPU-bound one (the
  // engine's SignerHandle says which) on its hashing pool, from several threads at once.
  virtual boost::asio::awaitable<SignResult> sign(Bytes digest, DigestAlg alg) = 0;
  // The certificate chain (leaf first) signatures are made with, learnt without making one: a
  // format with a rule about the certificate (an app package's Publisher) is checked before any
  // signature is paid for. A local key returns its own chain; the service answers from its free
  // certificate-chain endpoint. Same errors as sign().
  virtual boost::asio::awaitable<std::vector<X509Ptr>> certificate_chain() = 0;
  // For logs and the summary: "local key k.pem" / "Trusted Signing eus/account/profile".
  virtual std::string describe() const = 0;
};

}  // namespace tsign::signer
