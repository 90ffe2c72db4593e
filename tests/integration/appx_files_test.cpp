// App packages through the real binary with a local key: APPX/MSIX and bundles in several zip
// layouts, SHA-256/384/512 (the block map's algorithm), judged by osslsigncode and `tsign
// verify`; signing again replaces the signature; a one-byte tamper rejected by both; a Publisher
// that is not the certificate's subject, append-signature and a lying block map refused, exit 1,
// the file untouched.
#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace it;
using Bytes = std::vector<std::uint8_t>;

namespace {

bool has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// A package from tests/support/make_appx.py (publisher: the test leaf's subject by default).
fs::path make_appx(const fs::path& out, const std::string& args = "") {
  const auto script = fs::path(TSIGN_FIXTURES_SCRIPT).parent_path() / "make_appx.py";
  auto r = sh("python3 " + quote(script) + " " + quote(out) + " " + args);
  INFO(r.out);
  REQUIRE(r.code == 0);
  return out;
}

std::size_t find(const Bytes& b, const std::string& s) {
  const std::string_view text(reinterpret_cast<const char*>(b.data()), b.size());
  const auto at = text.find(s);
  REQUIRE(at != std::string_view::npos);
  return at;
}

}  // namespace

TEST_CASE("app packages signed with a local key: osslsigncode and tsign verify agree",
          "[integration][local][appx]") {
  struct Case {
    const char* digest;
    std::vector<std::pair<std::string, std::string>> files;
  } cases[] = {
      {"SHA256",
       {{"plain.appx", ""},
        {"z64.msix", "--zip64 --descriptors --big"},
        {"stored.msix", "--stored --stored-content-types"},
        {"b.msixbundle", "--bundle"},
        {"ci.appx", "--code-integrity"}}},
      {"SHA384", {{"p384.msix", "--hash sha384"}}},
      {"SHA512", {{"p512.appx", "--hash sha512 --descriptors"}}},
  };
  for (const auto& c : cases) {
    TempDir d;
    std::string args;
    for (const auto& [n, opts] : c.files) args += " " + quote(make_appx(d.path / n, opts).string());
    auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --file-digest " +
                       c.digest + args);
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(has(r.out, std::to_string(c.files.size()) + " signed, 0 failed"));
    for (const auto& [n, opts] : c.files) {
      INFO(n << " " << c.digest);
      auto v = ossl_verify(d.path / n);
      INFO(v.out);
      CHECK(v.code == 0);
      CHECK(has(v.out, "Number of verified signatures: 1"));
      auto t = run_tsign("verify --ca " + fx("root.pem") + " " + d.q(n));
      INFO(t.out);
      CHECK(t.code == 0);
      CHECK(has(t.out, c.digest));

      // One byte of the manifest's data changed (it precedes the block map's local header, and
      // its data descriptor when it has one).
      Bytes b = tsign::test::read_all(d.path / n);
      b[find(b, "AppxBlockMap.xml") - 30 - 24 - 10] ^= 0x01;
      tsign::test::write_all(d.path / "tampered.appx", b);
      auto vt = ossl_verify(d.path / "tampered.appx");
      INFO(vt.out);
      CHECK(vt.code != 0);
      auto tt = run_tsign("verify --ca " + fx("root.pem") + " " + d.q("tampered.appx"));
      INFO(tt.out);
      CHECK(tt.code == 1);
      fs::remove(d.path / "tampered.appx");
    }
  }
}

TEST_CASE("signing a signed package replaces its signature, and append-signature is refused",
          "[integration][local][appx]") {
  TempDir d;
  const auto p = make_appx(d.path / "p.msix");
  REQUIRE(
      run_tsign("sign " + local_key() + " --timestamp-rfc3161=none " + quote(p.string())).code ==
      0);
  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none " + quote(p.string()));
  INFO(r.out);
  REQUIRE(r.code == 0);
  auto v = ossl_verify(p);
  INFO(v.out);
  CHECK(v.code == 0);
  CHECK(has(v.out, "Number of verified signatures: 1"));
  const Bytes twice = tsign::test::read_all(p);
  // One AppxSignature.p7x part.
  const std::string text(twice.begin(), twice.end());
  std::size_t names = 0;  // the local header's and the central record's
  for (auto at = text.find("AppxSignature.p7x"); at != std::string::npos;
       at = text.find("AppxSignature.p7x", at + 1))
    ++names;
  CHECK(names == 2);

  r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --append-signature " +
                quote(p.string()));
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(has(r.out, "p.msix: an app package holds one signature"));
  CHECK(tsign::test::read_all(p) == twice);
}

TEST_CASE("a Publisher that is not the certificate's subject is refused, the file untouched",
          "[integration][local][appx][bad-input]") {
  TempDir d;
  const auto p = make_appx(d.path / "p.appx", "--publisher \"CN=Contoso, O=Contoso, C=US\"");
  const auto lying = make_appx(d.path / "lying.appx", "--missing-file");
  const Bytes before = tsign::test::read_all(p);
  const Bytes before_lying = tsign::test::read_all(lying);
  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none " + quote(p.string()) +
                     " " + quote(lying.string()));
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(has(r.out, "0 signed, 2 failed"));
  CHECK(has(r.out, "p.appx: the package's Publisher \"CN=Contoso, O=Contoso, C=US\""));
  CHECK(has(r.out, "O=tsign tests, CN=tsign test leaf"));
  CHECK(has(r.out, "lying.appx: AppxBlockMap.xml lists \"ghost.dll\""));
  CHECK(tsign::test::read_all(p) == before);
  CHECK(tsign::test::read_all(lying) == before_lying);
  CHECK(listing(d.path) == std::vector<std::string>{"lying.appx", "p.appx"});
}

TEST_CASE("a file named as an app package that is not one is refused as one, not passed over",
          "[integration][local][appx][bad-input]") {
  TempDir d;
  d.copy("pe64.exe", "out/good.exe");
  fs::create_directories(d.path / "out/tools");
  write_file(d.path / "out/tools/app.msix", "PK not really a package");
  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --files-folder " +
                     d.q("out") + " --files-folder-recurse");
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(has(r.out, "1 signed, 1 failed"));
  CHECK(has(r.out, "app.msix: too short to be a zip package"));
  CHECK(read_file(d.path / "out/tools/app.msix") == "PK not really a package");
}
