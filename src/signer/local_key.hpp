// A Signer over a local private key (PEM key + PEM chain, or a PKCS#12 file): for development,
// offline use, and as the test double of the cloud service (everything above Signer is shared).
#pragma once

#include <filesystem>
#include <memory>

#include "common/secret.hpp"
#include "signer/signer.hpp"

namespace tsign::signer {

// `key_pem`: an unencrypted PEM private key (RSA or EC). `chain_pem`: PEM certificates, the one
// matching the key first or anywhere (it is moved to the front). Throws InputError when a file
// cannot be read or parsed, or when no certificate matches the key.
std::unique_ptr<Signer> make_local_key_signer(const std::filesystem::path& key_pem,
                                              const std::filesystem::path& chain_pem);

// A PKCS#12 (.pfx/.p12) file holding the key, its certificate and optionally the chain.
// Throws InputError for a wrong password or an unreadable file.
std::unique_ptr<Signer> make_pfx_signer(const std::filesystem::path& path, const Secret& password);

}  // namespace tsign::signer
