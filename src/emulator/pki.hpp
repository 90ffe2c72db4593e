// The emulator's certificate authorities (RFC 5280 profiles built with OpenSSL's X509v3 API):
// a TLS root and server certificate, a code-signing root + intermediate + 3-day leaf shaped like
// Trusted Signing's (protocol.md §3 "The certificate"), and a time-stamping root + TSA certificate
// (RFC 3161 §2.3: critical timeStamping EKU). Keys are kept in the state directory so that a
// restart does not pay for key generation again.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/bytes.hpp"
#include "common/ossl.hpp"

namespace tsign::emulator {

struct PkiOptions {
  std::filesystem::path dir;
  std::string account;
  std::string profile;
  bool leaf_without_code_signing = false;
};

struct Pki {
  EvpPkeyPtr tls_root_key;
  X509Ptr tls_root;
  EvpPkeyPtr tls_server_key;
  X509Ptr tls_server;

  EvpPkeyPtr cs_root_key;
  X509Ptr cs_root;
  EvpPkeyPtr cs_ca_key;
  X509Ptr cs_ca;
  EvpPkeyPtr leaf_key;
  X509Ptr leaf;
  std::vector<std::string> leaf_ekus;  // dotted OIDs, as GET .../sign/eku reports them

  EvpPkeyPtr tsa_root_key;
  X509Ptr tsa_root;
  EvpPkeyPtr tsa_key;
  X509Ptr tsa;

  EvpPkeyPtr oidc_key;  // signs the GitHub OIDC tokens

  // The application's client certificate (Entra "certificate credentials"): RSA, issued by an
  // emulator client CA so that subject name + issuer (x5c) authentication can be checked too.
  EvpPkeyPtr client_ca_key;
  X509Ptr client_ca;
  EvpPkeyPtr client_key;
  X509Ptr client_cert;
};

// Loads what is present and still valid in opts.dir, creates the rest, and writes every
// certificate (PEM) and key (PEM, owner-only) back. The leaf is issued fresh on every call.
// Throws FileError naming the file on I/O or OpenSSL failure.
Pki load_or_create_pki(const PkiOptions& opts);

// Writes the client certificate for tsign to use: `pem` (certificate, key, client CA; owner-only)
// and `pfx` (PKCS#12 of the same, AES-encrypted with `password`; owner-only).
void write_client_certificate(const Pki& pki, const std::filesystem::path& pem,
                              const std::filesystem::path& pfx, const std::string& password);

// The per-identity EKU (1.3.6.1.4.1.311.97.X.Y.Z.W), stable for one account/profile pair.
std::string identity_eku(const std::string& account, const std::string& profile);

Bytes to_der(X509* cert);
std::string to_pem(X509* cert);

}  // namespace tsign::emulator
