// PE/COFF format: detection, the Authenticode digest and the PE checksum against osslsigncode,
// embedding a signature that osslsigncode then verifies, and every malformed input refused.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#include "common/error.hpp"
#include "common/text.hpp"
#include "formats/format.hpp"
#include "formats/pe.hpp"
#include "reference.hpp"
#include "support/fixtures.hpp"
#include "support/memory_output.hpp"

namespace fs = std::filesystem;
namespace reference = tsign::test::reference;
using tsign::Bytes;
using tsign::ByteView;
using tsign::DigestAlg;
using tsign::test::fixture;
using tsign::test::MemoryOutput;
using tsign::test::quote;
using tsign::test::read_all;
using tsign::test::run_command;
using tsign::test::write_all;
namespace pe = tsign::formats::pe;

namespace {

class FileOutput final : public tsign::formats::SignedOutput {
 public:
  explicit FileOutput(const fs::path& p) : out_(p, std::ios::binary | std::ios::trunc) {}
  void write(ByteView d) override {
    out_.write(reinterpret_cast<const char*>(d.data()), static_cast<std::streamsize>(d.size()));
    REQUIRE(out_.good());
  }
  void close() { out_.close(); }

 private:
  std::ofstream out_;
};

std::uint32_t get32(const Bytes& b, std::size_t off) {
  return b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (std::uint32_t{b[off + 3]} << 24);
}
void put32(Bytes& b, std::size_t off, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b[off + i] = static_cast<std::uint8_t>(v >> (8 * i));
}
void put16(Bytes& b, std::size_t off, std::uint16_t v) {
  b[off] = static_cast<std::uint8_t>(v);
  b[off + 1] = static_cast<std::uint8_t>(v >> 8);
}
std::size_t e_lfanew(const Bytes& b) {
  return get32(b, 0x3C);
}
bool is_pe32_plus(const Bytes& b) {
  return b[e_lfanew(b) + 24] == 0x0B && b[e_lfanew(b) + 25] == 2;
}
std::size_t cert_entry(const Bytes& b) {
  return e_lfanew(b) + (is_pe32_plus(b) ? 168 : 152);
}

using tsign::test::pe_reference_checksum;
std::uint32_t reference_checksum(const Bytes& b, std::size_t checksum_offset) {
  return pe_reference_checksum(b, checksum_offset);
}

std::string digest_hex(const fs::path& p, DigestAlg alg) {
  return tsign::ascii_upper(tsign::to_hex(tsign::formats::open(p)->digest(alg)));
}

}  // namespace

TEST_CASE("every PE fixture is detected and opened", "[pe]") {
  struct Case {
    const char* name;
    bool pe32_plus;
    bool is_signed;
  };
  const Case cases[] = {{"pe64.exe", true, false},           {"pe64.dll", true, false},
                        {"pe32.exe", false, false},          {"pe32.dll", false, false},
                        {"pe64-overlay.exe", true, false},   {"pe64-signed.exe", true, true},
                        {"pe64-signed-leaf.exe", true, true}};
  for (const auto& c : cases) {
    INFO(c.name);
    const auto path = fixture(c.name);
    CHECK(tsign::formats::is_supported(path));
    auto f = tsign::formats::open(path);
    CHECK(f->format_name() == "pe");
    CHECK(f->signed_content().spc_type == "1.3.6.1.4.1.311.2.1.15");  // SpcPeImageData
    CHECK_FALSE(f->signed_content().is_own());
    CHECK(f->size() == fs::file_size(path));
    CHECK(f->existing_signature().has_value() == c.is_signed);

    const Bytes bytes = read_all(path);
    pe::MemorySource src(bytes);
    auto layout = pe::parse(src, c.name);
    CHECK(layout.pe32_plus == c.pe32_plus);
    CHECK(layout.has_signature() == c.is_signed);
  }
}

TEST_CASE("the existing signature is the DER osslsigncode extracts", "[pe]") {
  tsign::test::TempDir tmp("pe-extract");
  for (const char* name : {"pe64-signed.exe", "pe64-signed-leaf.exe"}) {
    INFO(name);
    Bytes der = reference::extract_signature(fixture(name), tmp / "sig.der");
    auto sig = tsign::formats::open(fixture(name))->existing_signature();
    REQUIRE(sig.has_value());
    CHECK(*sig == der);
  }
}

