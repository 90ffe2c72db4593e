// End-to-end through the real binary with a local key: what a user of `tsign sign` sees.
// osslsigncode is the independent judge of every signature.
#include <catch2/catch.hpp>

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

TEST_CASE("sign every fixture PE with a local key; osslsigncode and tsign verify agree",
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

TEST_CASE("append-signature nests a second signature; replace keeps one", "[integration][local]") {
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
                     quote(good.string()) + " " + quote(ro.string()) + " " + d.q("missing.exe"));
  INFO(r.out);
  CHECK(r.code == 1);  // some failed, the others were signed
  CHECK(r.out.find("1 signed, 3 failed") != std::string::npos);
  CHECK(r.out.find("text.exe") != std::string::npos);
  CHECK(r.out.find("read-only") != std::string::npos);
  CHECK(r.out.find("missing.exe") != std::string::npos);
  CHECK(read_file(d.path / "text.exe") == before_text);
  CHECK(read_file(ro) == before_ro);
  CHECK(ossl_verify(good).code == 0);
  CHECK(listing(d.path) == std::vector<std::string>{"pe64.exe", "readonly.exe", "text.exe"});
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
