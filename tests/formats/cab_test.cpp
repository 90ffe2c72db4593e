// Cabinet format: detection, the Authenticode digest against osslsigncode's, the signed file
// byte for byte as osslsigncode writes it (with and without an existing reserve), and every
// malformed or unsupported cabinet refused with the file and the reason.
#include <catch2/catch.hpp>

#include <functional>

#include "common/error.hpp"
#include "common/text.hpp"
#include "formats/cab.hpp"
#include "formats/format.hpp"
#include "formats/spc_data.hpp"
#include "reference.hpp"
#include "support/fixtures.hpp"
#include "support/memory_output.hpp"

namespace fs = std::filesystem;
namespace reference = tsign::test::reference;
using tsign::Bytes;
using tsign::DigestAlg;
using tsign::test::fixture;
using tsign::test::MemoryOutput;
using tsign::test::quote;
using tsign::test::read_all;
using tsign::test::run_command;
using tsign::test::write_all;
namespace cab = tsign::formats::cab;

namespace {

std::string digest_hex(const fs::path& p, DigestAlg alg) {
  return tsign::ascii_upper(tsign::to_hex(tsign::formats::open(p)->digest(alg)));
}

// A cabinet from tests/support/make_cab.py.
fs::path make_cab(const fs::path& out, const std::string& args) {
  const auto script = fs::path(TSIGN_FIXTURES_SCRIPT).parent_path() / "make_cab.py";
  auto r = run_command("python3 " + quote(script) + " " + quote(out) + " " + args);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  return out;
}

void put32(Bytes& b, std::size_t off, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b[off + i] = static_cast<std::uint8_t>(v >> (8 * i));
}
void put16(Bytes& b, std::size_t off, std::uint16_t v) {
  b[off] = static_cast<std::uint8_t>(v);
  b[off + 1] = static_cast<std::uint8_t>(v >> 8);
}

// parse()'s error for `data`, or "" if it parses.
std::string parse_error(const Bytes& data) {
  cab::MemorySource src(data, "in.cab");
  try {
    cab::parse(src, "in.cab");
  } catch (const tsign::FileError& e) {
    return e.what();
  }
  return {};
}

const char* const kUnsigned[] = {"cab-plain.cab", "cab-zip.cab", "cab-multi.cab"};

}  // namespace

TEST_CASE("every CAB fixture is detected and opened as a cabinet", "[cab]") {
  for (const char* name : {"cab-plain.cab", "cab-zip.cab", "cab-multi.cab", "cab-signed.cab"}) {
    INFO(name);
    CHECK(tsign::formats::is_supported(fixture(name)));
    auto f = tsign::formats::open(fixture(name));
    CHECK(f->format_name() == "cab");
    CHECK(f->existing_signature().has_value() == (std::string(name) == "cab-signed.cab"));
    auto content = f->signed_content();
    CHECK(content.spc_type == "1.3.6.1.4.1.311.2.1.25");
    // SpcLink.file [2] { SpcString.unicode [0] "<<<Obsolete>>>" }, as osslsigncode writes it.
    CHECK(tsign::to_hex(content.spc_value).rfind("a21e801c003c003c003c004f0062", 0) == 0);
  }
  // Not a PE: the PE fixture is not taken for a cabinet.
  const Bytes pe = read_all(fixture("pe64.exe"));  // outlives the source that views it
  cab::MemorySource pe_src(pe);
  CHECK_FALSE(cab::detect(pe_src));
}

TEST_CASE("a cabinet's existing signature is the DER osslsigncode extracts", "[cab]") {
  tsign::test::TempDir tmp("cab-extract");
  Bytes der = reference::extract_signature(fixture("cab-signed.cab"), tmp / "sig.der");
  auto sig = tsign::formats::open(fixture("cab-signed.cab"))->existing_signature();
  REQUIRE(sig.has_value());
  CHECK(*sig == der);
}

