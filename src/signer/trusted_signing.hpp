// The Trusted Signing (Artifact Signing) service as a Signer: sign / poll on the data plane of
// docs/protocol.md §3, with the token of an auth::TokenSource, in either of the two api-versions
// docs/usage.md, "Service API versions", names.
#pragma once

#include <memory>

#include "auth/token_source.hpp"
#include "common/log.hpp"
#include "http/client.hpp"
#include "signer/signer.hpp"
#include "signer/trusted_signing_protocol.hpp"  // the settings and the protocol's pure pieces

namespace tsign::signer {

// The signer. `client`, `tokens` and `log` must outlive it. Checks the endpoint against
// TSIGN_ALLOWED_HOSTS itself too, so a signer is never built for a foreign host.
std::unique_ptr<Signer> make_trusted_signing_signer(const TrustedSigningSettings& settings,
                                                    http::Client& client, auth::TokenSource& tokens,
                                                    Log& log);

}  // namespace tsign::signer
