// End to end on real PE images (tests/support/make_fixtures.sh): sign with the local key through
// PreparedSignature/assemble, write with SignableFile::write_signed into a file, and let
// `osslsigncode verify` judge the result; authenticode::verify must agree with it.
#include <catch2/catch.hpp>

#include <fstream>

#include "common/error.hpp"
#include "helpers.hpp"

using namespace tsign;
using namespace tsign::test;
using authenticode::SignOptions;

namespace {

class FileOutput : public formats::SignedOutput {
 public:
  explicit FileOutput(const std::filesystem::path& p)
      : out_(p, std::ios::binary | std::ios::trunc) {}
  void write(ByteView data) override {
    out_.write(reinterpret_cast<const char*>(data.data()),
               static_cast<std::streamsize>(data.size()));
    if (!out_) throw std::runtime_error("write failed");
  }

 private:
  std::ofstream out_;
};

// Signs `in` into `out`: replaces any existing signature, or nests into it with `append`.
void sign_pe(const std::filesystem::path& in, const std::filesystem::path& out, signer::Signer& s,
             DigestAlg alg, bool append = false) {
  auto file = formats::open(in);
  SignOptions opts;
  opts.alg = alg;
  opts.description = "tsign test";
  opts.description_url = "https://example.com/";
  Bytes der = sign_digest(s, file->digest(alg), opts);
  if (append) {
    auto existing = file->existing_signature();
    REQUIRE(existing);
    der = authenticode::nest(*existing, der);
  }
  {
    FileOutput o(out);
    file->write_signed(der, o);
  }
}

CommandResult osslsigncode_verify(const std::filesystem::path& p) {
  return run_command("osslsigncode verify -CAfile " + quote(fixture("root.pem")) + " -untrusted " +
                     quote(fixture("intermediate.pem")) + " -in " + quote(p));
}

authenticode::VerifyResult tsign_verify(const std::filesystem::path& p) {
  auto roots = store_of({fixture("root.pem")});
  authenticode::VerifyOptions vo;
  vo.roots = roots.get();
  auto f = formats::open(p);
  return authenticode::verify(*f, vo);
}

void flip(const std::filesystem::path& p, std::uint64_t offset) {
  auto b = read_all(p);
  REQUIRE(offset < b.size());
  b[offset] ^= 0x5A;
  write_all(p, b);
}

}  // namespace

TEST_CASE("signed PE images verify with osslsigncode", "[pe][e2e]") {
  TempDir dir("ac-pe");
  auto s = signer::make_local_key_signer(fixture("leaf.key"), fixture("chain.pem"));
  auto input = GENERATE(as<std::string>{}, "pe64.exe", "pe64.dll", "pe32.exe", "pe32.dll",
                        "pe64-overlay.exe");
  auto alg = GENERATE(DigestAlg::sha256, DigestAlg::sha384, DigestAlg::sha512);
  CAPTURE(input, digest_name(alg));
  auto out = dir / ("signed-" + input);
  sign_pe(fixture(input), out, *s, alg);

  auto r = osslsigncode_verify(out);
  INFO(r.output);
  CHECK(r.exit_code == 0);
  auto v = tsign_verify(out);
  INFO(v.first_problem());
  CHECK(v.ok());
  REQUIRE(v.signatures.size() == 1);
  CHECK(v.signatures[0].alg == alg);
}

TEST_CASE("ECDSA-signed PE verifies with osslsigncode", "[pe][e2e]") {
  TempDir dir("ac-pe-ec");
  auto s = signer::make_local_key_signer(fixture("leaf-ec.key"), fixture("chain-ec.pem"));
  sign_pe(fixture("pe64.exe"), dir / "ec.exe", *s, DigestAlg::sha256);
  auto r = osslsigncode_verify(dir / "ec.exe");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(tsign_verify(dir / "ec.exe").ok());
}

TEST_CASE("replace and append on an already-signed PE", "[pe][e2e]") {
  TempDir dir("ac-pe-nest");
  auto s = signer::make_local_key_signer(fixture("leaf.key"), fixture("chain.pem"));
  auto signed_by_osslsigncode = fixture("pe64-signed-leaf.exe");

  SECTION("replace") {
    sign_pe(signed_by_osslsigncode, dir / "replaced.exe", *s, DigestAlg::sha384);
    auto r = osslsigncode_verify(dir / "replaced.exe");
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.output, "Number of verified signatures: 1"));
    auto v = tsign_verify(dir / "replaced.exe");
    CHECK(v.ok());
    CHECK(v.signatures.size() == 1);
  }
  SECTION("append, twice") {
    sign_pe(signed_by_osslsigncode, dir / "two.exe", *s, DigestAlg::sha512, true);
    auto r = osslsigncode_verify(dir / "two.exe");
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.output, "Number of verified signatures: 2"));
    auto v = tsign_verify(dir / "two.exe");
    INFO(v.first_problem());
    CHECK(v.ok());
    REQUIRE(v.signatures.size() == 2);
    CHECK(v.signatures[1].nested);

    sign_pe(dir / "two.exe", dir / "three.exe", *s, DigestAlg::sha256, true);
    auto r3 = osslsigncode_verify(dir / "three.exe");
    INFO(r3.output);
    CHECK(r3.exit_code == 0);
    CHECK(contains(r3.output, "Number of verified signatures: 3"));
    auto v3 = tsign_verify(dir / "three.exe");
    CHECK(v3.ok());
    CHECK(v3.signatures.size() == 3);
  }
}

