// Fuzz target for the script formats (src/formats/script.cpp): the encoding and text checks, the
// signature block's parser, both SIPs' digests and the block's writer. The first byte picks the
// family (its index in script::kStyles), the rest is the script.
#include <openssl/objects.h>
#include <openssl/pkcs7.h>

#include "common/error.hpp"
#include "common/ossl.hpp"
#include "formats/script.hpp"
#include "fuzz_targets.hpp"

namespace tsign::fuzz {

namespace {

namespace script = formats::script;

// A small but well-formed PKCS#7 SignedData, so the signed script must parse again.
Bytes minimal_pkcs7() {
  PKCS7Ptr p7(PKCS7_new());
  if (!p7 || !PKCS7_set_type(p7.get(), NID_pkcs7_signed) ||
      !PKCS7_content_new(p7.get(), NID_pkcs7_data))
    std::abort();
  int n = i2d_PKCS7(p7.get(), nullptr);
  if (n <= 0) std::abort();
  Bytes der(static_cast<std::size_t>(n));
  unsigned char* p = der.data();
  i2d_PKCS7(p7.get(), &p);
  return der;
}

// Signs `data` (parsed as `layout`) with `der` and checks the result; returns the violation or "".
std::string check_written(ByteView data, const script::Layout& layout, const Bytes& digest,
                          ByteView der) {
  const Bytes out = script::with_signature(data, layout, der);
  script::Layout l2;
  try {
    l2 = script::parse(out, layout.family, "output");
  } catch (const Error& e) {
    return std::string("signed script does not parse: ") + e.what();
  }
  if (!std::equal(l2.pkcs7_der.begin(), l2.pkcs7_der.end(), der.begin(), der.end()))
    return "signed script carries a different signature";
  if (l2.encoding != layout.encoding) return "signed script changed its encoding";
  if (script::digest(out, l2, DigestAlg::sha256) != digest)
    return "signed script has a different digest";
  // The body's bytes are the original's: before the block, and after it.
  if (!std::equal(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(layout.block_begin),
                  out.begin()) ||
      !std::equal(data.begin() + static_cast<std::ptrdiff_t>(layout.block_end), data.end(),
                  out.end() - static_cast<std::ptrdiff_t>(data.size() - layout.block_end)))
    return "the script's text was not copied byte for byte";
  if (script::with_signature(out, l2, der) != out) return "re-signing is not idempotent";
  return {};
}

}  // namespace

std::string check_script(ByteView data) {
  static const Bytes kDer = minimal_pkcs7();  // immutable after initialisation
  if (data.empty()) return {};
  const auto family = script::kStyles[data[0] % script::kStyles.size()].family;
  const ByteView text = data.subspan(1);
  script::Layout layout;
  try {
    layout = script::parse(text, family, "input");
  } catch (const FileError& e) {
    if (std::string_view(e.what()).substr(0, 7) != "input: ")
      return std::string("script: error does not name the file: ") + e.what();
    return {};
  }
  std::string violation;
  try {
    const Bytes digest = script::digest(text, layout, DigestAlg::sha256);
    if (digest != script::digest(text, layout, DigestAlg::sha256))
      return "script: digest is not deterministic";
    violation = check_written(text, layout, digest, kDer);
    if (violation.empty() && layout.has_signature())
      violation = check_written(text, layout, digest, layout.pkcs7_der);
  } catch (const Error& e) {
    violation = std::string("parsed script refused later: ") + e.what();
  }
  return violation.empty() ? std::string() : "script: " + violation;
}

}  // namespace tsign::fuzz

TSIGN_FUZZ_ENTRY(tsign::fuzz::check_script)
