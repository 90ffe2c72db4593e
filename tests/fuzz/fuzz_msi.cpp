// Fuzz target for the compound-file parser ([MS-CFB]), the MSI digest and the signed rewrite of
// src/formats/msi.cpp: whatever parses must digest, sign (a mini-stream and a regular-sector
// signature), parse again with the same digest and carry the signature it was given; signed in
// one read (digest_copying, finish_copy) it must be the same bytes.
#include "common/error.hpp"
#include "formats/msi.hpp"
#include "fuzz_targets.hpp"
#include "support/memory_output.hpp"

namespace tsign::fuzz {

namespace {

namespace msi = formats::msi;

std::string check_written(ByteView data, const msi::Layout& layout, const Bytes& digest,
                          const Bytes& sig) {
  msi::MemorySource src(data, "input");
  test::MemoryOutput out;
  const Bytes written = msi::write_signed(src, layout, sig, out, "input");
  if (written != digest) return "write_signed reports another digest than the file's";
  msi::MemorySource again(out.bytes, "output");
  msi::Layout l2;
  try {
    l2 = msi::parse(again, "output");
  } catch (const Error& e) {
    return std::string("written file does not parse: ") + e.what();
  }
  if (msi::digest(again, l2, DigestAlg::sha256, "output") != digest)
    return "written file has a different digest";
  auto s = msi::signature(again, l2, "output");
  if (!s || *s != sig) return "written file carries a different signature";
  // The signing in one read writes the same bytes.
  msi::MemorySource src2(data, "input");
  test::MemoryPatchable copy;
  if (msi::digest_copying(src2, layout, DigestAlg::sha256, copy, "input") != digest)
    return "digest_copying reports another digest than the file's";
  msi::finish_copy(layout, sig, copy, "input");
  if (copy.bytes != out.bytes) return "the copy made while digesting differs from write_signed's";
  return {};
}

}  // namespace

std::string check_msi(ByteView data) {
  msi::MemorySource src(data, "input");
  const bool detected = msi::detect(src);
  msi::Layout layout;
  try {
    layout = msi::parse(src, "input");
  } catch (const FileError& e) {
    if (std::string_view(e.what()).substr(0, 7) != "input: ")
      return std::string("MSI: error does not name the file: ") + e.what();
    return {};
  }
  if (!detected) return "MSI: parse accepted what detect rejected";
  try {
    const Bytes d = msi::digest(src, layout, DigestAlg::sha256, "input");
    if (d != msi::digest(src, layout, DigestAlg::sha256, "input"))
      return "MSI: digest is not deterministic";
    msi::signature(src, layout, "input");
    for (std::size_t n : {std::size_t{300}, std::size_t{5000}}) {
      Bytes sig(n);
      for (std::size_t i = 0; i < n; ++i) sig[i] = static_cast<std::uint8_t>(i * 7 + 1);
      if (auto v = check_written(data, layout, d, sig); !v.empty()) return "MSI: " + v;
    }
  } catch (const FileError& e) {
    return std::string("MSI: parsed file refused later: ") + e.what();
  }
  return {};
}

}  // namespace tsign::fuzz

TSIGN_FUZZ_ENTRY(tsign::fuzz::check_msi)
