// The compound-file parser, digest and signed rewrite of formats/msi, on files built in memory
// (tests/support/cfb.hpp) and on msitools-built fixtures signed by osslsigncode.
#include "formats/msi.hpp"

#include <catch2/catch.hpp>

#include "common/error.hpp"
#include "support/cfb.hpp"
#include "support/fixtures.hpp"
#include "support/memory_output.hpp"

namespace msi = tsign::formats::msi;
using tsign::Bytes;
using tsign::ByteView;
using tsign::DigestAlg;
using tsign::test::CfbStream;
using tsign::test::make_cfb;

namespace {

Bytes pattern(std::size_t n, std::uint8_t seed) {
  Bytes b(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& c : b) {
    x = x * 1103515245u + 12345u;
    c = static_cast<std::uint8_t>(x >> 16);
  }
  return b;
}

struct Collect final : tsign::formats::SignedOutput {
  Bytes data;
  void write(ByteView d) override { data.insert(data.end(), d.begin(), d.end()); }
};

std::vector<CfbStream> sample() {
  return {{"Small", pattern(100, 1)},
          {"Big", pattern(10000, 2)},
          {"\x05SummaryInformation", pattern(300, 3)},
          {"Exactly4096", pattern(4096, 4)}};
}

std::string refusal(const Bytes& b) {
  msi::MemorySource src(b, "hostile.msi");
  try {
    auto l = msi::parse(src, "hostile.msi");
    msi::digest(src, l, DigestAlg::sha256, "hostile.msi");
  } catch (const tsign::FileError& e) {
    return e.what();
  }
  return "accepted";
}

bool has(const std::string& s, const std::string& what) {
  return s.find(what) != std::string::npos;
}

// Signs `in` with `sig` and checks the contract: the digest of the written file equals the
// original's and write_signed's answer, and the signature reads back.
Bytes sign_and_check(const Bytes& in, const Bytes& sig, DigestAlg alg) {
  msi::MemorySource src(in, "in.msi");
  auto l = msi::parse(src, "in.msi");
  const Bytes before = msi::digest(src, l, alg, "in.msi");
  Collect out;
  const Bytes returned = msi::write_signed(src, l, sig, out, "in.msi", alg);
  CHECK(returned == before);
  msi::MemorySource src2(out.data, "out.msi");
  auto l2 = msi::parse(src2, "out.msi");
  CHECK(msi::digest(src2, l2, alg, "out.msi") == before);
  REQUIRE(msi::signature(src2, l2, "out.msi"));
  CHECK(*msi::signature(src2, l2, "out.msi") == sig);
  CHECK(out.data.size() % l2.sector_size == 0);
  // The signing in one read (the engine's path) writes the same bytes.
  msi::MemorySource src3(in, "in.msi");
  tsign::test::MemoryPatchable copy;
  CHECK(msi::digest_copying(src3, l, alg, copy, "in.msi") == before);
  msi::finish_copy(l, sig, copy, "in.msi", alg);
  CHECK((copy.bytes == out.data));  // a bool: Catch would print megabytes
  return out.data;
}

}  // namespace

TEST_CASE("msi: content detection by the compound-file magic", "[msi]") {
  auto c = make_cfb(3, sample());
  msi::MemorySource src(c.bytes);
  CHECK(msi::detect(src));
  Bytes pe(1024, 0);
  pe[0] = 'M';
  pe[1] = 'Z';
  msi::MemorySource src2(pe);
  CHECK_FALSE(msi::detect(src2));
}

TEST_CASE("msi: SpcSipInfo carries the MSI SIP GUID in osslsigncode's byte order", "[msi]") {
  auto sc = msi::signed_content();
  CHECK(sc.spc_type == "1.3.6.1.4.1.311.2.1.30");
  const Bytes guid{0xF1, 0x10, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x00,
                   0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46};
  CHECK(std::search(sc.spc_value.begin(), sc.spc_value.end(), guid.begin(), guid.end()) !=
        sc.spc_value.end());
}

TEST_CASE("msi: the digest is over the streams in raw-name order, then the root CLSID", "[msi]") {
  auto c = make_cfb(3, sample());
  msi::MemorySource src(c.bytes);
  auto l = msi::parse(src, "t.msi");
  // Raw UTF-16LE memcmp order: "\x05Summ..." < "Big" < "Exactly4096" < "Small".
  tsign::Hasher h(DigestAlg::sha256);
  for (int i : {2, 1, 3, 0}) h.update(sample()[static_cast<std::size_t>(i)].data);
  h.update(Bytes(16, 0));
  CHECK(msi::digest(src, l, DigestAlg::sha256, "t.msi") == h.finish());
  CHECK_FALSE(l.signature);
}