TEST_CASE("the digest equals osslsigncode's for SHA-256/384/512", "[pe]") {
  tsign::test::TempDir tmp("pe-digest");
  const std::pair<DigestAlg, const char*> algs[] = {
      {DigestAlg::sha256, "sha256"}, {DigestAlg::sha384, "sha384"}, {DigestAlg::sha512, "sha512"}};
  for (const char* name : {"pe64.exe", "pe32.dll", "pe64-overlay.exe", "pe64-signed.exe"}) {
    for (auto [alg, alg_name] : algs) {
      INFO(name << " " << alg_name);
      const auto signed_copy = tmp / (std::string(alg_name) + "-" + name);
      reference::sign(fixture(name), signed_copy, alg_name);
      const std::string reference =
          reference::last_hex(reference::verify(signed_copy).output, "Calculated message digest");
      REQUIRE(reference.size() == 2 * tsign::digest_size(alg));
      CHECK(reference::last_hex(reference::verify(signed_copy).output, "Current message digest") ==
            reference);
      // The unsigned original hashes as its signed copy does (padding and table excluded).
      CHECK(digest_hex(fixture(name), alg) == reference);
      CHECK(digest_hex(signed_copy, alg) == reference);
    }
  }
}

TEST_CASE("the digest streams across 1 MiB chunk boundaries", "[pe]") {
  tsign::test::TempDir tmp("pe-big");
  Bytes big = read_all(fixture("pe64.exe"));
  std::mt19937 rng(7);
  // Several chunks, more than the buffers a copy made while digesting takes turns with; odd length.
  const std::size_t overlay = (tsign::formats::kLendDepth + 2) * (1u << 20) + 5;
  for (std::size_t i = 0; i < overlay; ++i) big.push_back(static_cast<std::uint8_t>(rng()));
  write_all(tmp / "big.exe", big);
  reference::sign(tmp / "big.exe", tmp / "big-signed.exe", "sha256");
  const auto reference = reference::last_hex(reference::verify(tmp / "big-signed.exe").output,
                                             "Calculated message digest");
  CHECK(digest_hex(tmp / "big.exe", DigestAlg::sha256) == reference);

  // And the written file is byte for byte what osslsigncode wrote.
  Bytes der = reference::extract_signature(tmp / "big-signed.exe", tmp / "sig.der");
  auto f = tsign::formats::open(tmp / "big.exe");
  f->digest(DigestAlg::sha256);
  MemoryOutput out;
  f->write_signed(der, out);
  CHECK(out.bytes == read_all(tmp / "big-signed.exe"));

  // So is the copy made while digesting (the engine's one read), its chunks lent to the output
  // and left as they were until its next call (MemoryPatchable checks).
  auto g = tsign::formats::open(tmp / "big.exe");
  REQUIRE(g->copies_while_digesting());
  tsign::test::MemoryPatchable copy;
  CHECK(tsign::ascii_upper(tsign::to_hex(g->digest_copying(DigestAlg::sha256, copy))) == reference);
  g->finish_copy(der, copy);
  CHECK(copy.lent == tsign::formats::kLendDepth + 3);  // the image and the overlay, in 1 MiB chunks
  CHECK(copy.bytes == read_all(tmp / "big-signed.exe"));
}

