// Windows' own judge: every PE tsign signs must pass WinVerifyTrust (Authenticode policy, run
// under wine through wintrust.hpp), and one changed byte must fail it — beside osslsigncode, so
// two independent implementations agree. What wine's WinVerifyTrust checks: docs/judges.md.
#include <catch2/catch.hpp>

#ifndef _WIN32
#include "emulator_process.hpp"  // POSIX: the emulator runs as a child process
#endif
#include "support/catalog.hpp"
#include "support/fixtures.hpp"
#include "wintrust.hpp"

using namespace it;
using Bytes = std::vector<std::uint8_t>;

namespace {

// A byte inside the first section's raw data (its file offset), read from the headers.
std::size_t first_section_byte(const Bytes& b) {
  const std::size_t e = tsign::test::pe_get32(b, 0x3C);
  const std::size_t optional_size = b.at(e + 20) | (b.at(e + 21) << 8);
  const std::size_t first_section = e + 24 + optional_size;
  return tsign::test::pe_get32(b, first_section + 20) + 16;  // PointerToRawData + 16
}

fs::path flipped(const fs::path& file, std::size_t offset, const std::string& as) {
  Bytes b = tsign::test::read_all(file);
  b.at(offset) ^= 0x01;
  fs::path out = file.parent_path() / as;
  tsign::test::write_all(out, b);
  return out;
}

Proc sign(const std::string& args, const std::vector<fs::path>& files) {
  std::string cmd = "sign " + local_key() + " --timestamp-rfc3161=none " + args;
  for (auto& f : files) cmd += " " + quote(f);
  return run_tsign(cmd);
}

}  // namespace

TEST_CASE("WinVerifyTrust trusts tsign-signed PE32 and PE32+: SHA-256/384/512, replaced, nested",
          "[integration][wintrust]") {
  WINTRUST_OR_SKIP();
  TempDir d;
  std::vector<fs::path> all;
  for (std::string digest : {"SHA256", "SHA384", "SHA512"}) {
    std::vector<fs::path> files;
    for (auto n : {"pe64.exe", "pe64.dll", "pe32.exe", "pe32.dll", "pe64-overlay.exe"})
      files.push_back(d.copy(n, digest + "/" + n));
    auto r = sign("--file-digest " + digest, files);
    INFO(r.out);
    REQUIRE(r.code == 0);
    all.insert(all.end(), files.begin(), files.end());
  }
  // Replace: a file signed by another tool (osslsigncode, a self-signed certificate).
  auto replaced = d.copy("pe64-signed.exe", "replaced.exe");
  // Nested: a second signature appended to osslsigncode's and to tsign's own.
  auto nested_other = d.copy("pe64-signed-leaf.exe", "nested-other.exe");
  auto nested_own = d.copy("pe32.exe", "nested-own.exe");
  REQUIRE(sign("", {replaced, nested_own}).code == 0);
  auto r = sign("--append-signature --file-digest SHA512", {nested_other, nested_own});
  INFO(r.out);
  REQUIRE(r.code == 0);
  REQUIRE(ossl_verify(nested_own).out.find("Number of verified signatures: 2") !=
          std::string::npos);
  all.insert(all.end(), {replaced, nested_other, nested_own});

  auto results = wintrust_verify(all);
  for (std::size_t i = 0; i < all.size(); ++i) {
    INFO(all[i]);
    CHECK(results[i] == kTrusted);
  }
}

TEST_CASE("WinVerifyTrust rejects one changed byte in a section, the overlay or the signature",
          "[integration][wintrust]") {
  WINTRUST_OR_SKIP();
  TempDir d;
  auto pe64 = d.copy("pe64.exe");
  auto pe32 = d.copy("pe32.dll");
  auto overlay = d.copy("pe64-overlay.exe");
  auto nested = d.copy("pe64-signed-leaf.exe", "nested.exe");
  REQUIRE(sign("--file-digest SHA256", {pe64, pe32, overlay}).code == 0);
  REQUIRE(sign("--append-signature --file-digest SHA256", {nested}).code == 0);

  struct Case {
    fs::path file;
    HResult want;
  };
  std::vector<Case> cases;
  for (auto& f : {pe64, pe32, overlay, nested}) {
    const Bytes b = tsign::test::read_all(f);
    cases.push_back(
        {flipped(f, first_section_byte(b), "section-" + f.filename().string()), kBadDigest});
  }
  const auto unsigned_size = fs::file_size(fixture("pe64-overlay.exe"));
  cases.push_back({flipped(overlay, unsigned_size - 100, "overlay.exe"), kBadDigest});
  // The signer's RSA-3072 signature value (OCTET STRING of 384 bytes), the last one in a
  // signature without a time-stamp.
  const Bytes s = tsign::test::read_all(pe64);
  const Bytes tag = {0x04, 0x82, 0x01, 0x80};
  auto at = std::find_end(s.begin(), s.end(), tag.begin(), tag.end());
  REQUIRE(at != s.end());
  cases.push_back(
      {flipped(pe64, static_cast<std::size_t>(at - s.begin()) + 4 + 100, "signature.exe"),
       kCertSignature});
  cases.push_back({d.copy("pe64.exe", "unsigned.exe"), kNoSignature});

  std::vector<fs::path> files;
  for (auto& c : cases) files.push_back(c.file);
  auto results = wintrust_verify(files);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO(cases[i].file);
    CHECK(results[i] == cases[i].want);
    if (cases[i].want != kNoSignature) CHECK(ossl_verify(cases[i].file).code != 0);
  }
}

