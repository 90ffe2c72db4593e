// Fuzz target for the app-package parsers: the strict ZIP reader (src/formats/zip.cpp), the
// block map, manifest and content-types checks and the XML reader they use, the digest blob and
// the signed package's writing (src/formats/appx.cpp).
#include <openssl/objects.h>
#include <openssl/pkcs7.h>

#include "common/error.hpp"
#include "common/ossl.hpp"
#include "formats/appx.hpp"
#include "fuzz_targets.hpp"
#include "support/memory_output.hpp"

namespace tsign::fuzz {

namespace {

namespace appx = formats::appx;
using test::MemoryOutput;

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

}  // namespace

std::string check_appx(ByteView data) {
  static const Bytes kDer = minimal_pkcs7();  // immutable after initialisation
  formats::MemorySource src(data, "input");
  const bool detected = appx::detect(src);
  appx::Layout layout;
  try {
    layout = appx::parse(src, "input");
  } catch (const FileError& e) {
    if (std::string_view(e.what()).substr(0, 7) != "input: ")
      return std::string("APPX: error does not name the file: ") + e.what();
    return {};
  }
  if (!detected) return "APPX: parse accepted what detect rejected";
  try {
    const Bytes digest = appx::package_digest(src, layout, layout.alg, "input");
    MemoryOutput out;
    if (appx::write_signed(src, layout, kDer, out, "input", layout.alg) != digest)
      return "APPX: write_signed reports another digest than the one computed before";
    formats::MemorySource again(out.bytes, "output");
    const appx::Layout l2 = appx::parse(again, "output");
    if (l2.pkcs7_der != kDer) return "APPX: the written package carries another signature";
    if (!l2.new_content_types.empty()) return "APPX: the written package lacks the Override";
    if (appx::package_digest(again, l2, l2.alg, "output") != digest)
      return "APPX: the written package has another digest";
  } catch (const FileError& e) {
    return std::string("APPX: a parsed package failed later: ") + e.what();
  }
  return {};
}

}  // namespace tsign::fuzz

TSIGN_FUZZ_ENTRY(tsign::fuzz::check_appx)