TEST_CASE("write_signed produces a file osslsigncode verifies", "[pe]") {
  tsign::test::TempDir tmp("pe-write");
  const auto root = quote(fixture("root.pem"));
  for (const char* name : {"pe64.exe", "pe64.dll", "pe32.exe", "pe32.dll", "pe64-overlay.exe"}) {
    for (const char* alg : {"sha256", "sha512"}) {
      INFO(name << " " << alg);
      const auto reference = tmp / (std::string("ref-") + alg + "-" + name);
      reference::sign(fixture(name), reference, alg);
      Bytes der = reference::extract_signature(reference, tmp / "sig.der");

      // With and without the checksum cached by a digest pass, onto the unsigned original and
      // onto a copy carrying another (self-signed) signature: always the reference's bytes.
      for (bool digest_first : {true, false}) {
        auto f = tsign::formats::open(fixture(name));
        if (digest_first) f->digest(DigestAlg::sha256);
        const auto out_path = tmp / (std::string("ours-") + alg + "-" + name);
        {
          FileOutput out(out_path);
          f->write_signed(der, out);
        }
        auto r = run_command("osslsigncode verify -CAfile " + root + " -in " + quote(out_path));
        INFO(r.output);
        CHECK(r.exit_code == 0);
        CHECK(r.output.find("Signature verification: ok") != std::string::npos);
        CHECK(r.output.find("MISMATCH") == std::string::npos);
        CHECK(read_all(out_path) == read_all(reference));
        const Bytes written = read_all(out_path);
        CHECK(written.size() % 8 == 0);
        CHECK(get32(written, e_lfanew(written) + 88) ==
              std::stoul(reference::last_hex(r.output, "PE checksum"), nullptr, 16));
      }
    }
  }
}

TEST_CASE("write_signed replaces an existing signature", "[pe]") {
  tsign::test::TempDir tmp("pe-resign");
  // pe64-signed-leaf.exe's signature covers pe64.exe's digest, which pe64-signed.exe shares.
  Bytes der = reference::extract_signature(fixture("pe64-signed-leaf.exe"), tmp / "sig.der");
  auto f = tsign::formats::open(fixture("pe64-signed.exe"));
  MemoryOutput out;
  f->write_signed(der, out);
  CHECK(out.bytes == read_all(fixture("pe64-signed-leaf.exe")));
  write_all(tmp / "out.exe", out.bytes);
  auto r = run_command("osslsigncode verify -CAfile " + quote(fixture("root.pem")) + " -in " +
                       quote(tmp / "out.exe"));
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("Number of verified signatures: 1") != std::string::npos);
}

TEST_CASE("write_signed notices a file changed since its digest", "[pe]") {
  tsign::test::TempDir tmp("pe-changed");
  fs::copy_file(fixture("pe64.exe"), tmp / "a.exe");
  auto f = tsign::formats::open(tmp / "a.exe");
  f->digest(DigestAlg::sha256);
  Bytes b = read_all(tmp / "a.exe");
  b[b.size() - 100] ^= 0x5A;  // same size, different content
  write_all(tmp / "a.exe", b);
  MemoryOutput out;
  Bytes der = read_all(fixture("pe64-signed.exe"));  // any bytes: refused before they matter
  CHECK_THROWS_AS(f->write_signed(ByteView(der).first(100), out), tsign::FileError);
}

TEST_CASE("the PE checksum matches osslsigncode and a reference loop", "[pe]") {
  for (const char* name : {"pe64.exe", "pe64.dll", "pe32.exe", "pe32.dll", "pe64-signed.exe",
                           "pe64-signed-leaf.exe"}) {
    INFO(name);
    const Bytes b = read_all(fixture(name));
    const std::uint32_t ours = pe::pe_checksum(b, e_lfanew(b) + 88);
    CHECK(ours ==
          std::stoul(reference::last_hex(reference::verify(fixture(name)).output, "PE checksum"),
                     nullptr, 16));
    CHECK(ours == reference_checksum(b, e_lfanew(b) + 88));
  }
  // Random buffers of odd and even lengths; the sum must not depend on how it is split.
  std::mt19937 rng(42);
  for (std::size_t len : {0u, 1u, 2u, 3u, 97u, 4096u, 65537u}) {
    INFO(len);
    Bytes b(len);
    for (auto& x : b) x = static_cast<std::uint8_t>(rng());
    const std::size_t cks = len > 10 ? 6 : 0;
    CHECK(pe::pe_checksum(b, cks) == reference_checksum(b, cks));
    pe::ChecksumSum split;
    const std::size_t cut = len / 3 | 1;  // an odd cut: pieces start at odd offsets
    if (len > 10) {
      split.add(cut, ByteView(b).subspan(cut));
      split.add(0, ByteView(b).first(cks));
      split.add(cks + 4, ByteView(b).subspan(cks + 4, cut - cks - 4));
      CHECK(split.finish(len) == reference_checksum(b, cks));
    }
  }
  // All-ones words exercise the end-around carry.
  Bytes ones(64, 0xFF);
  CHECK(pe::pe_checksum(ones, 1000) == reference_checksum(ones, 1000));
}

