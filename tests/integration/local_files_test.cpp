// End-to-end through the real binary with a local key: the files a folder can hold beyond
// plain ones (links, FIFOs and devices, names near the length limit, tsign's own temporaries)
// and a run killed while writing. osslsigncode is the independent judge of every signature.
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

  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --files-folder " +
                     d.q("bin") + " --files-folder-recurse --report " + d.q("report.json"));
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
  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --report " +
                     d.q("r1.json") + " " + d.q("link.dll"));
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
  auto c = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --files-catalog " +
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
                " --timestamp-rfc3161=none --files-catalog " + quote(c.catalog));
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
              " INPUT_TIMESTAMP_RFC3161=none GITHUB_STEP_SUMMARY=" + d.q("summary.md") +
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
  // The section: its heading, a blank line, the list up to the next blank line.
  const auto list = summary.find("\n\n", failures) + 2;
  const auto section = summary.substr(failures, summary.find("\n\n", list) - failures);
  CHECK(section.find("my_tool[v2].exe") != std::string::npos);
  CHECK(section.find("my\\_tool") == std::string::npos);
  CHECK(summary.find("could not be written") != std::string::npos);
  // Counted by format too, so the Format table adds up to the headline.
  CHECK(summary.find("| pe | 1 | 0 | 0 |\n| not recognised | 0 | 1 | 0 |") != std::string::npos);
}
TEST_CASE(
    "tsign action: with no filter every file of a format tsign signs is signed, scripts by name, "
    "and a file only named like an app package fails with the reason",
    "[integration][local][action]") {
  TempDir d;
  d.copy("pe64.exe", "out/good.exe");
  write_file(d.path / "out/setup.appx", "PK not really a package either");
  fs::create_directories(d.path / "out/tools");
  write_file(d.path / "out/tools/setup.vbs", "WScript.Echo \"hi\"\r\n");
  write_file(d.path / "out/readme.txt", "nobody signs text");
  auto cut = read_file(fixture("pe64.exe"));
  cut.resize(600);  // a PE cut short: refused, and counted as a PE that failed
  write_file(d.path / "out/cut.exe", cut);
  const auto appx_before = read_file(d.path / "out/setup.appx");
  auto r =
      sh("INPUT_FILES_FOLDER=" + d.q("out") + " INPUT_FILES_FOLDER_RECURSE=true" +
         " INPUT_TIMESTAMP_RFC3161=none GITHUB_STEP_SUMMARY=" + d.q("summary.md") +
         " GITHUB_OUTPUT=" + d.q("outputs.txt") + " " + tsign_cmd() + " action " + local_key());
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find("2 signed, 2 failed, 0 skipped") != std::string::npos);
  CHECK(r.out.find("readme.txt") == std::string::npos);
  CHECK(read_file(d.path / "out/setup.appx") == appx_before);
  CHECK(ossl_verify(d.path / "out/good.exe").code == 0);
  CHECK(run_tsign("verify --ca " + quote(fixture("root.pem")) + " " + d.q("out/tools/setup.vbs"))
            .code == 0);
  auto summary = read_file(d.path / "summary.md");
  INFO(summary);
  CHECK(summary.find("### Failures") != std::string::npos);
  CHECK(summary.find("setup.appx`: ") != std::string::npos);
  CHECK(summary.find("| vbs | 1 | 0 | 0 |") != std::string::npos);
  CHECK(summary.find("| appx | 0 | 1 | 0 |") != std::string::npos);
  CHECK(summary.find("| pe | 1 | 1 | 0 |") != std::string::npos);
  CHECK(summary.find("not recognised") == std::string::npos);
  CHECK(read_file(d.path / "outputs.txt").find("failed-count=2") != std::string::npos);
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
  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none " + quote(a.string()) +
                     " " + quote(b.string()));
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
    auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --files-folder " +
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
                               fixture("chain.pem").string(), "--timestamp-rfc3161=none",
                               file.string()},
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

TEST_CASE(
    "tsign action: a path glob with an exclusion signs what it names, and the summary lists "
    "each excluded file with the entry that excluded it",
    "[integration][local][action][filter]") {
  TempDir d;
  d.copy("pe64.dll", "out/bin/App.dll");
  d.copy("pe64.dll", "out/bin/App.Tests.dll");
  d.copy("pe32.dll", "out/x86/bin/Core.dll");
  d.copy("pe64.exe", "out/setup.exe");  // not under a bin folder: not selected
  const auto untouched = read_file(d.path / "out/bin/App.Tests.dll");
  auto r = sh("INPUT_FILES_FOLDER=" + d.q("out") + " INPUT_FILES_FOLDER_RECURSE=true" +
              " INPUT_FILES_FOLDER_FILTER='**/bin/*.dll, !*.Tests.dll'" +
              " INPUT_TIMESTAMP_RFC3161=none GITHUB_STEP_SUMMARY=" + d.q("summary.md") + " " +
              tsign_cmd() + " action " + local_key());
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(r.out.find("2 signed, 0 failed, 1 skipped") != std::string::npos);
  CHECK(ossl_verify(d.path / "out/bin/App.dll").code == 0);
  CHECK(ossl_verify(d.path / "out/x86/bin/Core.dll").code == 0);
  CHECK(read_file(d.path / "out/bin/App.Tests.dll") == untouched);
  auto summary = read_file(d.path / "summary.md");
  INFO(summary);
  CHECK(summary.find("App.Tests.dll`: excluded by the filter entry '!\\*.Tests.dll'") !=
        std::string::npos);
  CHECK(summary.find("setup.exe") == std::string::npos);
}
