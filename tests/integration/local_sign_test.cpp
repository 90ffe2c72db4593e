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
    auto r =
        run_tsign("sign " + local_key() + " --timestamp-rfc3161= --file-digest " + digest + args);
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
                     " --timestamp-rfc3161= --append-signature --file-digest SHA512 " +
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

  r = run_tsign("sign " + local_key() + " --timestamp-rfc3161= " + quote(g.string()));
  REQUIRE(r.code == 0);
  v = ossl_verify(g);
  CHECK(v.code == 0);
  CHECK(v.out.find("Number of verified signatures: 1") != std::string::npos);
}

TEST_CASE("PKCS#12 with the password from an environment variable", "[integration][local]") {
  TempDir d;
  auto f = d.copy("pe32.dll");
  auto r = sh("TSIGN_TEST_PFX_PASS=test-pass " + tsign_cmd() + " sign --pfx " + fx("leaf.p12") +
              " --pfx-password-env TSIGN_TEST_PFX_PASS --timestamp-rfc3161= " + quote(f.string()));
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(ossl_verify(f).code == 0);
  CHECK(r.out.find("test-pass") == std::string::npos);
  auto bad = sh("TSIGN_TEST_PFX_PASS=wrong " + tsign_cmd() + " sign --pfx " + fx("leaf.p12") +
                " --pfx-password-env TSIGN_TEST_PFX_PASS --timestamp-rfc3161= " + d.q("pe32.dll"));
  CHECK(bad.code == 2);
}

TEST_CASE("tsign verify rejects a flipped byte in a section, the overlay and the signature",
          "[integration][local]") {
  TempDir d;
  auto f = d.copy("pe64-overlay.exe");
  REQUIRE(run_tsign("sign " + local_key() + " --timestamp-rfc3161= " + quote(f.string())).code ==
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
  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161= " + d.q("text.exe") + " " +
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
  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161= " + quote(good.string()) + " " +
                     d.q("missing.exe"));
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
    auto r = run_tsign("sign " + c.args + " --timestamp-rfc3161= " + quote(f.string()));
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
                     " --timestamp-rfc3161= " + quote(f.string()));
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

  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161= --files-folder " + d.q("bin") +
                     " --files-folder-filter '*.exe, core.dll' --report " + d.q("report.json"));
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("2 signed, 0 failed") != std::string::npos);
  auto report = read_file(d.path / "report.json");
  CHECK(report.find("\"signed\":2") != std::string::npos);
  CHECK(report.find("app.exe") != std::string::npos);
  CHECK(report.find("\"sha256_after\":\"") != std::string::npos);

  // No filter: every supported file, recursively; skip-signed leaves the two signed ones alone.
  auto s = run_tsign("sign " + local_key() + " --timestamp-rfc3161= --skip-signed --ca " +
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
              " INPUT_TIMESTAMP_RFC3161= INPUT_BATCH_SIZE=10 GITHUB_OUTPUT=/nonexistent/dir/out"
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

  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161= --report " +
                     d.q("report.json") + " " + d.q("big.exe"));
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(ossl_verify(big).code == 0);
  auto report = read_file(d.path / "report.json");
  CHECK(report.find("\"sha256_before\":\"" + before + "\"") != std::string::npos);
  CHECK(report.find("\"sha256_after\":\"" + sha256_hex(read_file(big)) + "\"") !=
        std::string::npos);
}

namespace {
// Symbolic links, FIFOs and devices are POSIX things: these cases do not run when the binary is
// tsign.exe under wine (scripts/test-windows), which sees a link as whatever wine makes of it.
bool posix_binary() {
  const char* o = std::getenv("TSIGN_TEST_BINARY");
  return !o || std::string(o).find(".exe") == std::string::npos;
}

boost::json::object report_entry(const boost::json::value& report, const std::string& name_end) {
  for (auto& f : report.at("files").as_array()) {
    std::string path(f.at("path").as_string());
    if (path.size() >= name_end.size() &&
        path.compare(path.size() - name_end.size(), name_end.size(), name_end) == 0)
      return f.as_object();
  }
  return {};
}

bool ends_with(const boost::json::value& v, const std::string& end) {
  if (!v.is_string()) return false;
  std::string s(v.as_string());
  return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
}
}  // namespace

