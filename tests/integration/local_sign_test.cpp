// End-to-end through the real binary with a local key: what a user of `tsign sign` sees.
// osslsigncode is the independent judge of every signature.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include <boost/json.hpp>
#include <memory>

#ifndef _WIN32
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

extern char** environ;
#endif

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "harness.hpp"

using namespace it;

TEST_CASE("sign every fixture PE with a local key: osslsigncode and tsign verify agree",
          "[integration][local]") {
  for (std::string digest : {"SHA256", "SHA384", "SHA512"}) {
    TempDir d;
    std::vector<std::string> names = {"pe64.exe", "pe64.dll",         "pe32.exe",
                                      "pe32.dll", "pe64-overlay.exe", "pe64-signed.exe"};
    std::string args;
    for (auto& n : names) args += " " + quote(d.copy(n).string());
    auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --file-digest " + digest +
                       args);
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("6 signed, 0 failed") != std::string::npos);
    for (auto& n : names) {
      INFO(n << " " << digest);
      auto v = ossl_verify(d.path / n);
      INFO(v.out);
      CHECK(v.code == 0);
      auto t = run_tsign("verify --ca " + fx("root.pem") + " " + d.q(n));
      INFO(t.out);
      CHECK(t.code == 0);
      CHECK(t.out.find(digest) != std::string::npos);
    }
    CHECK(listing(d.path) == std::vector<std::string>{"pe32.dll", "pe32.exe", "pe64-overlay.exe",
                                                      "pe64-signed.exe", "pe64.dll", "pe64.exe"});
  }
}

TEST_CASE("append-signature nests a second signature, replace keeps one", "[integration][local]") {
  TempDir d;
  auto f = d.copy("pe64-signed-leaf.exe", "a.exe");
  auto g = d.copy("pe64-signed-leaf.exe", "b.exe");
  auto r = run_tsign("sign " + local_key() +
                     " --timestamp-rfc3161=none --append-signature --file-digest SHA512 " +
                     quote(f.string()));
  INFO(r.out);
  REQUIRE(r.code == 0);
  auto v = ossl_verify(f);
  INFO(v.out);
  CHECK(v.code == 0);
  CHECK(v.out.find("Number of verified signatures: 2") != std::string::npos);
  auto t = run_tsign("verify --ca " + fx("root.pem") + " " + quote(f.string()));
  INFO(t.out);
  CHECK(t.code == 0);
  CHECK(t.out.find("2 signatures") != std::string::npos);

  r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none " + quote(g.string()));
  REQUIRE(r.code == 0);
  v = ossl_verify(g);
  CHECK(v.code == 0);
  CHECK(v.out.find("Number of verified signatures: 1") != std::string::npos);
}

TEST_CASE("PKCS#12 with the password from an environment variable", "[integration][local]") {
  TempDir d;
  auto f = d.copy("pe32.dll");
  auto r =
      sh("TSIGN_TEST_PFX_PASS=test-pass " + tsign_cmd() + " sign --pfx " + fx("leaf.p12") +
         " --pfx-password-env TSIGN_TEST_PFX_PASS --timestamp-rfc3161=none " + quote(f.string()));
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(ossl_verify(f).code == 0);
  CHECK(r.out.find("test-pass") == std::string::npos);
  auto bad =
      sh("TSIGN_TEST_PFX_PASS=wrong " + tsign_cmd() + " sign --pfx " + fx("leaf.p12") +
         " --pfx-password-env TSIGN_TEST_PFX_PASS --timestamp-rfc3161=none " + d.q("pe32.dll"));
  CHECK(bad.code == 2);
}

TEST_CASE("tsign verify rejects a flipped byte in a section, the overlay and the signature",
          "[integration][local]") {
  TempDir d;
  auto f = d.copy("pe64-overlay.exe");
  REQUIRE(
      run_tsign("sign " + local_key() + " --timestamp-rfc3161=none " + quote(f.string())).code ==
      0);
  REQUIRE(run_tsign("verify --ca " + fx("root.pem") + " " + quote(f.string())).code == 0);
  auto signed_bytes = read_file(f);
  auto unsigned_size = fs::file_size(fixture("pe64-overlay.exe"));
  struct Case {
    const char* what;
    std::size_t offset;
  };
  for (auto c :
       {Case{"section", 0x600}, Case{"overlay", static_cast<std::size_t>(unsigned_size - 100)},
        Case{"signature", signed_bytes.size() - 300}}) {
    INFO(c.what);
    auto bad = signed_bytes;
    bad[c.offset] = static_cast<char>(bad[c.offset] ^ 0x01);
    auto g = d.path / (std::string("tampered-") + c.what + ".exe");
    write_file(g, bad);
    auto t = run_tsign("verify --ca " + fx("root.pem") + " " + quote(g.string()));
    INFO(t.out);
    CHECK(t.code == 1);
    CHECK(t.out.find("FAIL") != std::string::npos);
    CHECK(ossl_verify(g).code != 0);
  }
}