TEST_CASE("where wine runs the trust step (a SHA-1 certificate): untrusted until its root is given",
          "[integration][wintrust]") {
  WINTRUST_OR_SKIP();
  // wine 8.0 skips the Authenticode chain policy when its signer certificate is signed with
  // SHA-256 (docs/judges.md): a certificate signed with SHA-1 shows the trust step can fail.
  TempDir d;
  auto key = d.path / "sha1.key";
  auto cert = d.path / "sha1.pem";
  auto g = sh("openssl req -x509 -newkey rsa:2048 -nodes -sha1 -days 30 -keyout " + quote(key) +
              " -out " + quote(cert) +
              " -subj '/CN=tsign wintrust judge SHA-1 root' -addext extendedKeyUsage=codeSigning" +
              " -addext basicConstraints=critical,CA:FALSE");
  INFO(g.out);
  REQUIRE(g.code == 0);
  // Signed by osslsigncode: this case judges the judge, not tsign.
  auto f = d.path / "sha1.exe";
  auto r = sh("osslsigncode sign -h sha256 -certs " + quote(cert) + " -key " + quote(key) +
              " -in " + fx("pe64.exe") + " -out " + quote(f));
  INFO(r.out);
  REQUIRE(r.code == 0);
  // A fresh root each run, so the prefix never trusts it before it is given.
  CHECK(wintrust_verify(f, {}) == kUntrustedRoot);
  CHECK(wintrust_verify(f, {cert}) == kTrusted);
}

#ifndef _WIN32
// What `tsign action` signs in one folder with no filter (files chosen by content), every file
// then judged twice: PE images, Windows Installer packages (one already signed by osslsigncode),
// cabinets (one folder, several folders) and a catalog. A new format adds its fixture here.
constexpr const char* kJudged[] = {
    "pe64.exe", "pe64.dll",       "pe32.exe",    "pe32.dll",      "pe64-overlay.exe",
    "msi.msi",  "msi-signed.msi", "cab-zip.cab", "cab-multi.cab",
};

TEST_CASE(
    "tsign action through the emulator signs a folder of PE, MSI, CAB and catalog files: "
    "osslsigncode and WinVerifyTrust accept every file",
    "[integration][wintrust][cloud]") {
  WINTRUST_OR_SKIP();
  TempDir d;
  Emulator emu(d.path / "emu");
  std::vector<fs::path> files;
  for (const char* name : kJudged) files.push_back(d.copy(name, std::string("bin/") + name));
  files.push_back(d.path / "bin" / "drivers.cat");
  tsign::test::write_all(files.back(), tsign::test::make_catalog());
  write_file(d.path / "bin" / "notes.txt", "not signed, not listed");
  auto r = sh(emu.action_env(d.path / "bin", "") + "RUNNER_TEMP=" + d.q() +
              " GITHUB_OUTPUT=" + d.q("out") + " " + tsign_cmd() + " action");
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(read_file(d.path / "out").find("signed-count=" + std::to_string(files.size())) !=
        std::string::npos);
  auto results = wintrust_verify(
      files, {emu.var("TSIGN_EMULATOR_CODESIGN_ROOT"), emu.var("TSIGN_EMULATOR_TSA_ROOT")});
  for (std::size_t i = 0; i < files.size(); ++i) {
    INFO(files[i]);
    auto v = emu.verify(files[i]);
    INFO(v.out);
    CHECK(v.code == 0);
    CHECK(v.out.find("Timestamp") != std::string::npos);
    CHECK(results[i] == kTrusted);
  }
}
#endif
