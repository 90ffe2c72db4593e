// Compact JWS with RS256 (RFC 7515 §7.1, RFC 7518 §3.3) for the emulator's GitHub OIDC tokens
// and for checking the client assertions Entra receives (RFC 7523).
#pragma once

#include <optional>
#include <string>

#include <boost/json/object.hpp>

#include <openssl/evp.h>

namespace tsign::emulator {

// header.claims.signature, signed with `key` (RSA, PKCS#1 v1.5, SHA-256).
std::string jwt_sign(EVP_PKEY* key, const boost::json::object& header,
                     const boost::json::object& claims);

struct Jwt {
  boost::json::object header;
  boost::json::object claims;
  bool signature_valid = false;  // RS256 over header.claims with the key given to jwt_parse
};

// Parses a compact JWT and checks its RS256 signature against `key`; nullopt if it is not a
// well-formed JWT at all (three base64url parts, JSON objects).
std::optional<Jwt> jwt_parse(const std::string& token, EVP_PKEY* key);

}  // namespace tsign::emulator
