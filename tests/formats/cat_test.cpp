// Security catalogs (src/formats/cat.cpp): found by content, the CTL kept byte for byte, its
// content octets hashed, and whatever is not one DER SignedData of a CTL with at most one
// SignerInfo refused with the file named. Catalogs come from the generator in
// tests/support/catalog.hpp (MakeCat's structure), made at test time.
#include <catch2/catch.hpp>

#include <algorithm>

#include <openssl/evp.h>

#include "common/error.hpp"
#include "formats/cat.hpp"
#include "formats/format.hpp"
#include "support/catalog.hpp"
#include "support/fixtures.hpp"
#include "support/memory_output.hpp"

namespace fs = std::filesystem;
namespace cat = tsign::formats::cat;
using tsign::Bytes;
using tsign::ByteView;
using tsign::DigestAlg;
using tsign::test::CatalogOptions;
using tsign::test::make_catalog;
using tsign::test::make_ctl;

namespace {

// The error message parse() gives for `file`, or "" if it accepts it.
std::string refusal(const Bytes& file) {
  try {
    cat::parse(file, "x.cat");
  } catch (const tsign::FileError& e) {
    return e.what();
  }
  return {};
}

bool has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// The CTL's value octets, found independently of cat.cpp: OpenSSL's header parser.
ByteView value_of(const Bytes& der) {
  const unsigned char* p = der.data();
  long len = 0;
  int tag = 0, cls = 0;
  ASN1_get_object(&p, &len, &tag, &cls, static_cast<long>(der.size()));
  return ByteView(p, static_cast<std::size_t>(len));
}

}  // namespace

TEST_CASE("an unsigned catalog: detected by content, its CTL found byte for byte, no signature",
          "[cat]") {
  const Bytes file = make_catalog();
  const Bytes ctl = make_ctl();
  CHECK(cat::detect(file));
  CHECK(cat::detect(ByteView(file).first(std::min<std::size_t>(file.size(), 200))));
  auto l = cat::parse(file, "x.cat");
  CHECK(l.ctl_der == ctl);
  CHECK_FALSE(l.has_signature);
  CHECK(l.file_size == file.size());
  // The digest is the hash of the CTL's content octets, what messageDigest holds.
  for (auto alg : {DigestAlg::sha256, DigestAlg::sha384, DigestAlg::sha512}) {
    CHECK(cat::ctl_digest(l.ctl_der, alg) == tsign::hash(alg, value_of(ctl)));
    CHECK(cat::ctl_digest(l.ctl_der, alg) != tsign::hash(alg, ctl));
  }
  // One SignerInfo: a signed catalog.
  CatalogOptions one;
  one.dummy_signers = 1;
  auto signed_layout = cat::parse(make_catalog(one), "x.cat");
  CHECK(signed_layout.has_signature);
  CHECK(signed_layout.ctl_der == ctl);
}

TEST_CASE("detection wants a SignedData whose content is a CTL", "[cat]") {
  CatalogOptions other;
  other.content_type = "1.3.6.1.4.1.311.2.1.4";
  CHECK_FALSE(cat::detect(make_catalog(other)));
  CHECK_FALSE(cat::detect(Bytes{}));
  CHECK_FALSE(cat::detect(Bytes{0x30}));
  CHECK_FALSE(cat::detect(Bytes{'M', 'Z', 0, 0}));
  Bytes cut = make_catalog();
  cut.resize(30);  // the header ends before the content type
  CHECK_FALSE(cat::detect(cut));
  // An indefinite length (BER) is not a catalog's DER.
  Bytes ber = make_catalog();
  ber[1] = 0x80;
  CHECK_FALSE(cat::detect(ber));
}

TEST_CASE("malformed catalogs are refused with the file named and the reason", "[cat]") {
  const Bytes good = make_catalog();

  Bytes trailing = good;
  trailing.push_back(0);
  auto m = refusal(trailing);
  CHECK(has(m, "x.cat: not a catalog: 1 bytes follow the PKCS #7 ContentInfo"));

  Bytes cut = good;
  cut.resize(cut.size() - 1);
  CHECK(has(refusal(cut), "x.cat: not a catalog: the file is not a DER PKCS #7 ContentInfo"));

  CatalogOptions other;
  other.content_type = "1.3.6.1.4.1.311.2.1.4";
  CHECK(has(refusal(make_catalog(other)),
            "x.cat: not a catalog: the SignedData's content is 1.3.6.1.4.1.311.2.1.4, not a "
            "certificate trust list (1.3.6.1.4.1.311.10.1)"));

  CatalogOptions two;
  two.dummy_signers = 2;
  CHECK(has(refusal(make_catalog(two)), "x.cat: the catalog has 2 SignerInfos"));

  // The content type says CTL but the content is another SEQUENCE.
  CatalogOptions not_ctl;
  not_ctl.content = {0x30, 0x03, 0x02, 0x01, 0x05};
  CHECK(has(refusal(make_catalog(not_ctl)),
            "x.cat: the catalog's content is not a valid certificate trust list"));

  // BER: the outer SEQUENCE with an indefinite length, which d2i_PKCS7 alone accepts.
  REQUIRE(good[0] == 0x30);
  REQUIRE(good[1] == 0x82);
  Bytes ber = {0x30, 0x80};
  ber.insert(ber.end(), good.begin() + 4, good.end());
  ber.insert(ber.end(), {0, 0});
  CHECK(has(refusal(ber), "x.cat: not a catalog: the SignedData is not DER-encoded"));

  CHECK(refusal(good).empty());
}

