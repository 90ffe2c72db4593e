// Fuzz target for the cabinet parser (Microsoft "Cabinet File Format", the Authenticode reserve)
// and the digest / signature embedding of src/formats/cab.cpp.
#include <openssl/objects.h>
#include <openssl/pkcs7.h>

#include "common/error.hpp"
#include "common/ossl.hpp"
#include "formats/cab.hpp"
#include "fuzz_targets.hpp"
#include "support/memory_output.hpp"

namespace tsign::fuzz {

namespace {

namespace cab = formats::cab;
using test::MemoryOutput;

// A small but well-formed PKCS#7 SignedData, so the written cabinet must parse again.
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

// Writes `layout`'s cabinet with `der` and checks the result; returns the violation or "".
std::string check_written(ByteView data, const cab::Layout& layout, const Bytes& digest,
                          ByteView der) {
  cab::MemorySource src(data, "input");
  MemoryOutput out;
  if (cab::write_signed(src, layout, der, out, "input") != digest)
    return "write_signed reports another digest than the one computed before";
  if (out.bytes.size() % 8 != layout.signed_content_end() % 8)
    return "the signature is not padded to 8 bytes";
  cab::MemorySource again(out.bytes, "output");
  cab::Layout l2;
  try {
    l2 = cab::parse(again, "output");
  } catch (const Error& e) {
    return std::string("written cabinet does not parse: ") + e.what();
  }
  if (!l2.has_signature()) return "written cabinet has no signature";
  if (!std::equal(l2.pkcs7_der.begin(), l2.pkcs7_der.end(), der.begin(), der.end()))
    return "written cabinet carries a different signature";
  if (cab::authenticode_digest(again, l2, DigestAlg::sha256) != digest)
    return "written cabinet has a different digest";
  // The signing in one read writes the same bytes.
  cab::MemorySource src2(data, "input");
  test::MemoryPatchable copy;
  if (cab::digest_copying(src2, layout, DigestAlg::sha256, copy, "input") != digest)
    return "digest_copying reports another digest than the one computed before";
  cab::finish_copy(layout, der, copy, "input");
  if (copy.bytes != out.bytes) return "the copy made while digesting differs from write_signed's";
  return {};
}

}  // namespace

std::string check_cab_target(ByteView data) {
  static const Bytes kDer = minimal_pkcs7();  // immutable after initialisation
  cab::MemorySource src(data, "input");
  const bool detected = cab::detect(src);
  cab::Layout layout;
  try {
    layout = cab::parse(src, "input");
  } catch (const FileError& e) {
    if (std::string_view(e.what()).substr(0, 7) != "input: ")
      return std::string("CAB: error does not name the file: ") + e.what();
    return {};
  }
  if (!detected) return "CAB: parse accepted what detect rejected";
  std::string violation;
  try {
    const Bytes digest = cab::authenticode_digest(src, layout, DigestAlg::sha256);
    if (digest != cab::authenticode_digest(src, layout, DigestAlg::sha256))
      return "CAB: digest is not deterministic";
    violation = check_written(data, layout, digest, kDer);
    if (violation.empty() && layout.has_signature())
      violation = check_written(data, layout, digest, layout.pkcs7_der);
  } catch (const FileError& e) {
    // Only the 4 GiB limit may refuse a parsed cabinet, and fuzz inputs are far smaller.
    violation = std::string("parsed cabinet refused later: ") + e.what();
  }
  return violation.empty() ? std::string() : "CAB: " + violation;
}

}  // namespace tsign::fuzz

TSIGN_FUZZ_ENTRY(tsign::fuzz::check_cab_target)
