// Security catalogs through the real binary with a local key, judged by osslsigncode 2.9 (which
// verifies .cat files) and by `tsign verify`: SHA-256/384/512, replace and append (nested), a
// catalog signed by osslsigncode, a one-byte change in the CTL, malformed catalogs. The
// catalogs come from tests/support/catalog.hpp (MakeCat's structure), made at test time.
#include <catch2/catch.hpp>

#include <algorithm>

#include <boost/json.hpp>

#include "emulator_process.hpp"
#include "formats/cat.hpp"
#include "harness.hpp"
#include "support/catalog.hpp"

using namespace it;
using Bytes = std::vector<std::uint8_t>;
namespace cat = tsign::formats::cat;

namespace {

bool has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

fs::path write_catalog(const TempDir& d, const std::string& name,
                       const tsign::test::CatalogOptions& opts = {}) {
  fs::create_directories((d.path / name).parent_path());
  tsign::test::write_all(d.path / name, tsign::test::make_catalog(opts));
  return d.path / name;
}

std::string sign_args(const std::string& extra) {
  return "sign " + local_key() + " --timestamp-rfc3161=none " + extra;
}

Proc tsign_verify(const fs::path& f) {
  return run_tsign("verify --ca " + fx("root.pem") + " " + quote(f.string()));
}

// The catalog's CTL as the format parser finds it.
Bytes ctl_of(const fs::path& f) {
  return cat::parse(tsign::test::read_all(f), f.string()).ctl_der;
}

}  // namespace

TEST_CASE("catalogs signed with SHA-256/384/512: osslsigncode and tsign verify, the CTL kept",
          "[integration][local][cat]") {
  const Bytes ctl = tsign::test::make_ctl();
  for (std::string digest : {"SHA256", "SHA384", "SHA512"}) {
    INFO(digest);
    TempDir d;
    auto f = write_catalog(d, "drivers.cat");
    auto r = run_tsign(sign_args("--file-digest " + digest + " " + quote(f.string())));
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(has(r.out, "1 signed, 0 failed"));
    CHECK(ctl_of(f) == ctl);
    auto v = ossl_verify(f);
    INFO(v.out);
    CHECK(v.code == 0);
    auto t = tsign_verify(f);
    INFO(t.out);
    CHECK(t.code == 0);
    CHECK(has(t.out, digest));
    CHECK(listing(d.path) == std::vector<std::string>{"drivers.cat"});
  }
}

TEST_CASE("catalogs: append-signature nests a second signature, replace keeps one",
          "[integration][local][cat]") {
  TempDir d;
  auto f = write_catalog(d, "a.cat");
  REQUIRE(run_tsign(sign_args("--file-digest SHA256 " + quote(f.string()))).code == 0);
  const Bytes once = tsign::test::read_all(f);
  // skip-signed leaves a catalog whose signature verifies alone.
  auto k = run_tsign(sign_args("--skip-signed --ca " + fx("root.pem") + " " + quote(f.string())));
  INFO(k.out);
  CHECK(k.code == 0);
  CHECK(has(k.out, "0 signed, 0 failed, 1 skipped"));
  CHECK(tsign::test::read_all(f) == once);

  auto r = run_tsign(sign_args("--append-signature --file-digest SHA512 " + quote(f.string())));
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(ctl_of(f) == tsign::test::make_ctl());
  auto v = ossl_verify(f);
  INFO(v.out);
  CHECK(v.code == 0);
  CHECK(has(v.out, "Number of verified signatures: 2"));
  auto t = tsign_verify(f);
  INFO(t.out);
  CHECK(t.code == 0);
  CHECK(has(t.out, "2 signatures"));

  // Replacing drops both: one signature again.
  auto g = d.path / "b.cat";
  tsign::test::write_all(g, once);
  REQUIRE(run_tsign(sign_args("--file-digest SHA384 " + quote(g.string()))).code == 0);
  auto v2 = ossl_verify(g);
  INFO(v2.out);
  CHECK(v2.code == 0);
  CHECK(has(v2.out, "Number of verified signatures: 1"));
  auto t2 = tsign_verify(g);
  INFO(t2.out);
  CHECK(t2.code == 0);
  CHECK_FALSE(has(t2.out, "2 signatures"));
}

TEST_CASE("a catalog signed by osslsigncode verifies with tsign, and tsign nests into it",
          "[integration][local][cat]") {
  TempDir d;
  auto f = write_catalog(d, "in.cat");
  auto o = d.path / "ossl.cat";
  auto s = sh("osslsigncode sign -certs " + fx("chain.pem") + " -key " + fx("leaf.key") +
              " -h sha384 -in " + quote(f.string()) + " -out " + quote(o.string()));
  INFO(s.out);
  REQUIRE(s.code == 0);
  auto t = tsign_verify(o);
  INFO(t.out);
  CHECK(t.code == 0);
  CHECK(has(t.out, "SHA384"));

  auto r = run_tsign(sign_args("--append-signature " + quote(o.string())));
  INFO(r.out);
  REQUIRE(r.code == 0);
  auto v = ossl_verify(o);
  INFO(v.out);
  CHECK(v.code == 0);
  CHECK(has(v.out, "Number of verified signatures: 2"));
  CHECK(tsign_verify(o).code == 0);
}