TEST_CASE("write_signed writes the new SignedData when it carries the catalog's CTL", "[cat]") {
  const Bytes ctl = make_ctl();
  CatalogOptions one;
  one.dummy_signers = 1;
  const Bytes signed_cat = make_catalog(one);

  tsign::test::MemoryOutput out;
  auto d = cat::write_signed(ctl, signed_cat, out, "x.cat", DigestAlg::sha384);
  CHECK(out.bytes == signed_cat);
  CHECK(d == cat::ctl_digest(ctl, DigestAlg::sha384));

  // Another CTL (other members), no signer, or not a catalog: nothing is written.
  CatalogOptions others = one;
  others.members = {{"other.txt", {'x'}}};
  tsign::test::MemoryOutput none;
  CHECK_THROWS_WITH(cat::write_signed(ctl, make_catalog(others), none, "x.cat"),
                    Catch::Contains("x.cat: the new signature carries another certificate trust "
                                    "list than the catalog's"));
  CHECK_THROWS_WITH(cat::write_signed(ctl, make_catalog(), none, "x.cat"),
                    Catch::Contains("x.cat: the new signature has no SignerInfo"));
  CHECK_THROWS_WITH(cat::write_signed(ctl, Bytes{0x30, 0x00}, none, "x.cat"),
                    Catch::Contains("x.cat: the new signature: not a catalog"));
  CHECK(none.bytes.empty());
}

TEST_CASE("a catalog file through the registry: its own content signed, changes noticed", "[cat]") {
  tsign::test::TempDir tmp("cat");
  const Bytes file = make_catalog();
  // By content: the name does not matter.
  const auto path = tmp / "list.bin";
  tsign::test::write_all(path, file);
  CHECK(tsign::formats::is_supported(path));
  auto f = tsign::formats::open(path);
  CHECK(f->format_name() == "cat");
  auto what = f->signed_content();
  CHECK(what.is_own());
  CHECK(what.own_type == "1.3.6.1.4.1.311.10.1");
  CHECK(what.own_der == make_ctl());
  CHECK(f->digest(DigestAlg::sha512) == tsign::hash(DigestAlg::sha512, value_of(what.own_der)));
  CHECK_FALSE(f->existing_signature());

  // A signed catalog's existing signature is the whole file.
  CatalogOptions one;
  one.dummy_signers = 1;
  const Bytes signed_cat = make_catalog(one);
  const auto signed_path = tmp / "signed.cat";
  tsign::test::write_all(signed_path, signed_cat);
  auto s = tsign::formats::open(signed_path);
  REQUIRE(s->existing_signature());
  CHECK(*s->existing_signature() == signed_cat);

  // Changed after it was opened: refused before anything is written.
  Bytes edited = file;
  edited.back() ^= 1;
  tsign::test::write_all(path, edited);
  CHECK_THROWS_WITH(f->digest(DigestAlg::sha256),
                    Catch::Contains("the file changed while it was being signed"));
  tsign::test::MemoryOutput out;
  CHECK_THROWS_WITH(f->write_signed(signed_cat, out, DigestAlg::sha256),
                    Catch::Contains("the file changed while it was being signed"));
  CHECK(out.bytes.empty());
}

TEST_CASE("a .cat that is not a catalog is refused by name, not signed as something else",
          "[cat]") {
  tsign::test::TempDir tmp("cat");
  CatalogOptions other;
  other.content_type = "1.3.6.1.4.1.311.2.1.4";
  const auto path = tmp / "fake.cat";
  const Bytes bytes = make_catalog(other);
  tsign::test::write_all(path, bytes);
  CHECK_FALSE(tsign::formats::is_supported(path));
  CHECK_THROWS_WITH(tsign::formats::open(path),
                    Catch::Contains("fake.cat: not a supported file format"));
  CHECK(tsign::test::read_all(path) == bytes);
}

TEST_CASE("every one-byte change and cut of a catalog is parsed or refused naming the file",
          "[cat]") {
  CatalogOptions one;
  one.dummy_signers = 1;
  const Bytes ctl = make_ctl();
  for (const Bytes& good : {make_catalog(), make_catalog(one)}) {
    std::size_t refused = 0, parsed = 0;
    auto judge = [&](const Bytes& m) {
      try {
        auto l = cat::parse(m, "x.cat");
        ++parsed;
        // Whatever is accepted names a CTL that is a byte range of the file.
        CHECK(std::search(m.begin(), m.end(), l.ctl_der.begin(), l.ctl_der.end()) != m.end());
      } catch (const tsign::FileError& e) {
        ++refused;
        CHECK(std::string(e.what()).rfind("x.cat: ", 0) == 0);
      }
    };
    for (std::size_t i = 0; i < good.size(); ++i) {
      for (std::uint8_t x : {0x01, 0x80, 0xff}) {
        Bytes m = good;
        m[i] ^= x;
        judge(m);
      }
      judge(Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(i)));
    }
    CHECK(refused > good.size());  // every cut at least
    CHECK(parsed > 0);             // changes inside the CTL's strings keep it a catalog
  }
}

TEST_CASE("a catalog larger than tsign reads is refused by its size, before it is read", "[cat]") {
  tsign::test::TempDir tmp("cat");
  const auto path = tmp / "huge.cat";
  tsign::test::write_all(path, make_catalog());
  // Sparse: the header still says catalog, the size is past the limit.
  fs::resize_file(path, cat::kMaxCatalogSize + 1);
  CHECK(tsign::formats::is_supported(path));
  CHECK_THROWS_WITH(tsign::formats::open(path),
                    Catch::Contains("huge.cat: a catalog of 134217729 bytes is larger than tsign "
                                    "reads (128 MiB)"));
}
