// App packages (APPX/MSIX and bundles): detection, the digest blob against osslsigncode's for
// every layout the generator makes, the signed package as osslsigncode verifies it, the block
// map and zip checks refusing hostile packages with the file, the entry and the reason (and
// nothing written), and the Publisher compared with the certificate's subject as Windows does.
#include <catch2/catch.hpp>

#include <functional>

#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include "common/error.hpp"
#include "common/ossl.hpp"
#include "common/text.hpp"
#include "formats/appx.hpp"
#include "formats/format.hpp"
#include "formats/zip.hpp"
#include "reference.hpp"
#include "support/fixtures.hpp"
#include "support/memory_output.hpp"

namespace fs = std::filesystem;
namespace reference = tsign::test::reference;
namespace appx = tsign::formats::appx;
namespace zip = tsign::formats::zip;
using tsign::Bytes;
using tsign::DigestAlg;
using tsign::test::fixture;
using tsign::test::MemoryOutput;
using tsign::test::quote;
using tsign::test::read_all;
using tsign::test::run_command;
using tsign::test::write_all;

namespace {

// A package from tests/support/make_appx.py.
fs::path make_appx(const fs::path& out, const std::string& args) {
  const auto script = fs::path(TSIGN_FIXTURES_SCRIPT).parent_path() / "make_appx.py";
  auto r = run_command("python3 " + quote(script) + " " + quote(out) + " " + args);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  return out;
}

// The APPX digest blob a signature carries ("APPX" "AXPC" … in its SpcIndirectDataContent).
Bytes blob_in(const Bytes& der, std::size_t md_len, bool ci) {
  const std::string_view text(reinterpret_cast<const char*>(der.data()), der.size());
  const auto at = text.find("APPXAXPC");
  REQUIRE(at != std::string_view::npos);
  const std::size_t len = 4 + (ci ? 5 : 4) * (4 + md_len);
  REQUIRE(at + len <= der.size());
  return Bytes(der.begin() + static_cast<std::ptrdiff_t>(at),
               der.begin() + static_cast<std::ptrdiff_t>(at + len));
}

Bytes leaf_der(const std::string& pem_name) {
  tsign::BioPtr b(BIO_new_file(fixture(pem_name).string().c_str(), "r"));
  REQUIRE(b);
  tsign::X509Ptr x(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  REQUIRE(x);
  unsigned char* p = nullptr;
  const int n = i2d_X509(x.get(), &p);
  Bytes der(p, p + n);
  OPENSSL_free(p);
  return der;
}

// A certificate with exactly `subject` (DER, self-signed; only the name matters here).
Bytes cert_with_subject(const std::function<void(X509_NAME*)>& fill) {
  tsign::X509Ptr x(X509_new());
  X509_NAME* n = X509_NAME_new();
  fill(n);
  X509_set_subject_name(x.get(), n);
  X509_set_issuer_name(x.get(), n);
  X509_NAME_free(n);
  tsign::EvpPkeyPtr k(EVP_EC_gen("P-256"));
  X509_set_pubkey(x.get(), k.get());
  X509_gmtime_adj(X509_getm_notBefore(x.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 3600);
  X509_sign(x.get(), k.get(), EVP_sha256());
  unsigned char* p = nullptr;
  const int len = i2d_X509(x.get(), &p);
  Bytes der(p, p + len);
  OPENSSL_free(p);
  return der;
}

// set 0: a new RDN; -1: added to the previous one (a multi-valued RDN).
void add(X509_NAME* n, const char* field, const char* value, int set = 0) {
  REQUIRE(X509_NAME_add_entry_by_txt(n, field, MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(value), -1, -1,
                                     set) == 1);
}

// An empty PKCS#7 SignedData: a signature part that parses, for tests that check the layout.
Bytes minimal_pkcs7() {
  tsign::PKCS7Ptr p7(PKCS7_new());
  REQUIRE(PKCS7_set_type(p7.get(), NID_pkcs7_signed) == 1);
  REQUIRE(PKCS7_content_new(p7.get(), NID_pkcs7_data) == 1);
  unsigned char* p = nullptr;
  const int n = i2d_PKCS7(p7.get(), &p);
  Bytes der(p, p + n);
  OPENSSL_free(p);
  return der;
}

std::string publisher_error(const std::string& publisher, const Bytes& cert) {
  try {
    appx::check_publisher(publisher, cert, false, "p.appx");
  } catch (const tsign::FileError& e) {
    return e.what();
  }
  return {};
}

// parse()'s error for the bytes, or "" if they parse.
std::string parse_error(const Bytes& data) {
  tsign::formats::MemorySource src(data, "in.appx");
  try {
    appx::parse(src, "in.appx");
  } catch (const tsign::FileError& e) {
    return e.what();
  }
  return {};
}

std::size_t find(const Bytes& b, std::string_view s, std::size_t from = 0) {
  const std::string_view text(reinterpret_cast<const char*>(b.data()), b.size());
  const auto at = text.find(s, from);
  REQUIRE(at != std::string_view::npos);
  return at;
}

struct Variant {
  const char* args;
  DigestAlg alg;
  bool ci;
};
// Not "--stored-content-types": osslsigncode signs a package whose [Content_Types].xml is stored
// by writing deflated data under the stored method, which no zip reader accepts (tsign writes it
// deflated; osslsigncode verifies that in the integration test).
const Variant kVariants[] = {
    {"", DigestAlg::sha256, false},
    {"--stored --descriptors", DigestAlg::sha256, false},
    {"--stored", DigestAlg::sha256, false},
    {"--mixed-headers", DigestAlg::sha256, false},
    {"--zip64 --descriptors --big", DigestAlg::sha256, false},
    {"--descriptors", DigestAlg::sha256, false},
    {"--bundle", DigestAlg::sha256, false},
    {"--code-integrity --hash sha384", DigestAlg::sha384, true},
    {"--hash sha512 --big", DigestAlg::sha512, false},
};

}  // namespace

TEST_CASE("app packages are detected by content and carry the APPX SIP", "[appx]") {
  tsign::test::TempDir tmp("appx-detect");
  auto f = tsign::formats::open(make_appx(tmp / "p.zip", ""));  // not by its name
  CHECK(f->format_name() == "appx");
  CHECK(f->needs_signing_certificate());
  CHECK_FALSE(f->existing_signature().has_value());
  auto content = f->signed_content();
  CHECK(content.spc_type == "1.3.6.1.4.1.311.2.1.30");
  CHECK(content.digest_is_blob);
  // SpcSipInfo { 0x01010000, 4BDFC50A-07CE-E24D-B76E-23C839A09FD1 (stored bytes), 0 x5 }
  CHECK(tsign::to_hex(content.spc_value) ==
        "30270204010100000410"
        "4bdfc50a07cee24db76e23c839a09fd1020100020100020100020100020100");
  auto b = tsign::formats::open(make_appx(tmp / "b.msixbundle", "--bundle"));
  CHECK(b->format_name() == "appxbundle");
  CHECK(tsign::to_hex(b->signed_content().spc_value).find("b3585f0fdeaa9a4ba43495742d92eceb") !=
        std::string::npos);
  // A zip that is not a package is not taken for one.
  const Bytes plain = {'P', 'K', 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  tsign::formats::MemorySource src(plain);
  CHECK_FALSE(appx::detect(src));
}

TEST_CASE("the package digest equals osslsigncode's, unsigned and signed, in every layout",
          "[appx]") {
  tsign::test::TempDir tmp("appx-digest");
  for (const auto& v : kVariants) {
    INFO(v.args);
    const auto in = make_appx(tmp / "in.appx", v.args);
    const auto signed_copy = tmp / "ossl.appx";
    reference::sign(in, signed_copy, "sha256");  // osslsigncode takes the block map's algorithm
    const Bytes der = reference::extract_signature(signed_copy, tmp / "sig.der");
    const Bytes theirs = blob_in(der, tsign::digest_size(v.alg), v.ci);
    // The package as tsign will sign it hashes as osslsigncode's signed one, and tsign reads
    // osslsigncode's signed package back to the same blob.
    CHECK(tsign::formats::open(in)->digest(v.alg) == theirs);
    auto s = tsign::formats::open(signed_copy);
    CHECK(s->existing_signature() == der);
    CHECK(s->digest(v.alg) == theirs);
  }
}

TEST_CASE("a package tsign writes is verified by osslsigncode, and re-signing replaces", "[appx]") {
  tsign::test::TempDir tmp("appx-write");
  for (const auto& v : kVariants) {
    INFO(v.args);
    const auto in = make_appx(tmp / "in.appx", v.args);
    // A signature over tsign's digest: osslsigncode signs the same package, whose digest is
    // equal (above), so its PKCS#7 is a valid signature for tsign's output too.
    reference::sign(in, tmp / "ossl.appx", "sha256");
    const Bytes der = reference::extract_signature(tmp / "ossl.appx", tmp / "sig.der");
    auto f = tsign::formats::open(in);
    MemoryOutput out;
    CHECK(f->write_signed(der, out, v.alg) == f->digest(v.alg));
    write_all(tmp / "ours.appx", out.bytes);
    auto r = reference::verify_trusted(tmp / "ours.appx");
    INFO(r.output);
    CHECK(r.exit_code == 0);
    // Signing the signed package again: one signature, the same digest, still verified.
    auto again = tsign::formats::open(tmp / "ours.appx");
    CHECK(again->existing_signature() == der);
    MemoryOutput out2;
    CHECK(again->write_signed(der, out2, v.alg) == f->digest(v.alg));
    CHECK(out2.bytes == out.bytes);
  }
}

TEST_CASE("data descriptors without their signature are read and kept as they are", "[appx]") {
  // osslsigncode cannot read these (it expects the signature), so tsign is its own judge here:
  // the written package parses again with the same digest and the descriptors unchanged.
  tsign::test::TempDir tmp("appx-nosig");
  const auto in = make_appx(tmp / "p.appx", "--descriptors-nosig --big");
  const Bytes original = read_all(in);
  auto f = tsign::formats::open(in);
  const Bytes digest = f->digest(DigestAlg::sha256);
  MemoryOutput out;
  CHECK(f->write_signed(minimal_pkcs7(), out) == digest);
  tsign::formats::MemorySource src(out.bytes, "out.appx");
  const appx::Layout l = appx::parse(src, "out.appx");
  CHECK(appx::package_digest(src, l, DigestAlg::sha256, "out.appx") == digest);
  // Every record before [Content_Types].xml (rewritten with its Override) is copied unchanged.
  const std::size_t ct = l.archive.entries[l.content_types].local_offset;
  CHECK(std::equal(original.begin(), original.begin() + static_cast<std::ptrdiff_t>(ct),
                   out.bytes.begin()));
}

TEST_CASE(
    "a package must be signed with its block map's algorithm, and append-signature is refused",
    "[appx]") {
  tsign::test::TempDir tmp("appx-alg");
  auto f = tsign::formats::open(make_appx(tmp / "p.appx", "--hash sha384"));
  CHECK_THROWS_WITH(f->digest(DigestAlg::sha256),
                    Catch::Contains("p.appx") && Catch::Contains("--file-digest sha384"));
  CHECK_THROWS_WITH(f->check_can_nest(DigestAlg::sha384),
                    Catch::Contains("p.appx") && Catch::Contains("one signature"));
}

TEST_CASE("a package without ZIP64 records that a signature would take past 4 GiB is refused",
          "[appx]") {
  tsign::test::TempDir tmp("appx-embed");
  auto small = tsign::formats::open(make_appx(tmp / "p.appx", ""));
  CHECK_NOTHROW(small->check_can_embed(64 * 1024));
  CHECK_THROWS_WITH(small->check_can_embed(0xFFFF0000),
                    Catch::Contains("p.appx") && Catch::Contains("ZIP64"));
  auto z64 = tsign::formats::open(make_appx(tmp / "z.appx", "--zip64"));
  CHECK_NOTHROW(z64->check_can_embed(0xFFFF0000));
}

TEST_CASE("hostile packages are refused naming the file, the entry and the reason", "[appx]") {
  tsign::test::TempDir tmp("appx-hostile");
  SECTION("block maps that do not match the package") {
    struct Case {
      const char* args;
      const char* message;
    } cases[] = {
        {"--bad-block-map", "the content of \"app.exe\" does not match AppxBlockMap.xml"},
        {"--missing-file", "lists \"ghost.dll\", which is not in the package"},
        {"--unlisted-file", "\"extra.txt\" is in the package but not in AppxBlockMap.xml"},
        {"--bad-lfh-size", "lists \"app.exe\" with Size"},
        {"--big --bad-block-map", "does not match AppxBlockMap.xml"},
        {"--twin", "two zip items name the part \"app.exe\""},
    };
    for (const auto& c : cases) {
      INFO(c.args);
      const auto p = make_appx(tmp / "bad.appx", c.args);
      CHECK_THROWS_WITH(tsign::formats::open(p),
                        Catch::Contains("bad.appx") && Catch::Contains(c.message));
    }
  }
  SECTION("zips whose structure lies") {
    const Bytes good = read_all(make_appx(tmp / "good.appx", ""));
    REQUIRE(parse_error(good).empty());
    const std::size_t cd = find(good, std::string_view("PK\x01\x02", 4));
    const std::size_t eocd = good.size() - 22;
    auto put32 = [](Bytes& b, std::size_t at, std::uint32_t v) {
      for (int i = 0; i < 4; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
    };
    auto get32 = [](const Bytes& b, std::size_t at) { return tsign::formats::le32(&b[at]); };
    struct Case {
      const char* what;
      std::function<void(Bytes&)> edit;
      const char* message;
    } cases[] = {
        {"the second record's offset points into the first",
         [&](Bytes& b) {
           const std::size_t second = find(b, std::string_view("PK\x01\x02", 4), cd + 4);
           put32(b, second + 42, 40);
         },
         "overlaps the next record"},
        {"entries overlap",
         [&](Bytes& b) { put32(b, cd + 20, 0x100000); },  // app.exe's compressed size
         "entry \"app.exe\""},
        {"the central directory offset lies",
         [&](Bytes& b) { put32(b, eocd + 16, static_cast<std::uint32_t>(cd - 1)); },
         "does not end where the end records start"},
        {"the entry count lies", [&](Bytes& b) { b[eocd + 8] = b[eocd + 10] = 4; },
         "after its last record"},
        {"a local header names another file",
         [&](Bytes& b) { b[30] = 'b'; },  // "app.exe" -> "bpp.exe" in the local header
         "names another file"},
        {"the first offset beyond the file", [&](Bytes& b) { put32(b, cd + 42, 0x7FFFFFF0); },
         "the first local record does not start the file"},
        {"data appended after the end record", [&](Bytes& b) { b.push_back(0); },
         "no end-of-central-directory record"},
        {"a byte hidden between records",
         [&](Bytes& b) {
           // app.exe's data one byte shorter in both headers: its last byte is then outside
           // every record.
           put32(b, cd + 20, get32(b, cd + 20) - 1);
           put32(b, 18, get32(b, 18) - 1);
         },
         "1 unaccounted bytes follow its data"},
    };
    for (const auto& c : cases) {
      INFO(c.what);
      Bytes b = good;
      c.edit(b);
      CHECK_THAT(parse_error(b), Catch::Contains("in.appx") && Catch::Contains(c.message));
    }
  }
}

TEST_CASE("the Publisher is compared with the certificate's subject as Windows compares names",
          "[appx]") {
  const Bytes leaf = leaf_der("leaf.pem");  // subject CN=tsign test leaf, O=tsign tests (DER order)
  // The string lists the RDNs last first (RFC 4514), as Windows shows a subject.
  CHECK(publisher_error("O=tsign tests, CN=tsign test leaf", leaf).empty());
  CHECK(publisher_error("o = TSIGN TESTS ;  cn=\"tsign test leaf\" ", leaf).empty());
  CHECK(publisher_error("OID.2.5.4.10=tsign tests, 2.5.4.3=tsign test leaf", leaf).empty());
  const std::string swapped = publisher_error("CN=tsign test leaf, O=tsign tests", leaf);
  CHECK_THAT(swapped, Catch::Contains("p.appx") &&
                          Catch::Contains("\"CN=tsign test leaf, O=tsign tests\"") &&
                          Catch::Contains("O=tsign tests, CN=tsign test leaf") &&
                          Catch::Contains("Publisher attribute") &&
                          Catch::Contains("certificate profile"));
  CHECK_FALSE(publisher_error("O=tsign tests, CN=tsign test leaf 2", leaf).empty());
  CHECK_FALSE(publisher_error("CN=tsign test leaf", leaf).empty());
  CHECK_THAT(publisher_error("tsign test leaf", leaf), Catch::Contains("not a distinguished name"));
  CHECK_THAT(publisher_error("X=1, CN=tsign test leaf", leaf),
             Catch::Contains("unknown attribute"));

  // Quoted and escaped values, multi-valued RDNs, and names Windows spells its own way.
  const Bytes contoso = cert_with_subject([](X509_NAME* n) {
    add(n, "C", "US");
    add(n, "ST", "Washington");
    add(n, "O", "Contoso, Ltd.");
    add(n, "OU", "Apps");
    add(n, "CN", "Contoso \"Store\"");
    add(n, "emailAddress", "apps@contoso.com", -1);  // same RDN as the CN
  });
  CHECK(publisher_error("E=apps@contoso.com + CN=\"Contoso \"\"Store\"\"\", OU=Apps, "
                        "O=\"Contoso, Ltd.\", S=Washington, C=US",
                        contoso)
            .empty());
  CHECK(publisher_error("CN=Contoso \\\"Store\\\"+E=apps@contoso.com, OU=Apps, O=Contoso\\, Ltd., "
                        "ST=Washington, C=us",
                        contoso)
            .empty());
  CHECK_FALSE(publisher_error("CN=Contoso \\\"Store\\\", OU=Apps, O=Contoso\\, Ltd., "
                              "ST=Washington, C=US",
                              contoso)
                  .empty());  // the email is missing from the first RDN
}

TEST_CASE("the zip reader streams deflated entries and checks their CRC", "[appx]") {
  tsign::test::TempDir tmp("appx-zip");
  const Bytes good = read_all(make_appx(tmp / "p.appx", "--big"));
  tsign::formats::MemorySource src(good, "p.appx");
  const zip::Archive a = zip::read(src, "p.appx");
  const zip::Entry* big = a.find("data/big.dat");
  REQUIRE(big);
  std::size_t pieces = 0, total = 0;
  zip::read_entry(src, *big, "p.appx", [&](tsign::ByteView b) {
    ++pieces;
    total += b.size();
    CHECK(b.size() <= 64 * 1024);
  });
  CHECK(total == 200 * 1024);
  CHECK(pieces >= 4);
  // A flipped CRC in both headers: the content no longer matches it.
  Bytes bad = good;
  const std::size_t local = big->local_offset;
  const std::size_t central = find(bad, "data/big.dat", a.cd_offset) - 46;
  bad[local + 14] ^= 1;
  bad[central + 16] ^= 1;
  tsign::formats::MemorySource src2(bad, "p.appx");
  const zip::Archive a2 = zip::read(src2, "p.appx");
  CHECK_THROWS_WITH(
      zip::read_entry(src2, *a2.find("data/big.dat"), "p.appx", [](tsign::ByteView) {}),
      Catch::Contains("CRC-32"));
}
