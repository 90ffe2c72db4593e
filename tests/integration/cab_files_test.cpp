// Cabinets through the real binary: signed with a local key (with and without an existing
// reserve, several folders, SHA-256/384/512), nested and replaced, judged by osslsigncode and by
// `tsign verify`; a one-byte tamper rejected by both; unsupported cabinets refused untouched.
#include <catch2/catch.hpp>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "harness.hpp"

using namespace it;
using Bytes = std::vector<std::uint8_t>;

namespace {

bool has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

std::uint32_t get32(const Bytes& b, std::size_t off) {
  return b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (std::uint32_t{b[off + 3]} << 24);
}

}  // namespace

TEST_CASE("sign every fixture cabinet with a local key: osslsigncode and tsign verify agree",
          "[integration][local][cab]") {
  const std::vector<std::string> names = {"cab-multi.cab", "cab-plain.cab", "cab-signed.cab",
                                          "cab-zip.cab"};
  for (std::string digest : {"SHA256", "SHA384", "SHA512"}) {
    TempDir d;
    std::string args;
    for (auto& n : names) args += " " + quote(d.copy(n).string());
    auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --file-digest " + digest +
                       args);
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(has(r.out, "4 signed, 0 failed"));
    for (auto& n : names) {
      INFO(n << " " << digest);
      auto v = ossl_verify(d.path / n);
      INFO(v.out);
      CHECK(v.code == 0);
      CHECK(has(v.out, "Number of verified signatures: 1"));
      auto t = run_tsign("verify --ca " + fx("root.pem") + " " + d.q(n));
      INFO(t.out);
      CHECK(t.code == 0);
      CHECK(has(t.out, digest));

      // One byte of the content changed (the last before the signature): both reject it.
      Bytes b = tsign::test::read_all(d.path / n);
      b[get32(b, 44) - 1] ^= 0x01;
      tsign::test::write_all(d.path / "tampered.cab", b);
      auto vt = ossl_verify(d.path / "tampered.cab");
      INFO(vt.out);
      CHECK(vt.code != 0);
      auto tt = run_tsign("verify --ca " + fx("root.pem") + " " + d.q("tampered.cab"));
      INFO(tt.out);
      CHECK(tt.code == 1);
      fs::remove(d.path / "tampered.cab");
    }
    CHECK(listing(d.path) == names);
  }
}

TEST_CASE(
    "cabinets and MSI files are signed in one read: the report's hashes are the files' before "
    "and after",
    "[integration][local][cab][msi]") {
  // A cabinet's copy has its header rewritten (a reserve inserted into cab-plain, the
  // signature's size in cab-signed's), so its hash before is read from the original; an MSI's
  // copy is the original as it stands until the signature exists, so its hash before is taken
  // from the copy's bytes (the tables are patched and the sectors appended afterwards).
  TempDir d;
  const std::vector<std::string> names = {"cab-plain.cab", "cab-signed.cab", "cab-multi.cab",
                                          "msi.msi",       "msi-signed.msi", "msi-dse.msi"};
  std::vector<std::string> before;
  std::string args;
  for (auto& n : names) {
    args += " " + quote(d.copy(n).string());
    before.push_back(
        tsign::to_hex(tsign::hash(tsign::DigestAlg::sha256, tsign::test::read_all(d.path / n))));
  }
  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --report " +
                     d.q("report.json") + args);
  INFO(r.out);
  REQUIRE(r.code == 0);
  const auto report = read_file(d.path / "report.json");
  INFO(report);
  for (std::size_t i = 0; i < names.size(); ++i) {
    INFO(names[i]);
    auto v = ossl_verify(d.path / names[i]);
    INFO(v.out);
    CHECK(v.code == 0);
    CHECK(has(v.out, "Number of verified signatures: 1"));
    CHECK(has(report, "\"sha256_before\":\"" + before[i] + "\""));
    const auto after = tsign::to_hex(
        tsign::hash(tsign::DigestAlg::sha256, tsign::test::read_all(d.path / names[i])));
    CHECK(has(report, "\"sha256_after\":\"" + after + "\""));
  }
}

TEST_CASE("a cabinet's signature: append-signature nests a second one, replace keeps one",
          "[integration][local][cab]") {
  TempDir d;
  auto f = d.copy("cab-signed.cab", "a.cab");
  auto g = d.copy("cab-signed.cab", "b.cab");
  auto r = run_tsign("sign " + local_key() +
                     " --timestamp-rfc3161=none --append-signature --file-digest SHA512 " +
                     quote(f.string()));
  INFO(r.out);
  REQUIRE(r.code == 0);
  auto v = ossl_verify(f);
  INFO(v.out);
  CHECK(v.code == 0);
  CHECK(has(v.out, "Number of verified signatures: 2"));
  auto t = run_tsign("verify --ca " + fx("root.pem") + " " + quote(f.string()));
  INFO(t.out);
  CHECK(t.code == 0);
  CHECK(has(t.out, "2 signatures"));

  r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none " + quote(g.string()));
  REQUIRE(r.code == 0);
  v = ossl_verify(g);
  CHECK(v.code == 0);
  CHECK(has(v.out, "Number of verified signatures: 1"));
}

TEST_CASE("unsupported and malformed cabinets are refused: exit 1, named, left as they were",
          "[integration][local][cab][bad-input]") {
  TempDir d;
  auto good = d.copy("cab-zip.cab");
  d.copy("cab-next.cab");
  d.copy("cab-reserve-other.cab");
  Bytes cut = tsign::test::read_all(fixture("cab-multi.cab"));
  cut.resize(cut.size() - 1000);
  tsign::test::write_all(d.path / "cut.cab", cut);
  const auto before_next = tsign::test::read_all(d.path / "cab-next.cab");
  const auto before_other = tsign::test::read_all(d.path / "cab-reserve-other.cab");

  auto r =
      run_tsign("sign " + local_key() + " --timestamp-rfc3161=none " + d.q("cab-next.cab") + " " +
                d.q("cab-reserve-other.cab") + " " + d.q("cut.cab") + " " + quote(good.string()));
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(has(r.out, "1 signed, 3 failed"));
  CHECK(has(r.out, "cab-next.cab: the cabinet is part of a multi-cabinet set"));
  CHECK(has(r.out, "cab-reserve-other.cab: the cabinet's reserve areas hold other data"));
  CHECK(has(r.out, "cut.cab: cbCabinet says"));
  CHECK(tsign::test::read_all(d.path / "cab-next.cab") == before_next);
  CHECK(tsign::test::read_all(d.path / "cab-reserve-other.cab") == before_other);
  CHECK(tsign::test::read_all(d.path / "cut.cab") == cut);
  CHECK(ossl_verify(good).code == 0);
  CHECK(listing(d.path) == std::vector<std::string>{"cab-next.cab", "cab-reserve-other.cab",
                                                    "cab-zip.cab", "cut.cab"});
}