TEST_CASE("bad files fail with a clear message and stay byte-for-byte unchanged",
          "[integration][local][bad-input]") {
  TempDir d;
  write_file(d.path / "text.exe", "this is not a program\n");
  auto good = d.copy("pe64.exe");
  auto ro = d.copy("pe32.exe", "readonly.exe");
  fs::permissions(ro, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  auto before_text = read_file(d.path / "text.exe");
  auto before_ro = read_file(ro);
  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none " + d.q("text.exe") + " " +
                     quote(good.string()) + " " + quote(ro.string()));
  INFO(r.out);
  CHECK(r.code == 1);  // some failed, the others were signed
  CHECK(r.out.find("1 signed, 2 failed") != std::string::npos);
  CHECK(r.out.find("read-only") != std::string::npos);
  // Each error line names its file once.
  std::istringstream lines(r.out);
  std::string line;
  int error_lines = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("error: ", 0) != 0 || line.find("text.exe") == std::string::npos) continue;
    ++error_lines;
    INFO(line);
    CHECK(line.find("text.exe") == line.rfind("text.exe"));
    CHECK(line.find("not a supported file format") != std::string::npos);
  }
  CHECK(error_lines == 1);
  CHECK(read_file(d.path / "text.exe") == before_text);
  CHECK(read_file(ro) == before_ro);
  CHECK(ossl_verify(good).code == 0);
  CHECK(listing(d.path) == std::vector<std::string>{"pe64.exe", "readonly.exe", "text.exe"});
}

TEST_CASE("a missing file given explicitly is invalid input: exit 2, nothing signed",
          "[integration][local][bad-input]") {
  TempDir d;
  auto good = d.copy("pe64.exe");
  auto before = read_file(good);
  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none " + quote(good.string()) +
                     " " + d.q("missing.exe"));
  INFO(r.out);
  CHECK(r.code == 2);
  CHECK(r.out.find("missing.exe") != std::string::npos);
  CHECK(r.out.find("no such file") != std::string::npos);
  CHECK(read_file(good) == before);
  CHECK(listing(d.path) == std::vector<std::string>{"pe64.exe"});
}

TEST_CASE("configuration errors exit 2 before any file is touched",
          "[integration][local][bad-input]") {
  TempDir d;
  auto f = d.copy("pe64.exe");
  auto before = read_file(f);
  struct Case {
    std::string args, expect;
  };
  std::vector<Case> cases = {
      {"--key " + fx("unrelated.key") + " --cert " + fx("chain.pem"), "does not match"},
      {"--key " + fx("leaf.key"), "--cert"},
      {local_key() + " --no-such-flag", "--no-such-flag"},
      {local_key() + " --skip-signed=yes", "skip-signed"},
      {local_key() + " --file-digest MD5", "file-digest"},
      {local_key() + " --timeout 0", "timeout"},
      {local_key() + " --files-folder " + d.q("nope"), "nope"},
      {"", "endpoint"},
  };
  for (auto& c : cases) {
    auto r = run_tsign("sign " + c.args + " --timestamp-rfc3161=none " + quote(f.string()));
    INFO(c.args << "\n" << r.out);
    CHECK(r.code == 2);
    CHECK(r.out.find(c.expect) != std::string::npos);
    CHECK(read_file(f) == before);
  }
  TempDir empty;
  auto r = run_tsign("sign " + local_key() + " --files-folder " + empty.q());
  INFO(r.out);
  CHECK(r.code == 2);
  CHECK(r.out.find("no files to sign") != std::string::npos);
}

TEST_CASE("a certificate without the code-signing EKU is refused",
          "[integration][local][bad-input]") {
  TempDir d;
  auto f = d.copy("pe64.exe");
  auto before = read_file(f);
  auto r = run_tsign("sign --key " + fx("leaf-noeku.key") + " --cert " + fx("leaf-noeku.pem") +
                     " --timestamp-rfc3161=none " + quote(f.string()));
  INFO(r.out);
  CHECK(r.code != 0);
  CHECK(r.out.find("code") != std::string::npos);
  CHECK(read_file(f) == before);
}