namespace {

// Writes `bytes` to `dir/name`, checks that opening it fails with FileError naming the file and
// `reason`, and that the file is left unchanged.
void expect_refused(const tsign::test::TempDir& dir, const std::string& name, const Bytes& bytes,
                    const std::string& reason) {
  const auto path = dir / name;
  write_all(path, bytes);
  INFO(name << ": expecting \"" << reason << "\"");
  std::string message;
  try {
    pe::open(path);
  } catch (const tsign::FileError& e) {
    message = e.what();
  }
  CHECK_THAT(message, Catch::Contains(path.string()) && Catch::Contains(reason));
  // The registry refuses it too (as unsupported or malformed), never crashes or accepts it.
  CHECK_THROWS_AS(tsign::formats::open(path), tsign::FileError);
  CHECK(read_all(path) == bytes);
}

}  // namespace

TEST_CASE("malformed PE files are refused with the file and the reason", "[pe]") {
  tsign::test::TempDir tmp("pe-bad");
  const Bytes plain = read_all(fixture("pe64.exe"));
  const Bytes plain32 = read_all(fixture("pe32.dll"));
  const Bytes signed_ = read_all(fixture("pe64-signed.exe"));
  const std::size_t E = e_lfanew(plain);
  const std::size_t entry = cert_entry(signed_);
  const std::uint32_t pos = get32(signed_, entry);
  const std::uint32_t len = get32(signed_, entry + 4);
  REQUIRE(pos + len == signed_.size());

  expect_refused(tmp, "text.exe", Bytes{'h', 'e', 'l', 'l', 'o'}, "not a PE file: no MZ header");
  expect_refused(tmp, "empty.exe", Bytes{}, "no MZ header");
  expect_refused(tmp, "short.exe", Bytes(plain.begin(), plain.begin() + 40), "truncated file");
  {
    Bytes b = plain;
    put32(b, 0x3C, static_cast<std::uint32_t>(b.size() + 100));
    expect_refused(tmp, "lfanew.exe", b, "e_lfanew");
    put32(b, 0x3C, 0xFFFFFFFF);
    expect_refused(tmp, "lfanew2.exe", b, "points outside the file");
  }
  {
    Bytes b = plain;
    b[E + 1] = 'X';
    expect_refused(tmp, "nosig.exe", b, "signature at e_lfanew");
  }
  {
    Bytes b = plain;
    put16(b, E + 24, 0x107);
    expect_refused(tmp, "magic.exe", b, "unknown optional header magic 0x107");
  }
  expect_refused(tmp, "cut.exe", Bytes(plain.begin(), plain.begin() + E + 100),
                 "truncated file: the optional header");
  {
    Bytes b = plain;
    put32(b, E + 132, 4);
    expect_refused(tmp, "nrva.exe", b, "NumberOfRvaAndSizes is 4");
    Bytes c = plain32;
    put32(c, e_lfanew(c) + 116, 0);
    expect_refused(tmp, "nrva32.dll", c, "NumberOfRvaAndSizes is 0");
  }
  {
    Bytes b = plain;
    put16(b, E + 6, 0xFFFF);
    expect_refused(tmp, "sections.exe", b, "section table (65535 sections) ends outside the file");
  }
  {
    Bytes b = signed_;
    put32(b, entry, static_cast<std::uint32_t>(b.size() + 8));
    expect_refused(tmp, "start.exe", b, "certificate table starts outside the file");
  }
  {
    Bytes b = signed_;
    put32(b, entry + 4, len + 8);
    expect_refused(tmp, "end.exe", b, "certificate table ends outside the file");
  }
  {
    Bytes b = signed_;
    b.insert(b.end(), 8, 0);
    expect_refused(tmp, "notend.exe", b, "certificate table is not at the end of the file");
  }
  {
    Bytes b = signed_;
    put32(b, entry, 0);
    expect_refused(tmp, "inconsistent.exe", b, "certificate table entry is inconsistent");
  }
  {
    // CVE-2013-3900: data appended inside the table, lengths adjusted to cover it.
    Bytes b = signed_;
    const Bytes junk = {'E', 'V', 'I', 'L', 'D', 'A', 'T', 'A', 1, 2, 3, 4, 5, 6, 7, 8};
    b.insert(b.end(), junk.begin(), junk.end());
    put32(b, entry + 4, len + 16);
    put32(b, pos, get32(b, pos) + 16);
    expect_refused(tmp, "cve.exe", b, "after the PKCS#7 signature");
    // Zeros beyond the 8-byte padding are smuggled data too.
    Bytes z = signed_;
    z.insert(z.end(), 8, 0);
    put32(z, entry + 4, len + 8);
    put32(z, pos, get32(z, pos) + 8);
    expect_refused(tmp, "cve-zeros.exe", z, "after the PKCS#7 signature");
  }
  {
    Bytes b = signed_;
    put16(b, pos + 4, 0x0100);
    expect_refused(tmp, "revision.exe", b, "WIN_CERTIFICATE revision is 0x100");
    Bytes c = signed_;
    put16(c, pos + 6, 0x0001);
    expect_refused(tmp, "type.exe", c, "WIN_CERTIFICATE type is 0x1");
  }
  {
    Bytes b = signed_;
    b[pos + 8] = 0x04;  // the PKCS#7 SEQUENCE tag becomes an OCTET STRING
    expect_refused(tmp, "der.exe", b, "not a valid PKCS#7");
  }
}