TEST_CASE("the CAB digest equals osslsigncode's for SHA-256/384/512", "[cab]") {
  tsign::test::TempDir tmp("cab-digest");
  const std::pair<DigestAlg, const char*> algs[] = {
      {DigestAlg::sha256, "sha256"}, {DigestAlg::sha384, "sha384"}, {DigestAlg::sha512, "sha512"}};
  for (const char* name : {"cab-plain.cab", "cab-zip.cab", "cab-multi.cab", "cab-signed.cab"}) {
    for (auto [alg, alg_name] : algs) {
      INFO(name << " " << alg_name);
      const auto signed_copy = tmp / (std::string(alg_name) + "-" + name);
      reference::sign(fixture(name), signed_copy, alg_name);
      auto v = reference::verify_trusted(signed_copy);
      INFO(v.output);
      REQUIRE(v.exit_code == 0);
      const std::string reference = reference::last_hex(v.output, "Calculated message digest");
      REQUIRE(reference.size() == 2 * tsign::digest_size(alg));
      // The unsigned original hashes as its signed copy does (reserve inserted, then skipped).
      CHECK(digest_hex(fixture(name), alg) == reference);
      CHECK(digest_hex(signed_copy, alg) == reference);
    }
  }
}

TEST_CASE(
    "write_signed and the copy made while digesting write what osslsigncode writes, with and "
    "without a reserve",
    "[cab]") {
  tsign::test::TempDir tmp("cab-write");
  // A cabinet of several 1 MiB streaming chunks (more than the buffers a copy made while
  // digesting takes turns with), as well as the fixtures.
  static_assert(tsign::formats::kLendDepth < 5);
  make_cab(tmp / "big.cab", "--folders 2 --file-size 3500001");
  std::vector<fs::path> inputs = {tmp / "big.cab", fixture("cab-signed.cab")};
  for (const char* n : kUnsigned) inputs.push_back(fixture(n));
  for (const auto& in : inputs) {
    for (const char* alg : {"sha256", "sha512"}) {
      INFO(in.filename().string() << " " << alg);
      const auto reference = tmp / (std::string("ref-") + alg + "-" + in.filename().string());
      reference::sign(in, reference, alg);
      Bytes der = reference::extract_signature(reference, tmp / "sig.der");
      auto f = tsign::formats::open(in);
      const DigestAlg a = std::string(alg) == "sha256" ? DigestAlg::sha256 : DigestAlg::sha512;
      const Bytes before = f->digest(a);
      MemoryOutput out;
      CHECK(f->write_signed(der, out, a) == before);
      CHECK(out.bytes == read_all(reference));
      // The signing in one read (the engine's path) writes the same bytes.
      REQUIRE(f->copies_while_digesting());
      tsign::test::MemoryPatchable copy;
      CHECK(f->digest_copying(a, copy) == before);
      f->finish_copy(der, copy);
      CHECK(copy.bytes == read_all(reference));
      // The content is lent chunk by chunk (MemoryPatchable checks the chunks stay as lent).
      if (in == tmp / "big.cab") CHECK(copy.lent == 7);
      const auto ours = tmp / (std::string("ours-") + alg + "-" + in.filename().string());
      write_all(ours, out.bytes);
      auto v = reference::verify_trusted(ours);
      INFO(v.output);
      CHECK(v.exit_code == 0);
      CHECK(v.output.find("Signature verification: ok") != std::string::npos);
      CHECK(tsign::formats::open(ours)->existing_signature() == der);
    }
  }
}