TEST_CASE("folder mode: a link's target is signed once in place, every link stays a link",
          "[integration][local][links]") {
  if (!posix_binary()) return;
  TempDir d;
  auto real = d.copy("pe64.exe", "bin/real.exe");
  fs::create_symlink("real.exe", d.path / "bin/a_link.exe");
  fs::create_directories(d.path / "bin/sub");
  fs::create_symlink("../real.exe", d.path / "bin/sub/z_link.exe");
  // A link leading outside the folder: not followed, listed as skipped with the reason.
  auto outside = d.copy("pe32.exe", "outside.exe");
  fs::create_symlink("../outside.exe", d.path / "bin/out_link.exe");
  auto outside_before = read_file(outside);

  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161= --files-folder " + d.q("bin") +
                     " --files-folder-recurse --report " + d.q("report.json"));
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("1 signed, 0 failed, 1 skipped") != std::string::npos);
  CHECK(fs::is_symlink(d.path / "bin/a_link.exe"));
  CHECK(fs::read_symlink(d.path / "bin/a_link.exe") == "real.exe");
  CHECK(fs::is_symlink(d.path / "bin/sub/z_link.exe"));
  CHECK(fs::is_symlink(d.path / "bin/out_link.exe"));
  CHECK_FALSE(fs::is_symlink(real));
  auto v = ossl_verify(real);
  INFO(v.out);
  CHECK(v.code == 0);
  CHECK(read_file(outside) == outside_before);
  CHECK(listing(d.path / "bin") == std::vector<std::string>{"a_link.exe", "out_link.exe",
                                                            "real.exe", "sub", "sub/z_link.exe"});

  auto report = boost::json::parse(read_file(d.path / "report.json"));
  CHECK(report.at("totals").at("selected").as_int64() == 2);
  CHECK(report.at("totals").at("signed").as_int64() == 1);
  auto signed_entry = report_entry(report, "/bin/real.exe");
  REQUIRE(!signed_entry.empty());
  CHECK(signed_entry.at("status").as_string() == "signed");
  CHECK(ends_with(signed_entry.at("target"), "/bin/real.exe"));
  auto& also = signed_entry.at("also_named").as_array();
  REQUIRE(also.size() == 2);
  CHECK(ends_with(also[0], "/bin/a_link.exe"));
  CHECK(ends_with(also[1], "/bin/sub/z_link.exe"));
  auto skipped = report_entry(report, "/bin/out_link.exe");
  REQUIRE(!skipped.empty());
  CHECK(skipped.at("status").as_string() == "skipped");
  CHECK(ends_with(skipped.at("target"), "/outside.exe"));
  CHECK(std::string(skipped.at("note").as_string()).find("outside the folder") !=
        std::string::npos);
}

TEST_CASE("files and files-catalog: a link is signed through, kept, and named with its target",
          "[integration][local][links]") {
  if (!posix_binary()) return;
  TempDir d;
  // `files` naming only the link: the target is signed, the link stays.
  auto real = d.copy("pe64.dll", "lib/real.dll");
  fs::create_symlink("lib/real.dll", d.path / "link.dll");
  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161= --report " + d.q("r1.json") +
                     " " + d.q("link.dll"));
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(fs::is_symlink(d.path / "link.dll"));
  CHECK(ossl_verify(real).code == 0);
  CHECK(r.out.find("link.dll -> ") != std::string::npos);
  auto r1 = boost::json::parse(read_file(d.path / "r1.json"));
  auto e1 = report_entry(r1, "/link.dll");
  REQUIRE(!e1.empty());
  CHECK(e1.at("status").as_string() == "signed");
  CHECK(ends_with(e1.at("target"), "/lib/real.dll"));

  // A catalog listing both the link and its target: one signature, both names in the report.
  auto real2 = d.copy("pe32.dll", "cat/real.dll");
  fs::create_symlink("real.dll", d.path / "cat/link.dll");
  write_file(d.path / "cat/files.txt", "link.dll\nreal.dll\n");
  auto c = run_tsign("sign " + local_key() + " --timestamp-rfc3161= --files-catalog " +
                     d.q("cat/files.txt") + " --report " + d.q("r2.json"));
  INFO(c.out);
  REQUIRE(c.code == 0);
  CHECK(c.out.find("1 signed, 0 failed, 0 skipped") != std::string::npos);
  CHECK(fs::is_symlink(d.path / "cat/link.dll"));
  CHECK(ossl_verify(real2).code == 0);
  auto r2 = boost::json::parse(read_file(d.path / "r2.json"));
  CHECK(r2.at("totals").at("selected").as_int64() == 1);
  auto e2 = report_entry(r2, "/cat/real.dll");
  REQUIRE(!e2.empty());
  REQUIRE(e2.at("also_named").as_array().size() == 1);
  CHECK(ends_with(e2.at("also_named").as_array()[0], "/cat/link.dll"));
}

