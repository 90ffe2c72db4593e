// Fuzz target for the security catalog parser (a PKCS #7 SignedData of a certificate trust
// list) and the writing of a signed catalog, src/formats/cat.cpp.
#include <algorithm>

#include "common/error.hpp"
#include "formats/cat.hpp"
#include "fuzz_targets.hpp"
#include "support/memory_output.hpp"

namespace tsign::fuzz {

namespace {

std::string check(ByteView data) {
  namespace cat = formats::cat;
  const bool detected = cat::detect(data);
  cat::Layout l;
  try {
    l = cat::parse(data, "input");
  } catch (const FileError& e) {
    if (std::string_view(e.what()).substr(0, 7) != "input: ")
      return std::string("error does not name the file: ") + e.what();
    return {};
  }
  if (!detected) return "parse accepted what detect rejected";
  if (l.file_size != data.size()) return "the layout's size is not the input's";
  // The CTL is kept as it stands in the file, never re-encoded.
  if (l.ctl_der.empty() ||
      std::search(data.begin(), data.end(), l.ctl_der.begin(), l.ctl_der.end()) == data.end())
    return "the CTL is not a byte range of the file";
  Bytes digest;
  try {
    digest = cat::ctl_digest(l.ctl_der, DigestAlg::sha256);
  } catch (const FileError& e) {
    return std::string("a parsed CTL has no digest: ") + e.what();
  }
  test::MemoryOutput out;
  try {
    Bytes written = cat::write_signed(l.ctl_der, data, out, "input");
    if (!l.has_signature) return "write_signed took a catalog with no SignerInfo";
    if (written != digest) return "write_signed reports another digest";
    if (!std::equal(out.bytes.begin(), out.bytes.end(), data.begin(), data.end()))
      return "write_signed wrote other bytes than the signature";
  } catch (const FileError& e) {
    if (l.has_signature) return std::string("write_signed refused a parsed catalog: ") + e.what();
    if (!out.bytes.empty()) return "write_signed wrote before refusing";
  }
  return {};
}

}  // namespace

std::string check_cat(ByteView data) {
  auto v = check(data);
  return v.empty() ? std::string() : "CAT: " + v;
}

}  // namespace tsign::fuzz

TSIGN_FUZZ_ENTRY(tsign::fuzz::check_cat)