TEST_CASE("write_signed returns the digest of what it wrote and refuses a changed cabinet",
          "[cab]") {
  tsign::test::TempDir tmp("cab-changed");
  const Bytes original = read_all(fixture("cab-multi.cab"));
  const Bytes der = read_all(fixture("cab-signed.cab"));  // any non-empty bytes will do
  write_all(tmp / "a.cab", original);
  auto f = tsign::formats::open(tmp / "a.cab");
  const Bytes before = f->digest(DigestAlg::sha256);

  // A data byte changed: the digest of the bytes written differs, so the engine refuses.
  Bytes edited = original;
  edited[edited.size() - 10] ^= 1;
  write_all(tmp / "a.cab", edited);
  MemoryOutput out;
  CHECK(f->write_signed(der, out) != before);

  // A structural change: refused outright.
  Bytes moved = original;
  put16(moved, 28, 2);  // cFiles
  write_all(tmp / "a.cab", moved);
  MemoryOutput out2;
  CHECK_THROWS_WITH(f->write_signed(der, out2),
                    Catch::Contains("a.cab") && Catch::Contains("changed while"));
  // A size change: refused by the digest pass too.
  Bytes longer = original;
  longer.push_back(0);
  write_all(tmp / "a.cab", longer);
  CHECK_THROWS_WITH(f->digest(DigestAlg::sha256), Catch::Contains("changed since it was opened"));
}

