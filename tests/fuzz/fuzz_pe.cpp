// Fuzz target for the PE/COFF parser (Microsoft "PE Format", the Attribute Certificate Table)
// and the Authenticode digest / signature embedding of src/formats/pe.cpp.
#include "fuzz_pe.hpp"

#include <openssl/objects.h>
#include <openssl/pkcs7.h>

#include "common/error.hpp"
#include "common/ossl.hpp"
#include "formats/pe.hpp"
#include "fuzz_targets.hpp"
#include "support/memory_output.hpp"

namespace tsign::fuzz {

namespace {

using test::MemoryOutput;

// A small but well-formed PKCS#7 SignedData, so the written image must parse again.
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

// Writes `layout`'s image with `der` and checks the result; returns the violation or "".
std::string check_written(ByteView data, const formats::pe::Layout& layout, const Bytes& digest,
                          ByteView der, const formats::pe::ChecksumSum* sum) {
  formats::pe::MemorySource src(data, "input");
  MemoryOutput out;
  const Bytes written = formats::pe::write_signed(src, layout, der, out, "input",
                                                  sum ? std::optional(*sum) : std::nullopt);
  if (written != digest) return "write_signed reports another digest than the one it was given";
  if (out.bytes.size() % 8 != 0) return "written image is not 8-byte aligned";
  formats::pe::MemorySource again(out.bytes, "output");
  formats::pe::Layout l2;
  try {
    l2 = formats::pe::parse(again, "output");
  } catch (const Error& e) {
    return std::string("written image does not parse: ") + e.what();
  }
  if (!l2.has_signature()) return "written image has no signature";
  if (!std::equal(l2.pkcs7_der.begin(), l2.pkcs7_der.end(), der.begin(), der.end()))
    return "written image carries a different signature";
  if (formats::pe::authenticode_digest(again, l2, DigestAlg::sha256) != digest)
    return "written image has a different digest";
  if (l2.stored_checksum != formats::pe::pe_checksum(out.bytes, l2.checksum_offset))
    return "written image has a wrong checksum";
  return {};
}

}  // namespace

PeCheck check_pe(ByteView data) {
  static const Bytes kDer = minimal_pkcs7();  // immutable after initialisation
  PeCheck r;
  formats::pe::MemorySource src(data, "input");
  const bool detected = formats::pe::detect(src);
  formats::pe::Layout layout;
  try {
    layout = formats::pe::parse(src, "input");
  } catch (const FileError& e) {
    if (std::string_view(e.what()).substr(0, 7) != "input: ")
      r.violation = std::string("error does not name the file: ") + e.what();
    return r;
  }
  r.parsed = true;
  if (!detected) {
    r.violation = "parse accepted what detect rejected";
    return r;
  }
  try {
    auto scanned = formats::pe::scan(src, layout, DigestAlg::sha256);
    if (scanned.digest != formats::pe::authenticode_digest(src, layout, DigestAlg::sha256)) {
      r.violation = "digest is not deterministic";
      return r;
    }
    r.violation = check_written(data, layout, scanned.digest, kDer, &scanned.content_sum);
    if (r.violation.empty())
      r.violation = check_written(data, layout, scanned.digest, kDer, nullptr);
    if (r.violation.empty() && layout.has_signature())
      r.violation = check_written(data, layout, scanned.digest, layout.pkcs7_der, nullptr);
  } catch (const FileError& e) {
    // Only the 4 GiB limit may refuse a parsed image, and fuzz inputs are far smaller.
    r.violation = std::string("parsed image refused later: ") + e.what();
  }
  return r;
}

std::string check_pe_target(ByteView data) {
  auto r = check_pe(data);
  return r.violation.empty() ? std::string() : "PE: " + r.violation;
}
}  // namespace tsign::fuzz

TSIGN_FUZZ_ENTRY(tsign::fuzz::check_pe_target)