TEST_CASE("tsign --help lists every environment variable and the credential chain",
          "[integration][local]") {
  for (auto cmd : {"--help", "action --help", "sign --help"}) {
    auto r = run_tsign(cmd);
    INFO(cmd << "\n" << r.out);
    REQUIRE(r.code == 0);
    for (auto var :
         {"AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_AUTHORITY_HOST",
          "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "IDENTITY_HEADER", "GITHUB_OUTPUT", "RUNNER_DEBUG",
          "TSIGN_ALLOWED_HOSTS", "SSL_CERT_FILE", "HTTPS_PROXY", "INPUT_<NAME>"})
      CHECK(r.out.find(var) != std::string::npos);
    CHECK(r.out.find("[sensitive]") != std::string::npos);
  }
  // The chain, in its order, with the input that skips each link.
  auto r = run_tsign("action --help");
  auto at = [&](const char* s) { return r.out.find(s); };
  CHECK(at("1. environment (client secret or certificate)") < at("2. workload identity"));
  CHECK(at("2. workload identity") < at("3. managed identity"));
  CHECK(at("3. managed identity") < at("4. Azure CLI"));
  CHECK(at("4. Azure CLI") != std::string::npos);
  CHECK(at("--exclude-managed-identity-credential") != std::string::npos);
}

TEST_CASE("the debug log names the variables that are set but never a sensitive value",
          "[integration][local]") {
  TempDir d;
  d.copy("pe64.exe", "app.exe");
  auto before = read_file(d.path / "app.exe");
  auto r =
      sh("AZURE_CLIENT_SECRET=secret-value-0451 ACTIONS_ID_TOKEN_REQUEST_TOKEN=gh-token-0451 "
         "AZURE_TENANT_ID=tenant-0451 " +
         tsign_cmd() + " sign --verbose --dry-run " + local_key() + " " + d.q("app.exe"));
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(r.out.find("AZURE_TENANT_ID=tenant-0451") != std::string::npos);
  CHECK(r.out.find("AZURE_CLIENT_SECRET (set, value hidden)") != std::string::npos);
  CHECK(r.out.find("secret-value-0451") == std::string::npos);
  CHECK(r.out.find("gh-token-0451") == std::string::npos);
  CHECK(read_file(d.path / "app.exe") == before);
}

TEST_CASE("folder selection: filter, recursion, depth, dry run, skip-signed, report",
          "[integration][local]") {
  TempDir d;
  d.copy("pe64.exe", "bin/app.exe");
  d.copy("pe64.dll", "bin/core.dll");
  d.copy("pe32.dll", "bin/sub/plugin.dll");
  d.copy("pe32.dll", "bin/sub/deeper/x.dll");
  write_file(d.path / "bin/readme.txt", "text");
  write_file(d.path / "bin/fake.dll", "MZ but not really");
  auto before = read_file(d.path / "bin/app.exe");

  auto dry =
      run_tsign("sign " + local_key() + " --dry-run --files-folder " + d.q("bin") +
                " --files-folder-filter dll,exe --files-folder-recurse --files-folder-depth 1");
  INFO(dry.out);
  CHECK(dry.code == 1);  // fake.dll is reported as not a PE
  CHECK(dry.out.find("plugin.dll") != std::string::npos);
  CHECK(dry.out.find("x.dll") == std::string::npos);  // deeper than depth 1
  CHECK(read_file(d.path / "bin/app.exe") == before);

  auto r =
      run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --files-folder " + d.q("bin") +
                " --files-folder-filter '*.exe, core.dll' --report " + d.q("report.json"));
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("2 signed, 0 failed") != std::string::npos);
  auto report = read_file(d.path / "report.json");
  CHECK(report.find("\"signed\":2") != std::string::npos);
  CHECK(report.find("app.exe") != std::string::npos);
  CHECK(report.find("\"sha256_after\":\"") != std::string::npos);

  // No filter: every supported file, recursively; skip-signed leaves the two signed ones alone.
  auto s = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --skip-signed --ca " +
                     fx("root.pem") + " --files-folder " + d.q("bin") + " --files-folder-recurse");
  INFO(s.out);
  REQUIRE(s.code == 0);
  CHECK(s.out.find("2 signed, 0 failed, 2 skipped") != std::string::npos);
  CHECK(ossl_verify(d.path / "bin/sub/deeper/x.dll").code == 0);
}