TEST_CASE("malformed cabinets are refused with the file and the reason", "[cab]") {
  const Bytes good = read_all(fixture("cab-multi.cab"));  // 3 folders, 3 files, no reserve
  REQUIRE(parse_error(good).empty());
  // Offsets in cab-multi.cab: CFFOLDERs at 36 (8 each), CFFILEs at 60.
  struct Case {
    const char* what;
    std::function<void(Bytes&)> edit;
    const char* message;
  };
  const Case cases[] = {
      {"too short", [](Bytes& b) { b.resize(20); }, "too short to be a cabinet"},
      {"no MSCF", [](Bytes& b) { b[0] = 'X'; }, "no MSCF signature"},
      {"reserved1", [](Bytes& b) { b[5] = 1; }, "reserved1"},
      {"version", [](Bytes& b) { b[25] = 2; }, "version 2.3"},
      {"unknown flags", [](Bytes& b) { put16(b, 30, 0x10); }, "unknown flags"},
      {"truncated", [](Bytes& b) { b.pop_back(); }, "cbCabinet says"},
      {"appended", [](Bytes& b) { b.push_back(0); }, "cbCabinet says"},
      {"coffFiles", [](Bytes& b) { put32(b, 16, 61); }, "coffFiles (0x3D) does not follow"},
      {"cFolders beyond the file", [](Bytes& b) { put16(b, 26, 0xFFFF); }, "CFFOLDER entries"},
      {"cFiles beyond the file", [](Bytes& b) { put16(b, 28, 0xFFFF); }, "CFFILE entry"},
      {"iFolder", [](Bytes& b) { put16(b, 60 + 8, 3); }, "names folder 0x3"},
      {"coffCabStart outside", [](Bytes& b) { put32(b, 36, 0x7FFFFFFF); }, "CFFOLDER 1's data"},
      {"coffCabStart inside the file table", [](Bytes& b) { put32(b, 44, 60); },
       "CFFOLDER 2's data"},
      {"cCFData too many", [](Bytes& b) { put16(b, 52, 0xFFFF); }, "CFFOLDER 3's data"},
      {"name unterminated", [](Bytes& b) { std::fill(b.begin() + 76, b.begin() + 400, 'a'); },
       "not terminated"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    Bytes b = good;
    c.edit(b);
    const std::string err = parse_error(b);
    CHECK_THAT(err, Catch::StartsWith("in.cab: ") && Catch::Contains(c.message));
  }
}

TEST_CASE("a signed cabinet's reserve is checked against the file", "[cab]") {
  const Bytes good = read_all(fixture("cab-signed.cab"));
  REQUIRE(parse_error(good).empty());
  const std::uint32_t sig_offset =
      good[44] | (good[45] << 8) | (good[46] << 16) | (std::uint32_t{good[47]} << 24);
  struct Case {
    const char* what;
    std::function<void(Bytes&)> edit;
    const char* message;
  };
  const Case cases[] = {
      {"size without offset", [](Bytes& b) { put32(b, 44, 0); }, "inconsistent"},
      {"not at the end", [](Bytes& b) { b.push_back(0); }, "does not end where the file ends"},
      {"offset outside", [](Bytes& b) { put32(b, 44, 0xFFFFFF00); },
       "does not end where the file ends"},
      {"not PKCS#7", [&](Bytes& b) { b[sig_offset] = 0x04; }, "not a valid PKCS#7"},
      {"data after the DER",
       [&](Bytes& b) {
         b.insert(b.end(), 8, 0x41);
         put32(b, 48, static_cast<std::uint32_t>(b.size()) - sig_offset);
       },
       "after the PKCS#7 signature"},
      {"other reserve magic", [](Bytes& b) { b[42] = 0x11; }, "reserve areas hold other data"},
      {"cbCFData", [](Bytes& b) { b[39] = 1; }, "cbCFData 1"},
      {"reserve cut", [](Bytes& b) { b.resize(50); }, "ends inside its CFHEADER reserve"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    Bytes b = good;
    c.edit(b);
    CHECK_THAT(parse_error(b), Catch::StartsWith("in.cab: ") && Catch::Contains(c.message));
  }
}

TEST_CASE("multi-cabinet sets and other reserves are refused when opened, untouched", "[cab]") {
  for (auto [name, message] :
       {std::pair{"cab-next.cab", "part of a multi-cabinet set"},
        std::pair{"cab-reserve-other.cab", "cbCFHeader 16, cbCFFolder 4, cbCFData 2"}}) {
    INFO(name);
    const Bytes before = read_all(fixture(name));
    // Detected as a cabinet, so the user hears why it is refused rather than "not supported".
    CHECK(tsign::formats::is_supported(fixture(name)));
    CHECK_THROWS_WITH(tsign::formats::open(fixture(name)),
                      Catch::Contains(name) && Catch::Contains(message));
    CHECK(read_all(fixture(name)) == before);
  }
}

TEST_CASE("a cabinet that would reach 4 GiB with its signature is refused from its layout",
          "[cab]") {
  cab::Layout l;
  l.file_size = 0xFFFFF000;
  l.cb_cabinet = 0xFFFFF000;
  CHECK_THROWS_WITH(cab::check_can_embed(l, 16384, "big.cab"),
                    Catch::StartsWith("big.cab: ") && Catch::Contains("4 GiB"));
  l.file_size = l.cb_cabinet = 1u << 20;
  CHECK_NOTHROW(cab::check_can_embed(l, 16384, "small.cab"));
  // Without a reserve the 24 inserted bytes count as well.
  l.file_size = l.cb_cabinet = 0xFFFFFFFFu - 16384 - 8;
  CHECK_THROWS(cab::check_can_embed(l, 16384, "edge.cab"));
  l.has_reserve = true;
  CHECK_NOTHROW(cab::check_can_embed(l, 16384, "edge.cab"));
}

TEST_CASE("a cabinet with an empty Authenticode reserve is signed in place", "[cab]") {
  // cab-signed.cab with its signature taken off but its reserve kept (offset and size zero).
  const Bytes signed_file = read_all(fixture("cab-signed.cab"));
  auto f = tsign::formats::open(fixture("cab-signed.cab"));
  const Bytes der = *f->existing_signature();
  const std::uint32_t sig_offset = signed_file[44] | (signed_file[45] << 8) |
                                   (signed_file[46] << 16) | (std::uint32_t{signed_file[47]} << 24);
  Bytes bare(signed_file.begin(), signed_file.begin() + sig_offset);
  put32(bare, 44, 0);
  put32(bare, 48, 0);
  cab::MemorySource src(bare, "bare.cab");
  const cab::Layout l = cab::parse(src, "bare.cab");
  CHECK(l.has_reserve);
  CHECK_FALSE(l.has_signature());
  CHECK(l.signed_content_end() == sig_offset);
  // Its digest is the signed cabinet's, and signing it gives back the signed cabinet exactly.
  CHECK(cab::authenticode_digest(src, l, DigestAlg::sha256) == f->digest(DigestAlg::sha256));
  MemoryOutput out;
  CHECK(cab::write_signed(src, l, der, out, "bare.cab") == f->digest(DigestAlg::sha256));
  CHECK(out.bytes == signed_file);
}