TEST_CASE(
    "msi: signing keeps the digest, for 512- and 4096-byte sectors, small and large "
    "signatures, replaced again and again",
    "[msi]") {
  for (int major : {3, 4}) {
    for (std::size_t sig_size : {std::size_t{1500}, std::size_t{9000}}) {
      for (DigestAlg alg : {DigestAlg::sha256, DigestAlg::sha384, DigestAlg::sha512}) {
        INFO("version " << major << ", signature " << sig_size);
        auto c = make_cfb(major, sample());
        Bytes once = sign_and_check(c.bytes, pattern(sig_size, 7), alg);
        Bytes twice = sign_and_check(once, pattern(sig_size + 3000, 8), alg);
        Bytes thrice = sign_and_check(twice, pattern(700, 9), alg);
        (void)thrice;
      }
    }
  }
}

TEST_CASE("msi: a full directory and a growing FAT and DIFAT", "[msi]") {
  // 3 streams + root fill one 512-byte directory sector: the signature needs a new one.
  auto c = make_cfb(3, {{"A", pattern(10, 1)}, {"B", pattern(5000, 2)}, {"C", pattern(20, 3)}});
  sign_and_check(c.bytes, pattern(2000, 4), DigestAlg::sha256);
  // A FAT of more than 109 sectors (7 MiB of 512-byte sectors) has a DIFAT chain.
  auto big = make_cfb(3, {{"Data", pattern(8u << 20, 5)}, {"S", pattern(30, 6)}});
  REQUIRE(big.get32(0x48) > 0);
  sign_and_check(big.bytes, pattern(5000, 7), DigestAlg::sha256);
}

TEST_CASE("msi: signed in one read whatever order the streams are stored in", "[msi]") {
  // "A" is digested before "Z". Stored in that order the file is read once. Stored the other
  // way, either "Z" is read again, behind the chunks the copy keeps (a 5000-byte "Z" before a
  // 3 MiB "A", which starts within the copy's next chunk), or "A" is read ahead of the copy and
  // checked as the copy reaches it (a 2.5 MiB "Z" before "A", with or without a small stream).
  const std::vector<std::vector<CfbStream>> layouts = {
      {{"A", pattern(3u << 20, 1)}, {"Z", pattern(5000, 2)}},
      {{"Z", pattern(5000, 2)}, {"A", pattern(3u << 20, 1)}},
      {{"Z", pattern(5u << 19, 3)}, {"A", pattern(100000, 4)}},
      {{"Z", pattern(5u << 19, 3)}, {"Small", pattern(100, 5)}, {"A", pattern(100000, 4)}}};
  for (const auto& streams : layouts) {
    for (int major : {3, 4}) {
      INFO(streams.size() << " streams, the first of " << streams[0].data.size()
                          << " bytes, version " << major);
      sign_and_check(make_cfb(major, streams).bytes, pattern(6000, 9), DigestAlg::sha256);
    }
  }
}

TEST_CASE("msi: with MsiDigitalSignatureEx the pre-hash comes first and is rewritten", "[msi]") {
  auto streams = sample();
  streams.push_back({"\x05MsiDigitalSignatureEx", Bytes(32, 0)});
  auto c = make_cfb(3, streams);
  msi::MemorySource src(c.bytes);
  auto l = msi::parse(src, "t.msi");
  REQUIRE(l.signature_ex);
  Bytes plain = make_cfb(3, sample()).bytes;
  msi::MemorySource psrc(plain);
  auto pl = msi::parse(psrc, "p.msi");
  CHECK(msi::digest(src, l, DigestAlg::sha256, "t.msi") !=
        msi::digest(psrc, pl, DigestAlg::sha256, "p.msi"));
  Bytes out = sign_and_check(c.bytes, pattern(3000, 1), DigestAlg::sha384);
  msi::MemorySource osrc(out);
  auto ol = msi::parse(osrc, "o.msi");
  REQUIRE(ol.signature_ex);
  CHECK(ol.entries[*ol.signature_ex].size == 48);  // the SHA-384 pre-hash
}

namespace {

// A file edited while it is being signed: the second read that covers `at` sees `at` flipped.
class EditedSource final : public tsign::formats::pe::Source {
 public:
  EditedSource(Bytes b, std::size_t at) : b_(std::move(b)), at_(at) {}
  std::uint64_t size() const override { return b_.size(); }
  void read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    if (offset <= at_ && at_ < offset + out.size() && ++seen_ == 2) b_[at_] ^= 1;
    msi::MemorySource(b_, "t.msi").read_at(offset, out);
  }

 private:
  Bytes b_;
  std::size_t at_;
  int seen_ = 0;
};