TEST_CASE("a one-byte change in a signed catalog's CTL is rejected by osslsigncode and tsign",
          "[integration][local][cat]") {
  TempDir d;
  auto f = write_catalog(d, "a.cat");
  REQUIRE(run_tsign(sign_args(quote(f.string()))).code == 0);
  REQUIRE(ossl_verify(f).code == 0);
  Bytes b = tsign::test::read_all(f);
  // The first member's name, "hello.txt" in UTF-16LE, inside the CTL: still valid DER.
  const Bytes name = {'h', 0, 'e', 0, 'l', 0, 'l', 0, 'o', 0};
  auto at = std::search(b.begin(), b.end(), name.begin(), name.end());
  REQUIRE(at != b.end());
  *at = 'j';
  auto g = d.path / "tampered.cat";
  tsign::test::write_all(g, b);
  auto v = ossl_verify(g);
  INFO(v.out);
  CHECK(v.code != 0);
  auto t = tsign_verify(g);
  INFO(t.out);
  CHECK(t.code == 1);
  CHECK(has(t.out, "FAIL"));
}

TEST_CASE("malformed catalogs are refused with the file named and stay byte-identical",
          "[integration][local][cat][bad-input]") {
  TempDir d;
  auto good = write_catalog(d, "good.cat");
  Bytes trailing = tsign::test::make_catalog();
  trailing.push_back(0);
  tsign::test::write_all(d.path / "trailing.cat", trailing);
  tsign::test::CatalogOptions two;
  two.dummy_signers = 2;
  auto twice = write_catalog(d, "two.cat", two);
  const Bytes two_bytes = tsign::test::read_all(twice);
  tsign::test::CatalogOptions not_ctl;
  not_ctl.content = {0x30, 0x03, 0x02, 0x01, 0x05};
  auto odd = write_catalog(d, "odd.cat", not_ctl);
  const Bytes odd_bytes = tsign::test::read_all(odd);

  auto r = run_tsign(sign_args(d.q("trailing.cat") + " " + d.q("two.cat") + " " + d.q("odd.cat") +
                               " " + quote(good.string())));
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(has(r.out, "1 signed, 3 failed"));
  CHECK(has(r.out, "trailing.cat: not a catalog: 1 bytes follow the PKCS #7 ContentInfo"));
  CHECK(has(r.out, "two.cat: the catalog has 2 SignerInfos"));
  CHECK(has(r.out, "odd.cat: the catalog's content is not a valid certificate trust list"));
  CHECK(tsign::test::read_all(d.path / "trailing.cat") == trailing);
  CHECK(tsign::test::read_all(twice) == two_bytes);
  CHECK(tsign::test::read_all(odd) == odd_bytes);
  CHECK(ossl_verify(good).code == 0);
  CHECK(listing(d.path) ==
        std::vector<std::string>{"good.cat", "odd.cat", "trailing.cat", "two.cat"});
}

TEST_CASE("a folder scan signs catalogs by content beside PE files, reported as cat",
          "[integration][local][cat]") {
  TempDir d;
  write_catalog(d, "bin/drivers.cat");
  write_catalog(d, "bin/list.bin");  // a catalog by content, whatever its name
  d.copy("pe64.exe", "bin/app.exe");
  tsign::test::write_all(d.path / "bin/notes.txt", {'n', 'o', '\n'});
  auto r = run_tsign(sign_args("--files-folder " + d.q("bin") + " --report " + d.q("report.json")));
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(has(r.out, "3 signed, 0 failed"));
  for (const char* n : {"bin/drivers.cat", "bin/list.bin", "bin/app.exe"}) {
    INFO(n);
    auto v = ossl_verify(d.path / n);
    INFO(v.out);
    CHECK(v.code == 0);
  }
  auto report = boost::json::parse(read_file(d.path / "report.json"));
  std::vector<std::string> formats;
  for (auto& f : report.at("files").as_array())
    formats.push_back(std::string(f.at("format").as_string()));
  std::sort(formats.begin(), formats.end());
  CHECK(formats == std::vector<std::string>{"cat", "cat", "pe"});
}

TEST_CASE("action mode through the emulator: catalogs signed by the service and time-stamped",
          "[integration][cloud][cat]") {
  TempDir d;
  Emulator emu(d.path / "emu");
  write_catalog(d, "bin/a.cat");
  tsign::test::CatalogOptions three;
  three.members = {{"x.sys", {1, 2, 3}}, {"x.inf", {'[', ']'}}, {"x.dll", {'M', 'Z'}}};
  write_catalog(d, "bin/b.cat", three);
  d.copy("pe64.dll", "bin/c.dll");
  auto r = sh(emu.action_env(d.path / "bin") + tsign_cmd() + " action");
  INFO(r.out);
  REQUIRE(r.code == 0);
  for (const char* n : {"bin/a.cat", "bin/b.cat", "bin/c.dll"}) {
    INFO(n);
    auto v = emu.verify(d.path / n);
    INFO(v.out);
    CHECK(v.code == 0);
    CHECK(has(v.out, "Timestamp Server Signature verification: ok"));
  }
  CHECK(ctl_of(d.path / "bin/b.cat") == tsign::test::make_ctl(three));
  CHECK(emu.count("tsa") == 3);
}