TEST_CASE("files of 4 GiB or more are refused without being read", "[pe]") {
  tsign::test::TempDir tmp("pe-4g");
  const auto path = tmp / "huge.exe";
  fs::copy_file(fixture("pe64.exe"), path);
  const std::uint64_t four_gib = std::uint64_t{1} << 32;
  fs::resize_file(path, four_gib);  // sparse: costs no disk
  const Bytes head = [&] {
    std::ifstream in(path, std::ios::binary);
    Bytes h(4096);
    in.read(reinterpret_cast<char*>(h.data()), static_cast<std::streamsize>(h.size()));
    return h;
  }();
  std::string message;
  try {
    tsign::formats::open(path);
  } catch (const tsign::FileError& e) {
    message = e.what();
  }
  CHECK_THAT(message, Catch::Contains(path.string()) && Catch::Contains("4 GiB"));
  CHECK(fs::file_size(path) == four_gib);
  std::ifstream in(path, std::ios::binary);
  Bytes again(4096);
  in.read(reinterpret_cast<char*>(again.data()), static_cast<std::streamsize>(again.size()));
  CHECK(again == head);
}

TEST_CASE("write_signed returns the digest of the bytes it wrote, which a swap of words changes",
          "[pe][write]") {
  tsign::test::TempDir tmp("pe-written");
  // Any signature will do, and reading it with the parser keeps this test free of osslsigncode
  // (it runs under wine too).
  auto signed_file = tsign::formats::open(fixture("pe64-signed-leaf.exe"));
  REQUIRE(signed_file->existing_signature());
  const Bytes der = *signed_file->existing_signature();
  for (const char* name : {"pe64.exe", "pe32.dll", "pe64-overlay.exe", "pe64-signed.exe"}) {
    for (auto alg : {DigestAlg::sha256, DigestAlg::sha512}) {
      INFO(name);
      fs::copy_file(fixture(name), tmp / "a.exe", fs::copy_options::overwrite_existing);
      auto f = tsign::formats::open(tmp / "a.exe");
      const Bytes digest = f->digest(alg);
      MemoryOutput out;
      CHECK(f->write_signed(der, out, alg) == digest);
      // The digest of the written image as a verifier computes it.
      pe::MemorySource written(out.bytes, "written");
      CHECK(pe::authenticode_digest(written, pe::parse(written, "written"), alg) == digest);

      // Two different words swapped after the digest: the PE checksum's sum cannot see it.
      Bytes b = read_all(tmp / "a.exe");
      std::size_t at = 0x600;
      while (get32(b, at) >> 16 == (get32(b, at) & 0xFFFF)) at += 2;
      std::swap(b[at], b[at + 2]);
      std::swap(b[at + 1], b[at + 3]);
      write_all(tmp / "a.exe", b);
      MemoryOutput again;
      CHECK(f->write_signed(der, again, alg) != digest);
    }
  }
}

