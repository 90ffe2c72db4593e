#include "common/digest.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <string>

#include <openssl/obj_mac.h>

#include "common/text.hpp"

namespace tsign {

const EVP_MD* evp_md(DigestAlg alg) {
  switch (alg) {
    case DigestAlg::sha256:
      return EVP_sha256();
    case DigestAlg::sha384:
      return EVP_sha384();
    case DigestAlg::sha512:
      return EVP_sha512();
  }
  return EVP_sha256();
}

std::string_view digest_name(DigestAlg alg) {
  switch (alg) {
    case DigestAlg::sha256:
      return "SHA256";
    case DigestAlg::sha384:
      return "SHA384";
    case DigestAlg::sha512:
      return "SHA512";
  }
  return "SHA256";
}

std::optional<DigestAlg> parse_digest(std::string_view name) {
  std::string n;
  for (char c : name)
    if (c != '-') n.push_back(ascii_upper(c));
  if (n == "SHA256") return DigestAlg::sha256;
  if (n == "SHA384") return DigestAlg::sha384;
  if (n == "SHA512") return DigestAlg::sha512;
  return std::nullopt;
}

std::size_t digest_size(DigestAlg alg) {
  return static_cast<std::size_t>(EVP_MD_get_size(evp_md(alg)));
}

std::optional<DigestAlg> digest_from_nid(int nid) {
  switch (nid) {
    case NID_sha256:
      return DigestAlg::sha256;
    case NID_sha384:
      return DigestAlg::sha384;
    case NID_sha512:
      return DigestAlg::sha512;
    default:
      return std::nullopt;
  }
}

Hasher::Hasher(DigestAlg alg) : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), evp_md(alg), nullptr) != 1)
    throw std::runtime_error("cannot initialise the digest");
}

void Hasher::update(ByteView data) {
  if (!data.empty()) EVP_DigestUpdate(ctx_.get(), data.data(), data.size());
}

Bytes Hasher::finish() {
  Bytes out(EVP_MAX_MD_SIZE);
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_.get(), out.data(), &n);
  out.resize(n);
  return out;
}

Bytes hash(DigestAlg alg, ByteView data) {
  Hasher h(alg);
  h.update(data);
  return h.finish();
}

}  // namespace tsign