TEST_CASE("a time-stamped PE verifies with osslsigncode", "[pe][e2e][timestamp]") {
  TempDir dir("ac-pe-ts");
  LocalTsa tsa(dir.path());
  auto s = signer::make_local_key_signer(fixture("leaf.key"), fixture("chain.pem"));
  auto file = formats::open(fixture("pe64.exe"));
  Bytes der = sign_digest(*s, file->digest(DigestAlg::sha256), {});
  der = authenticode::add_timestamp(
      der, tsa.token_for(hash(DigestAlg::sha256, authenticode::signature_value(der))));
  {
    FileOutput o(dir / "ts.exe");
    file->write_signed(der, o);
  }
  auto r =
      run_command("osslsigncode verify -CAfile " + quote(fixture("root.pem")) + " -TSA-CAfile " +
                  quote(fixture("root.pem")) + " -in " + quote(dir / "ts.exe"));
  INFO(r.output);
  CHECK(r.exit_code == 0);
  auto v = tsign_verify(dir / "ts.exe");
  INFO(v.first_problem());
  CHECK(v.ok());
  CHECK(v.signatures[0].timestamped);
}

TEST_CASE("one flipped byte makes verification fail", "[pe][e2e]") {
  TempDir dir("ac-pe-flip");
  auto s = signer::make_local_key_signer(fixture("leaf.key"), fixture("chain.pem"));
  auto signed_file = dir / "signed.exe";
  sign_pe(fixture("pe64-overlay.exe"), signed_file, *s, DigestAlg::sha256);
  REQUIRE(osslsigncode_verify(signed_file).exit_code == 0);
  REQUIRE(tsign_verify(signed_file).ok());

  auto original = read_all(fixture("pe64-overlay.exe"));
  auto signed_bytes = read_all(signed_file);
  Bytes sig;
  {
    auto f = formats::open(signed_file);
    sig = authenticode::signature_value(*f->existing_signature());
  }
  auto sig_pos = std::search(signed_bytes.begin(), signed_bytes.end(), sig.begin(), sig.end());
  REQUIRE(sig_pos != signed_bytes.end());
  // Plain numbers: GENERATE_COPY copies its captures, so no iterator may cross into it.
  const std::uint64_t sig_offset = static_cast<std::uint64_t>(sig_pos - signed_bytes.begin()) + 17;
  const std::uint64_t overlay_offset = original.size() - 100;

  struct Where {
    const char* what;
    std::uint64_t offset;
  };
  auto where = GENERATE_COPY(values<Where>({
      {"a section", 0x600},             // inside .text
      {"the overlay", overlay_offset},  // the 12345 bytes after the sections
      {"the signature", sig_offset},    // inside encryptedDigest
  }));
  CAPTURE(where.what);
  auto tampered = dir / "tampered.exe";
  write_all(tampered, signed_bytes);
  flip(tampered, where.offset);

  CHECK(osslsigncode_verify(tampered).exit_code != 0);
  bool tsign_rejects = false;
  try {
    tsign_rejects = !tsign_verify(tampered).ok();
  } catch (const FileError&) {
    tsign_rejects = true;  // the format itself may refuse a damaged image
  }
  CHECK(tsign_rejects);
}

TEST_CASE("verify accepts files signed by osslsigncode", "[pe][e2e]") {
  auto v = tsign_verify(fixture("pe64-signed-leaf.exe"));
  INFO(v.first_problem());
  CHECK(v.ok());
  REQUIRE(v.signatures.size() == 1);
  CHECK(contains(v.signatures[0].subject, "CN=tsign test leaf"));

  // Signed by a certificate that does not chain to the given root: verified, but not trusted.
  auto w = tsign_verify(fixture("pe64-signed.exe"));
  CHECK_FALSE(w.ok());
  CHECK(contains(w.first_problem(), "not trusted"));
}

TEST_CASE("an unsigned PE reports no signature", "[pe][e2e]") {
  auto v = tsign_verify(fixture("pe64.exe"));
  CHECK_FALSE(v.ok());
  CHECK(v.first_problem() == "no signature");
}

TEST_CASE("two certificate-table entries: the first decides, the second is reported", "[pe][e2e]") {
  TempDir tmp("two-entries");
  write_all(tmp / "two.exe", two_entry_pe());
  auto v = tsign_verify(tmp / "two.exe");
  INFO(v.first_problem());
  CHECK(v.ok());
  CHECK(v.primary_count() == 1);
  REQUIRE(v.signatures.size() == 2);
  CHECK(v.signatures[0].entry == 0);
  CHECK(contains(v.signatures[0].subject, "CN=tsign test leaf"));
  // pe64-signed.exe's self-signed signature: sound, but not trusted by the test root.
  CHECK(v.signatures[1].entry == 1);
  REQUIRE(v.signatures[1].problems.size() == 1);
  CHECK(contains(v.signatures[1].problems[0], "not trusted"));
}

TEST_CASE("Debian's Microsoft-signed shim: both entries and their time-stamps verify",
          "[pe][e2e][debian]") {
  if (!debian_efi_problem().empty()) {
    WARN(debian_efi_problem());
    return;
  }
  // Microsoft's roots are not in the test's trust store: everything but the chain is checked,
  // the time-stamp tokens (CMS with an attribute certificate) included.
  for (const char* name : {"shimx64.efi.signed", "grubx64.efi.signed"}) {
    INFO(name);
    auto f = formats::open(debian_efi(name));
    authenticode::VerifyOptions vo;
    vo.check_trust = false;
    auto v = authenticode::verify(*f, vo);
    for (const auto& s : v.signatures) {
      INFO(s.subject << " entry " << s.entry);
      CHECK(s.problems == std::vector<std::string>{});
    }
    CHECK(v.ok());
    CHECK(v.signatures.size() == pe_cert_entries(read_all(debian_efi(name))).size());
    if (std::string(name) == "shimx64.efi.signed") {
      CHECK(contains(v.signatures[0].subject, "Microsoft"));
      CHECK(v.signatures[0].timestamped);
    }
  }
}
