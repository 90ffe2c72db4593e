// Digest algorithms of the `file-digest` / `timestamp-digest` options, and a streaming hasher.
#pragma once

#include <memory>
#include <optional>
#include <string_view>

#include <openssl/evp.h>

#include "common/bytes.hpp"

namespace tsign {

enum class DigestAlg { sha256, sha384, sha512 };

const EVP_MD* evp_md(DigestAlg alg);
std::string_view digest_name(DigestAlg alg);  // "SHA256"
// Accepts SHA256 / sha256 / SHA-256 (and the 384/512 forms).
std::optional<DigestAlg> parse_digest(std::string_view name);
std::size_t digest_size(DigestAlg alg);
// From an OpenSSL NID (as found in a PKCS#7 AlgorithmIdentifier); nullopt if unsupported.
std::optional<DigestAlg> digest_from_nid(int nid);

class Hasher {
 public:
  explicit Hasher(DigestAlg alg);
  void update(ByteView data);
  Bytes finish();

 private:
  struct Free {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> ctx_;
};

Bytes hash(DigestAlg alg, ByteView data);

}  // namespace tsign