TEST_CASE("a PE that would reach 4 GiB with its signature is refused from its layout alone",
          "[pe][write]") {
  auto f = tsign::formats::open(fixture("pe64.exe"));
  const Bytes image = read_all(fixture("pe64.exe"));  // MemorySource only views it
  pe::MemorySource src(image, "pe64.exe");
  pe::Layout l = pe::parse(src, "huge.exe");
  const std::uint64_t four_gib = std::uint64_t{1} << 32;
  const std::uint64_t budget = 1 << 20;
  // The largest unsigned image that fits: with the 8-byte WIN_CERTIFICATE header and a signature
  // of the whole budget it ends 8 bytes short of 4 GiB; 8 bytes more reach it.
  l.file_size = four_gib - 8 - budget - 8;
  CHECK_NOTHROW(pe::check_can_embed(l, budget, "huge.exe"));
  l.file_size += 8;
  std::string message;
  try {
    pe::check_can_embed(l, budget, "huge.exe");
  } catch (const tsign::FileError& e) {
    message = e.what();
  }
  CHECK_THAT(message, Catch::Contains("huge.exe") && Catch::Contains("4 GiB"));
  // A small file is never refused, whatever it carries now.
  CHECK_NOTHROW(f->check_can_embed(budget));
}

namespace {

std::string hex_of(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llX", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

TEST_CASE("truncated images are refused, naming the section and both offsets", "[pe]") {
  tsign::test::TempDir tmp("pe-truncated");
  for (const char* name : {"pe64.exe", "pe32.dll"}) {
    INFO(name);
    const Bytes plain = read_all(fixture(name));
    const std::size_t E = e_lfanew(plain);
    const std::size_t nsec = plain[E + 6] | (plain[E + 7] << 8);
    const std::size_t table = E + 24 + (plain[E + 20] | (plain[E + 21] << 8));
    // The section whose raw data ends last; the file is cut in the middle of it.
    std::size_t last = 0, last_end = 0;
    for (std::size_t i = 0; i < nsec; ++i) {
      const std::size_t sh = table + 40 * i;
      const std::size_t end = get32(plain, sh + 20) + get32(plain, sh + 16);
      if (get32(plain, sh + 16) != 0 && end > last_end) {
        last = sh;
        last_end = end;
      }
    }
    REQUIRE(last_end == plain.size());  // MinGW writes no overlay
    const std::string section(reinterpret_cast<const char*>(&plain[last]),
                              strnlen(reinterpret_cast<const char*>(&plain[last]), 8));
    const std::size_t start = get32(plain, last + 20);
    const std::size_t cut = start + get32(plain, last + 16) / 2;
    const Bytes b(plain.begin(), plain.begin() + static_cast<std::ptrdiff_t>(cut));
    const std::string file = std::string("cut-") + name;
    expect_refused(tmp, file, b, "section \"" + section + "\"");
    expect_refused(tmp, file, b, hex_of(start) + ".." + hex_of(last_end));
    expect_refused(tmp, file, b, "the file ends at " + hex_of(cut));

    // The headers themselves claim more than the file holds.
    Bytes h = plain;
    put32(h, E + 84, static_cast<std::uint32_t>(h.size() + 0x200));
    expect_refused(tmp, std::string("headers-") + name, h,
                   "headers end at " + hex_of(h.size() + 0x200) +
                       " (SizeOfHeaders) but the file "
                       "ends at " +
                       hex_of(h.size()));
  }
}

TEST_CASE("a certificate table with two WIN_CERTIFICATE entries: the first is the primary",
          "[pe]") {
  tsign::test::TempDir tmp("pe-two-entries");
  const Bytes two = tsign::test::two_entry_pe();
  write_all(tmp / "two.exe", two);
  auto f = tsign::formats::open(tmp / "two.exe");
  const auto primary = tsign::formats::open(fixture("pe64-signed-leaf.exe"))->existing_signature();
  REQUIRE(f->existing_signature());
  CHECK(*f->existing_signature() == *primary);
  // The table is outside the digest: the image is pe64.exe's.
  CHECK(f->digest(DigestAlg::sha256) ==
        tsign::formats::open(fixture("pe64.exe"))->digest(DigestAlg::sha256));
  // The second entry is pe64-signed.exe's signature, reported as the file's other signature.
  const auto other = tsign::formats::open(fixture("pe64-signed.exe"))->existing_signature();
  CHECK(f->other_signatures() == std::vector<Bytes>{*other});
  // Replacing leaves one entry: the image is then exactly pe64-signed-leaf.exe.
  MemoryOutput out;
  f->write_signed(*primary, out);
  CHECK(out.bytes == read_all(fixture("pe64-signed-leaf.exe")));
  // Appending keeps the other entry as it was: the same primary gives back the same image.
  MemoryOutput kept;
  f->write_signed_keeping_others(*primary, kept);
  CHECK(kept.bytes == two);
  // Formats without further signatures (pe64.exe here) write the same either way.
  auto g = tsign::formats::open(fixture("pe64.exe"));
  CHECK(g->other_signatures().empty());
  MemoryOutput a, b;
  g->write_signed(*primary, a);
  g->write_signed_keeping_others(*primary, b);
  CHECK(a.bytes == b.bytes);
}

TEST_CASE("each WIN_CERTIFICATE entry is checked on its own", "[pe]") {
  tsign::test::TempDir tmp("pe-entries-bad");
  const Bytes two = tsign::test::two_entry_pe();
  const auto entries = tsign::test::pe_cert_entries(two);
  REQUIRE(entries.size() == 2);
  const std::string second = "WIN_CERTIFICATE number 2 (at " + hex_of(entries[0].size()) + " ";
  {
    // Data smuggled inside the second entry, its length adjusted to cover it (CVE-2013-3900).
    auto e2 = entries[1];
    const Bytes junk = {'E', 'V', 'I', 'L', 'D', 'A', 'T', 'A', 1, 2, 3, 4, 5, 6, 7, 8};
    e2.insert(e2.end(), junk.begin(), junk.end());
    put32(e2, 0, get32(e2, 0) + 16);
    const Bytes b = tsign::test::pe_with_cert_entries(two, {entries[0], e2});
    expect_refused(tmp, "smuggled-in-2.exe", b, second + "in the certificate table) holds ");
    expect_refused(tmp, "smuggled-in-2.exe", b,
                   "bytes after the PKCS#7 signature beyond its zero padding");
  }
  {
    // A third "entry" that is not one.
    const Bytes junk = {'E', 'V', 'I', 'L', 'D', 'A', 'T', 'A', 1, 2, 3, 4, 5, 6, 7, 8};
    expect_refused(tmp, "junk-entry.exe",
                   tsign::test::pe_with_cert_entries(two, {entries[0], entries[1], junk}),
                   "WIN_CERTIFICATE number 3");
  }
  {
    auto e2 = entries[1];
    put16(e2, 6, 0x0001);
    expect_refused(tmp, "type-2.exe", tsign::test::pe_with_cert_entries(two, {entries[0], e2}),
                   second + "in the certificate table) type is 0x1");
    auto e3 = entries[1];
    e3[8] = 0x04;  // the PKCS#7 SEQUENCE tag becomes an OCTET STRING
    expect_refused(tmp, "der-2.exe", tsign::test::pe_with_cert_entries(two, {entries[0], e3}),
                   second + "in the certificate table) is not a valid PKCS#7 SignedData");
  }
  {
    // Four bytes after the last entry: too few for a WIN_CERTIFICATE header.
    Bytes b = tsign::test::pe_with_cert_entries(two, {entries[0], entries[1], Bytes(4, 0)});
    expect_refused(tmp, "tail.exe", b,
                   "the certificate table ends with 4 bytes that are not a WIN_CERTIFICATE");
  }
}
