// Compact JWS with RS256: RFC 7515 §7.1 (compact serialization), RFC 7518 §3.3 (RS256),
// RFC 7519 (claims). Signing and verification through OpenSSL's EVP_DigestSign/Verify.
#include "emulator/jwt.hpp"

#include <memory>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <openssl/err.h>

#include "common/bytes.hpp"
#include "common/error.hpp"

namespace tsign::emulator {

namespace {
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

std::optional<boost::json::object> decode_object(std::string_view part) {
  auto raw = base64url_decode(part);
  if (!raw) return std::nullopt;
  boost::system::error_code ec;
  auto v = boost::json::parse(to_string(*raw), ec);
  if (ec || !v.is_object()) return std::nullopt;
  return v.as_object();
}
}  // namespace

std::string jwt_sign(EVP_PKEY* key, const boost::json::object& header,
                     const boost::json::object& claims) {
  std::string input = base64url_encode(as_bytes(boost::json::serialize(header))) + "." +
                      base64url_encode(as_bytes(boost::json::serialize(claims)));
  MdCtxPtr ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  std::size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, as_bytes(input).data(), input.size()) != 1)
    throw FileError("emulator: cannot sign a JWT: " + openssl_error_text());
  Bytes sig(len);
  if (EVP_DigestSign(ctx.get(), sig.data(), &len, as_bytes(input).data(), input.size()) != 1)
    throw FileError("emulator: cannot sign a JWT: " + openssl_error_text());
  sig.resize(len);
  return input + "." + base64url_encode(sig);
}

std::optional<Jwt> jwt_parse(const std::string& token, EVP_PKEY* key) {
  auto d1 = token.find('.');
  if (d1 == std::string::npos) return std::nullopt;
  auto d2 = token.find('.', d1 + 1);
  if (d2 == std::string::npos || token.find('.', d2 + 1) != std::string::npos) return std::nullopt;
  auto header = decode_object(std::string_view(token).substr(0, d1));
  auto claims = decode_object(std::string_view(token).substr(d1 + 1, d2 - d1 - 1));
  auto sig = base64url_decode(std::string_view(token).substr(d2 + 1));
  if (!header || !claims || !sig) return std::nullopt;

  Jwt jwt{std::move(*header), std::move(*claims), false};
  const auto* alg = jwt.header.if_contains("alg");
  if (alg && alg->is_string() && alg->as_string() == "RS256") {
    std::string_view input = std::string_view(token).substr(0, d2);
    MdCtxPtr ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    jwt.signature_valid =
        ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
        EVP_DigestVerify(ctx.get(), sig->data(), sig->size(), as_bytes(input).data(),
                         input.size()) == 1;
    ERR_clear_error();  // a bad signature is an answer, not an error to report later
  }
  return jwt;
}

}  // namespace tsign::emulator