TEST_CASE("files-catalog: a FIFO, a device or a huge file is refused at once with exit 2",
          "[integration][local][bad-input]") {
  if (!posix_binary()) return;
  TempDir d;
  auto f = d.copy("pe64.exe");
  auto before = read_file(f);
  REQUIRE(sh("mkfifo " + d.q("fifo.txt")).code == 0);
  auto big = d.path / "big.txt";
  { std::ofstream(big).put('\n'); }
  fs::resize_file(big, 16 * 1024 * 1024 + 1);  // sparse: costs no disk
  struct Case {
    std::string catalog, expect;
  };
  for (auto& c : {Case{(d.path / "fifo.txt").string(), "not a regular file"},
                  Case{"/dev/zero", "not a regular file"}, Case{big.string(), "16 MiB"}}) {
    // `timeout` turns a hang (a FIFO opened for reading waits for a writer) into a failure.
    auto r = sh("timeout 60 " + tsign_cmd() + " sign " + local_key() +
                " --timestamp-rfc3161= --files-catalog " + quote(c.catalog));
    INFO(c.catalog << "\n" << r.out);
    CHECK(r.code == 2);
    CHECK(r.out.find("files-catalog") != std::string::npos);
    CHECK(r.out.find(c.catalog) != std::string::npos);
    CHECK(r.out.find(c.expect) != std::string::npos);
  }
  CHECK(read_file(f) == before);
}

TEST_CASE(
    "tsign action: failed rows keep their size, names render in the Failures list, "
    "a report that cannot be written is said so",
    "[integration][local][action]") {
  TempDir d;
  d.copy("pe64.exe", "out/good.exe");
  std::string junk(3000, 'x');  // 2.9 KiB, not a program
  write_file(d.path / "out/my_tool[v2].exe", junk);
  auto r = sh("INPUT_FILES_FOLDER=" + d.q("out") + " INPUT_FILES_FOLDER_FILTER=exe" +
              " INPUT_TIMESTAMP_RFC3161= GITHUB_STEP_SUMMARY=" + d.q("summary.md") +
              " RUNNER_TEMP=" + d.q("no/such/dir") + " " + tsign_cmd() + " action " + local_key());
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find("1 signed, 1 failed") != std::string::npos);
  CHECK(r.out.find("could not be written") != std::string::npos);
  auto summary = read_file(d.path / "summary.md");
  INFO(summary);
  CHECK(summary.find("| 2.9 KiB | failed |") != std::string::npos);
  // Inside a code span nothing is unescaped: the name appears as it is, without backslashes.
  CHECK(summary.find("my_tool[v2].exe`: not a supported file format") != std::string::npos);
  auto failures = summary.find("### Failures");
  REQUIRE(failures != std::string::npos);
  CHECK(summary.find("my\\_tool", failures) == std::string::npos);
  CHECK(summary.find("could not be written") != std::string::npos);
}
// ---- The write path: long names, no debris, tsign's own temporaries (issue 12, items 6, 7) ----

TEST_CASE("names of 250 and 255 bytes sign and verify, nothing left beside them",
          "[integration][local][write]") {
  // 255 bytes is the longest name ext4, XFS, btrfs and APFS allow: the temporary copy written
  // beside such a file must not be named after it plus a suffix.
  TempDir d;
  const std::string n250 = std::string(246, 'a') + ".exe";
  const std::string n255 = std::string(251, 'b') + ".dll";
  REQUIRE(n250.size() == 250);
  REQUIRE(n255.size() == 255);
  auto a = d.copy("pe64.exe", n250);
  auto b = d.copy("pe32.dll", n255);
  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161= " + quote(a.string()) + " " +
                     quote(b.string()));
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(r.out.find("2 signed, 0 failed") != std::string::npos);
  CHECK(ossl_verify(a).code == 0);
  CHECK(ossl_verify(b).code == 0);
  CHECK(listing(d.path) == std::vector<std::string>{n250, n255});
}

TEST_CASE("a stale temporary of tsign in a folder is neither selected nor signed, and is warned of",
          "[integration][local][write]") {
  TempDir d;
  auto app = d.copy("pe64.exe", "bin/app.exe");
  // A half-written copy left by a killed run of an older tsign: a PE by content (its headers
  // were written first), so "every supported file" would otherwise take it.
  auto stale = d.copy("pe64.exe", "bin/app.exe.tsign-ab12cd34ef56.tmp");
  auto hidden = d.copy("pe32.dll", "bin/.tsign-0123456789ab.tmp");
  const auto stale_before = read_file(stale), hidden_before = read_file(hidden);
  for (std::string filter : {"", " --files-folder-filter '*'"}) {
    INFO("filter:" << filter);
    auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161= --files-folder " +
                       d.q("bin") + filter);
    INFO(r.out);
    CHECK(r.code == 0);
    CHECK(r.out.find("1 signed, 0 failed") != std::string::npos);
    CHECK(r.out.find("app.exe.tsign-ab12cd34ef56.tmp") != std::string::npos);  // warned, named
    CHECK(r.out.find(".tsign-0123456789ab.tmp") != std::string::npos);
    CHECK(read_file(stale) == stale_before);
    CHECK(read_file(hidden) == hidden_before);
    CHECK(ossl_verify(app).code == 0);
  }
}

