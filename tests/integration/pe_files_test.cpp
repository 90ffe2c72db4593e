// PE files as they come from the world, through the real binary: truncated images (a failed
// build), certificate tables holding several WIN_CERTIFICATE entries (Microsoft's shimx64.efi),
// and signatures made by other tools (Debian's signed EFI packages, fetched at test time).
//
// osslsigncode 2.9 refuses any table of more than one entry (it compares each entry's length
// with the whole table), so it judges such files on a copy cut to their first entry: the table is
// outside the Authenticode digest, so the signatures there verify exactly as in the original.
#include <catch2/catch.hpp>

#include "harness.hpp"

using namespace it;
using tsign::test::pe_cert_entries;
using tsign::test::pe_with_cert_entries;
using Bytes = std::vector<std::uint8_t>;

namespace {

bool has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// `file` cut to its first WIN_CERTIFICATE entry, written to `out`.
fs::path first_entry_only(const fs::path& file, const fs::path& out) {
  const Bytes b = tsign::test::read_all(file);
  tsign::test::write_all(out, pe_with_cert_entries(b, {pe_cert_entries(b).at(0)}));
  return out;
}

}  // namespace

TEST_CASE("a truncated PE is refused: exit 1, the section and offsets named, the file unchanged",
          "[integration][local][bad-input]") {
  TempDir d;
  auto good = d.copy("pe64.exe");
  Bytes cut = tsign::test::read_all(fixture("pe32.exe"));
  cut.resize(cut.size() - 100);  // the last section's raw data now ends beyond the file
  tsign::test::write_all(d.path / "cut.exe", cut);
  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none " + d.q("cut.exe") + " " +
                     quote(good.string()));
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(has(r.out, "1 signed, 1 failed"));
  CHECK(has(r.out, "cut.exe: the file is truncated: section \""));
  CHECK(has(r.out, "but the file ends at 0x"));
  CHECK(tsign::test::read_all(d.path / "cut.exe") == cut);
  CHECK(ossl_verify(good).code == 0);
  CHECK(listing(d.path) == std::vector<std::string>{"cut.exe", "pe64.exe"});
}

TEST_CASE("several WIN_CERTIFICATE entries: verify checks the first and reports the others",
          "[integration][local]") {
  TempDir d;
  const Bytes two = tsign::test::two_entry_pe();
  const auto entries = pe_cert_entries(two);
  REQUIRE(entries.size() == 2);
  tsign::test::write_all(d.path / "two.exe", two);
  // The primary is signed by the test leaf (trusted with root.pem); the second entry by a
  // self-signed certificate, which is reported but does not decide (Windows checks the first).
  auto v = run_tsign("verify --ca " + fx("root.pem") + " " + d.q("two.exe"));
  INFO(v.out);
  CHECK(v.code == 0);
  CHECK(has(v.out, "OK    "));
  CHECK(has(v.out, "tsign test leaf"));
  CHECK(has(v.out, "certificate-table entry 2"));
  CHECK(has(v.out, "the certificate chain is not trusted"));
  CHECK(tsign::test::read_all(d.path / "two.exe") == two);
}

TEST_CASE("several WIN_CERTIFICATE entries: append nests and keeps the others, replace drops them",
          "[integration][local]") {
  TempDir d;
  const Bytes two = tsign::test::two_entry_pe();
  const auto entries = pe_cert_entries(two);
  tsign::test::write_all(d.path / "append.exe", two);
  tsign::test::write_all(d.path / "replace.exe", two);

  auto a = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --append-signature " +
                     d.q("append.exe"));
  INFO(a.out);
  REQUIRE(a.code == 0);
  const auto after = pe_cert_entries(tsign::test::read_all(d.path / "append.exe"));
  REQUIRE(after.size() == 2);
  CHECK(after[1] == entries[1]);  // the other entry, byte for byte
  auto o = ossl_verify(first_entry_only(d.path / "append.exe", d.path / "append-first.exe"));
  INFO(o.out);
  CHECK(o.code == 0);
  CHECK(has(o.out, "Number of verified signatures: 2"));
  auto t = run_tsign("verify --ca " + fx("root.pem") + " " + d.q("append.exe"));
  INFO(t.out);
  CHECK(t.code == 0);
  CHECK(has(t.out, "2 signatures"));
  CHECK(has(t.out, "certificate-table entry 2"));

  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none " + d.q("replace.exe"));
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(pe_cert_entries(tsign::test::read_all(d.path / "replace.exe")).size() == 1);
  auto o2 = ossl_verify(d.path / "replace.exe");
  INFO(o2.out);
  CHECK(o2.code == 0);
  CHECK(has(o2.out, "Number of verified signatures: 1"));
  CHECK(listing(d.path) ==
        std::vector<std::string>{"append-first.exe", "append.exe", "replace.exe"});
}

TEST_CASE("Debian's signed shim and GRUB: verified, and signed by append and by replace",
          "[integration][local][debian]") {
  if (!tsign::test::debian_efi_problem().empty()) {
    WARN(tsign::test::debian_efi_problem());
    return;
  }
  for (std::string name : {"shimx64.efi.signed", "grubx64.efi.signed"}) {
    INFO(name);
    TempDir d;
    const Bytes original = tsign::test::read_all(tsign::test::debian_efi(name));
    const auto entries = pe_cert_entries(original);
    tsign::test::write_all(d.path / name, original);

    // Microsoft's and Debian's roots are not in the trust store here, so trust is the only
    // thing that may fail: the digest, the signed attributes, the signature and the time-stamp
    // token hold (the checks come in that order and the first failure is the one printed).
    auto v = run_tsign("verify " + d.q(name));
    INFO(v.out);
    CHECK_FALSE(has(v.out, "CVE-2013-3900"));
    if (v.code != 0) CHECK(has(v.out, "not trusted"));
    if (entries.size() > 1) CHECK(has(v.out, "certificate-table entry 2"));

    tsign::test::write_all(d.path / "append.efi", original);
    auto a = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --append-signature " +
                       d.q("append.efi"));
    INFO(a.out);
    REQUIRE(a.code == 0);
    const Bytes appended = tsign::test::read_all(d.path / "append.efi");
    const auto after = pe_cert_entries(appended);
    REQUIRE(after.size() == entries.size());
    for (std::size_t i = 1; i < entries.size(); ++i) CHECK(after[i] == entries[i]);
    // The original signer's signature is still the primary, ours nested in it: osslsigncode
    // verifies both digests and signatures; only the original signer's chain is unknown here.
    auto o = ossl_verify(first_entry_only(d.path / "append.efi", d.path / "append-first.efi"));
    INFO(o.out);
    CHECK(has(o.out, "Signature Index: 1"));
    CHECK(has(o.out, "Subject: /CN=tsign test leaf"));
    CHECK(has(o.out, "Signature verification: ok"));
    CHECK_FALSE(has(o.out, "MISMATCH"));

    tsign::test::write_all(d.path / "replace.efi", original);
    auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none " + d.q("replace.efi"));
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(pe_cert_entries(tsign::test::read_all(d.path / "replace.efi")).size() == 1);
    auto o2 = ossl_verify(d.path / "replace.efi");
    INFO(o2.out);
    CHECK(o2.code == 0);
    CHECK(tsign::test::read_all(d.path / name) == original);
  }
}