// Counts the bytes read through it.
class CountingSource final : public tsign::formats::pe::Source {
 public:
  explicit CountingSource(const Bytes& b) : b_(b) {}
  std::uint64_t size() const override { return b_.size(); }
  void read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    read_ += out.size();
    msi::MemorySource(b_, "t.msi").read_at(offset, out);
  }
  std::uint64_t bytes_read() const { return read_; }

 private:
  const Bytes& b_;
  std::uint64_t read_ = 0;
};

}  // namespace

TEST_CASE("msi: a file changed while it is being signed is refused or shows in the digest",
          "[msi]") {
  auto c = make_cfb(3, sample());
  msi::MemorySource src(c.bytes);
  auto l = msi::parse(src, "t.msi");
  const Bytes before = msi::digest(src, l, DigestAlg::sha256, "t.msi");
  // Changed after the digest was taken: write_signed's answer is the digest of what it wrote,
  // which the caller compares with the one it signed.
  Bytes edited = c.bytes;
  edited[c.offset(c.stream_start[1]) + 5] ^= 1;  // a byte of "Big"
  msi::MemorySource esrc(edited, "t.msi");
  Collect out;
  CHECK(msi::write_signed(esrc, l, pattern(100, 1), out, "t.msi") != before);
  // Changed between write_signed's own digest pass and its copy.
  for (std::size_t at : {c.offset(c.stream_start[1]) + 5,       // a regular sector
                         c.offset(c.first_ministream) + 10}) {  // a mini-stream sector
    EditedSource racy(c.bytes, at);
    Collect o;
    CHECK_THROWS_WITH(msi::write_signed(racy, l, pattern(100, 1), o, "t.msi"),
                      Catch::Contains("t.msi: the file changed while it was being signed"));
  }
  // In one read: what is digested is what was copied. In a small file every stream is read
  // from the chunk just copied, so an edit made after the copy read it is in neither.
  for (std::size_t at : {c.offset(c.stream_start[1]) + 5, c.offset(c.first_ministream) + 10}) {
    EditedSource racy(c.bytes, at);
    tsign::test::MemoryPatchable copy;
    CHECK(msi::digest_copying(racy, l, DigestAlg::sha256, copy, "t.msi") == before);
    CHECK((copy.bytes == c.bytes));
  }
  {
    // A stream stored well before the one digested ahead of it ("Z" is stored first, "A" of
    // 3 MiB after it, and "A" is digested first) is read from the file again: an edit made
    // after the copy read it is refused.
    auto z = make_cfb(3, {{"Z", pattern(5000, 1)}, {"A", pattern(3u << 20, 2)}});
    REQUIRE(z.stream_start[0] < z.stream_start[1]);
    msi::MemorySource zsrc(z.bytes);
    auto zl = msi::parse(zsrc, "t.msi");
    EditedSource racy(z.bytes, z.offset(z.stream_start[0]) + 5);
    tsign::test::MemoryPatchable copy;
    CHECK_THROWS_WITH(msi::digest_copying(racy, zl, DigestAlg::sha256, copy, "t.msi"),
                      Catch::Contains("t.msi: the file changed while it was being signed"));
  }
  {
    // A stream digested before the copy reaches it ("A" is stored after 3 MiB of "Z", and is
    // digested first) is read from the file ahead of the copy, which stays where it is: an edit
    // made before the copy reads it is refused; untouched, the copy is the file.
    auto z = make_cfb(3, {{"Z", pattern(3u << 20, 1)}, {"A", pattern(5000, 2)}});
    REQUIRE(z.offset(z.stream_start[1]) > (2u << 20));
    msi::MemorySource zsrc(z.bytes);
    auto zl = msi::parse(zsrc, "t.msi");
    const Bytes zbefore = msi::digest(zsrc, zl, DigestAlg::sha256, "t.msi");
    EditedSource racy(z.bytes, z.offset(z.stream_start[1]) + 5);
    tsign::test::MemoryPatchable copy;
    CHECK_THROWS_WITH(msi::digest_copying(racy, zl, DigestAlg::sha256, copy, "t.msi"),
                      Catch::Contains("t.msi: the file changed while it was being signed"));
    CountingSource counted(z.bytes);
    tsign::test::MemoryPatchable whole;
    CHECK(msi::digest_copying(counted, zl, DigestAlg::sha256, whole, "t.msi") == zbefore);
    CHECK((whole.bytes == z.bytes));
    // One read of the file, and the 5000 bytes of "A" read ahead: not a second read of "Z".
    CHECK(counted.bytes_read() < z.bytes.size() + (64u << 10));
  }
  // The structure changed since the file was opened.
  edited = c.bytes;
  edited[c.dir_entry(1) + 0x78] ^= 1;  // a stream's size
  msi::MemorySource dsrc(edited, "t.msi");
  CHECK_THROWS_WITH(msi::write_signed(dsrc, l, pattern(100, 1), out, "t.msi"),
                    Catch::Contains("t.msi: the file changed while it was being signed"));
}