#ifndef _WIN32
namespace {

// `tsign` started in the background (output to a file), so a test can signal it mid-write.
class Background {
 public:
  Background(const std::vector<std::string>& args, const fs::path& out_file,
             const std::vector<std::string>& env_extra = {}) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::vector<std::string> argv_s = {TSIGN_BINARY};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e) env_s.emplace_back(*e);
    env_s.insert(env_s.end(), env_extra.begin(), env_extra.end());
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    if (posix_spawn(&pid_, TSIGN_BINARY, &fa, nullptr, argv.data(), envp.data()) != 0)
      throw std::runtime_error("cannot start tsign");
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Background() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);  // never kill(-1): once reaped, there is no one to signal
  }
  bool exited() {
    if (pid_ <= 0) return true;
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) != pid_) return false;
    status_ = st;
    pid_ = -1;
    return true;
  }
  int wait() {
    if (pid_ > 0) {
      int st = 0;
      while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
      status_ = st;
      pid_ = -1;
    }
    return status_;
  }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
};

// True once `pid` holds the signed copy of a file of `dir` open: a named temporary in the folder
// (`*.tsign-*.tmp`), or an unnamed one (O_TMPFILE), which /proc shows as "DIR/#INODE (deleted)".
bool writing_a_copy(pid_t pid, const fs::path& dir) {
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().find(".tsign-") != std::string::npos) return true;
  const std::string prefix = dir.string() + "/";
  for (auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::error_code lec;
    auto target = fs::read_symlink(e.path(), lec).string();
    if (!lec && target.rfind(prefix, 0) == 0 && target.ends_with(" (deleted)")) return true;
  }
  return false;
}

// A PE of `bytes` (its overlay a sparse run of zeros: cheap on disk, the copy is real bytes).
fs::path big_pe(const TempDir& d, const std::string& name, std::uint64_t bytes) {
  auto f = d.copy("pe64.exe", name);
  fs::resize_file(f, bytes);
  return f;
}

// Starts `tsign sign` on `file` and returns once it is writing the signed copy (the process
// still running), or nullopt if it finished first.
std::unique_ptr<Background> start_and_catch_writing(const TempDir& d, const fs::path& file,
                                                    const std::vector<std::string>& env = {}) {
  auto bg = std::make_unique<Background>(
      std::vector<std::string>{"sign", "--key", fixture("leaf.key").string(), "--cert",
                               fixture("chain.pem").string(),
                               "--timestamp-rfc3161=", file.string()},
      d.path / "out" / "tsign.log", env);
  for (;;) {
    if (writing_a_copy(bg->pid(), file.parent_path())) return bg;
    if (bg->exited()) return nullptr;
  }
}

}  // namespace

TEST_CASE("a signing run killed while writing leaves no temporary file in the user's folder",
          "[integration][local][write]") {
  if (std::getenv("TSIGN_TEST_BINARY")) {
    WARN("skipped under TSIGN_TEST_BINARY: signals and /proc are the native binary's");
    return;
  }
  // SIGKILL (as an OOM kill) can be caught by nothing: only an unnamed temporary leaves no
  // trace. Then the second Ctrl-C (which ends the process at once), with the named temporaries
  // used where the file system has no O_TMPFILE (forced here).
  struct Case {
    std::string what;
    std::vector<int> signals;
    std::vector<std::string> env;
  };
  for (const auto& c :
       {Case{"SIGKILL", {SIGKILL}, {}}, Case{"SIGINT twice", {SIGINT, SIGINT}, {}},
        Case{"SIGINT twice, named temporary", {SIGINT, SIGTERM}, {"TSIGN_NO_TMPFILE=1"}}}) {
    INFO(c.what);
    TempDir d;
    fs::create_directories(d.path / "out");
    std::unique_ptr<Background> bg;
    // 256 MiB takes long enough to write that the copy is caught in flight; a machine fast
    // enough to finish first gets another try with a fresh file.
    for (int attempt = 0; attempt < 3 && !bg; ++attempt) {
      auto f = big_pe(d, "bin/big.exe", 256u << 20);
      bg = start_and_catch_writing(d, f, c.env);
    }
    REQUIRE(bg);
    const auto log = d.path / "out" / "tsign.log";
    for (std::size_t i = 0; i < c.signals.size(); ++i) {
      // A second signal sent before the first is handled would merge with it: wait until tsign
      // says it is finishing the files in flight.
      while (i > 0 && read_file(log).find("interrupt again") == std::string::npos &&
             !bg->exited()) {
      }
      bg->signal(c.signals[i]);
    }
    bg->wait();
    INFO(read_file(log));
    CHECK(listing(d.path / "bin") == std::vector<std::string>{"big.exe"});
    CHECK(fs::file_size(d.path / "bin" / "big.exe") == (256u << 20));  // never half-written
  }
}
#endif