TEST_CASE("tsign action: catalog with a missing file, unwritable outputs, awkward names",
          "[integration][local][action]") {
  TempDir d;
  d.copy("pe64.exe", "out/app one.exe");
  d.copy("pe32.dll", "out/ünïcode.dll");
  write_file(d.path / "out/50%,a:b|c<d.exe", "not a program");
  write_file(d.path / "out/files.txt", "app one.exe\nünïcode.dll\nmissing.dll\n50%,a:b|c<d.exe\n");
  auto r = sh("INPUT_FILES_CATALOG=" + d.q("out/files.txt") +
              " INPUT_TIMESTAMP_RFC3161=none INPUT_BATCH_SIZE=10 GITHUB_OUTPUT=/nonexistent/dir/out"
              " GITHUB_STEP_SUMMARY=" +
              d.q("summary.md") + " RUNNER_TEMP=" + d.q() + " " + tsign_cmd() + " action " +
              local_key());
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find("2 signed, 2 failed") != std::string::npos);
  CHECK(r.out.find("missing.dll") != std::string::npos);
  // The failing file's name is escaped in the annotation's file property.
  CHECK(r.out.find("::error file=") != std::string::npos);
  CHECK(r.out.find("50%25%2Ca%3Ab|c<d.exe") != std::string::npos);
  // Outputs could not be written: a warning, and the signing still happened.
  CHECK(r.out.find("::warning::could not write the step outputs") != std::string::npos);
  CHECK(r.out.find("::warning::batch-size has no effect") != std::string::npos);
  CHECK(ossl_verify(d.path / "out/app one.exe").code == 0);
  CHECK(ossl_verify(d.path / "out/ünïcode.dll").code == 0);
  auto summary = read_file(d.path / "summary.md");
  CHECK(summary.find("50%,a:b\\|c&lt;d.exe") != std::string::npos);
  CHECK(fs::exists(d.path / "tsign-report.json"));
}

namespace {
std::string sha256_hex(const std::string& s) {
  return tsign::to_hex(tsign::hash(tsign::DigestAlg::sha256, tsign::as_bytes(s)));
}
}  // namespace

TEST_CASE("a large file: signed, verified, and the report's hashes are the file's",
          "[integration][local]") {
  // Above the size from which the signed copy is hashed on a thread of its own (16 MiB).
  TempDir d;
  auto big = d.copy("pe64.exe", "big.exe");
  std::string overlay(20 * 1024 * 1024 + 3, '\0');
  for (std::size_t i = 0; i < overlay.size(); ++i)
    overlay[i] = static_cast<char>((i * 2654435761u) >> 13);
  write_file(big, read_file(big) + overlay);
  const auto before = sha256_hex(read_file(big));

  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --report " +
                     d.q("report.json") + " " + d.q("big.exe"));
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(ossl_verify(big).code == 0);
  auto report = read_file(d.path / "report.json");
  CHECK(report.find("\"sha256_before\":\"" + before + "\"") != std::string::npos);
  CHECK(report.find("\"sha256_after\":\"" + sha256_hex(read_file(big)) + "\"") !=
        std::string::npos);

  // Signed again: the hash before covers the old signature table too (read after the content
  // the copy was made of), and a small file is hashed the same way without a thread.
  const auto signed_once = sha256_hex(read_file(big));
  auto small = d.copy("pe64-signed-leaf.exe", "small.exe");
  const auto small_before = sha256_hex(read_file(small));
  r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --report " +
                d.q("report2.json") + " " + d.q("big.exe") + " " + d.q("small.exe"));
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(ossl_verify(big).code == 0);
  CHECK(ossl_verify(small).code == 0);
  report = read_file(d.path / "report2.json");
  INFO(report);
  CHECK(report.find("\"sha256_before\":\"" + signed_once + "\"") != std::string::npos);
  CHECK(report.find("\"sha256_after\":\"" + sha256_hex(read_file(big)) + "\"") !=
        std::string::npos);
  CHECK(report.find("\"sha256_before\":\"" + small_before + "\"") != std::string::npos);
  CHECK(report.find("\"sha256_after\":\"" + sha256_hex(read_file(small)) + "\"") !=
        std::string::npos);
}