TEST_CASE("msi: hostile structures are refused by name", "[msi][bad-input]") {
  auto c = make_cfb(3, sample());
  const std::uint32_t big = c.stream_start[1];  // "Big": 20 sectors from here

  auto b = c;
  b.put32(b.fat_entry(big + 3), big);  // a FAT loop
  auto m = refusal(b.bytes);
  CHECK(has(m, "hostile.msi: directory entry 2 (\"Big\")"));
  CHECK(has(m, "a second time"));

  b = c;
  b.put32(b.fat_entry(big + 3), 100000);  // a chain past the end
  CHECK(has(refusal(b.bytes), "past the end of the file"));

  b = c;
  b.put32(b.dir_entry(2) + 0x48, 0);  // a directory cycle back to the root
  CHECK(has(refusal(b.bytes), "twice (a cycle in the directory)"));

  b = c;
  b.put32(0x2C, 100000);  // more FAT sectors than the file holds
  CHECK(has(refusal(b.bytes), "the header counts 100000 FAT sectors, more than the file holds"));

  b = c;
  b.put32(b.dir_entry(2) + 0x78, 10500);  // a stream larger than its chain
  CHECK(has(refusal(b.bytes), "bytes but its chain holds 20 sectors"));

  b = c;
  b.put32(b.dir_entry(1) + 0x74, 5000);  // a mini sector beyond the mini stream
  CHECK(has(refusal(b.bytes), "beyond the mini stream"));

  b = c;
  b.bytes.resize(b.offset(big + 19) + 100);  // truncated inside "Big"
  m = refusal(b.bytes);
  INFO(m);
  CHECK(has(m, "past the end of the file"));

  b = c;
  b.put32(b.dir_entry(0) + 0x4C, 77);  // a child beyond the directory
  CHECK(has(refusal(b.bytes), "beyond its"));

  CHECK(has(refusal(Bytes(100, 0)), "shorter than its 512-byte header"));
}

TEST_CASE("msi: osslsigncode's signatures are found and their digest matches", "[msi]") {
  for (const char* f : {"msi-signed.msi", "msi-dse.msi"}) {
    INFO(f);
    Bytes b = tsign::test::read_all(tsign::test::fixture(f));
    msi::MemorySource src(b, f);
    auto l = msi::parse(src, f);
    REQUIRE(msi::signature(src, l, f));
    CHECK(l.signature_ex.has_value() == (std::string(f) == "msi-dse.msi"));
    sign_and_check(b, pattern(6000, 3), DigestAlg::sha256);
  }
}

TEST_CASE("msi: the registry picks MSI by content, whatever the name", "[msi][registry]") {
  tsign::test::TempDir tmp("msi");
  tsign::test::write_all(tmp / "package.bin",
                         tsign::test::read_all(tsign::test::fixture("msi.msi")));
  auto f = tsign::formats::open(tmp / "package.bin");
  CHECK(f->format_name() == "msi");
  CHECK_FALSE(f->existing_signature());
  CHECK(f->signed_content().spc_type == "1.3.6.1.4.1.311.2.1.30");
  auto s = tsign::formats::open(tsign::test::fixture("msi-signed.msi"));
  CHECK(s->existing_signature());
}

TEST_CASE("msi: a storage's streams are hashed in place, then its CLSID", "[msi]") {
  std::vector<CfbStream> streams{{"Small", pattern(100, 1)},
                                 {"Stg/Large", pattern(5000, 2)},
                                 {"Big", pattern(10000, 3)},
                                 {"Stg/Inner", pattern(50, 4)}};
  auto c = make_cfb(3, streams);
  msi::MemorySource src(c.bytes);
  auto l = msi::parse(src, "t.msi");
  // Root: "Big" < "Small" < "Stg"; in "Stg": "Inner" < "Large".
  tsign::Hasher h(DigestAlg::sha256);
  for (int i : {2, 0, 3, 1}) h.update(streams[static_cast<std::size_t>(i)].data);
  h.update(Bytes(16, 0x11));  // the storage's CLSID, after its children
  h.update(Bytes(16, 0));     // the root's
  CHECK(msi::digest(src, l, DigestAlg::sha256, "t.msi") == h.finish());
  sign_and_check(c.bytes, pattern(2000, 5), DigestAlg::sha256);
}
