// The Windows binary end to end, from Linux: tsign.exe runs under wine against `tsign emulator`
// (the native build) on loopback, and osslsigncode judges what it signed. Built and run only by
// scripts/test-windows, which passes the Windows build's paths in the environment:
//   TSIGN_WINDOWS_EXE   build/windows/tsign.exe
//   TSIGN_WIN_CHILD     build/windows/tests/windows/win_child.exe (holds a file locked)
//   TSIGN_WINE_RUN      tests/windows/wine-run
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "integration/harness.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using tsign::test::quote;

std::string need_env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v)
    FAIL(std::string(name) + " is not set: run this test through scripts/test-windows");
  return v;
}

// A child process with its stdin and stdout on pipes: the test reads its announcements line by
// line and stops it by closing its stdin.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv) {
    int in[2], out[2];
    REQUIRE(::pipe2(in, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int rc = posix_spawnp(&pid_, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    stdout_ = ::fdopen(out[0], "r");
    REQUIRE(rc == 0);
  }
  ~Child() { stop(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // The next line it prints; empty at end of output.
  std::string line() {
    std::string s;
    int c;
    while ((c = std::fgetc(stdout_)) != EOF && c != '\n') s += static_cast<char>(c);
    if (!s.empty() && s.back() == '\r') s.pop_back();  // a Windows child's text-mode stdout
    return s;
  }
  // Closes its stdin (each child here exits on that) and waits for it.
  int stop() {
    if (pid_ <= 0) return status_;
    if (stdin_ >= 0) ::close(stdin_);
    stdin_ = -1;
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    if (stdout_) std::fclose(stdout_);
    stdout_ = nullptr;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return status_;
  }

 private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  std::FILE* stdout_ = nullptr;
  int status_ = -1;
};

// `tsign emulator` (native) on loopback, with its variables parsed from the lines it prints.
struct Emulator {
  tsign::test::TempDir state{"emu"};
  std::map<std::string, std::string> env;
  std::unique_ptr<Child> proc;

  explicit Emulator(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {TSIGN_BINARY,         "emulator",    "--listen",
                                     "127.0.0.1:0",        "--state-dir", state.path().string(),
                                     "--exit-on-stdin-eof"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc = std::make_unique<Child>(argv);
    for (std::string l; (l = proc->line()) != "# tsign emulator ready";) {
      REQUIRE_FALSE(l.empty());  // it exited before it was ready
      if (l.rfind("export ", 0) != 0) continue;
      auto eq = l.find('=');
      std::string v = l.substr(eq + 1);
      if (v.size() >= 2 && v.front() == '\'') v = v.substr(1, v.size() - 2);
      env[l.substr(7, eq - 7)] = v;
    }
  }
  ~Emulator() { proc->stop(); }
};

// `tsign.exe action` under wine with the emulator's credentials and the given INPUT_* values.
it::Proc action(const Emulator& emu, const std::map<std::string, std::string>& inputs,
                const fs::path& runner_temp) {
  std::string cmd = "env";
  for (const auto& name :
       {"ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "AZURE_AUTHORITY_HOST",
        "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "SSL_CERT_FILE", "TSIGN_ALLOWED_HOSTS"})
    cmd += " " + std::string(name) + "=" + quote(emu.env.at(name));
  std::map<std::string, std::string> in = {
      {"INPUT_ENDPOINT", emu.env.at("TSIGN_EMULATOR_ENDPOINT")},
      {"INPUT_SIGNING_ACCOUNT_NAME", emu.env.at("TSIGN_EMULATOR_ACCOUNT")},
      {"INPUT_CERTIFICATE_PROFILE_NAME", emu.env.at("TSIGN_EMULATOR_PROFILE")},
      {"INPUT_TIMESTAMP_RFC3161", emu.env.at("TSIGN_EMULATOR_TSA")},
      {"GITHUB_ACTIONS", "true"},
      {"RUNNER_TEMP", runner_temp.string()},
      {"GITHUB_OUTPUT", (runner_temp / "output").string()},
      {"GITHUB_STEP_SUMMARY", (runner_temp / "summary.md").string()}};
  for (auto& [k, v] : inputs) in[k] = v;
  for (auto& [k, v] : in) cmd += " " + k + "=" + quote(v);
  cmd += " " + quote(need_env("TSIGN_WINE_RUN")) + " " + quote(need_env("TSIGN_WINDOWS_EXE")) +
         " action";
  return it::sh(cmd);
}

it::Proc judge(const Emulator& emu, const fs::path& f) {
  return it::sh("osslsigncode verify -CAfile " + quote(emu.env.at("TSIGN_EMULATOR_CODESIGN_ROOT")) +
                " -TSA-CAfile " + quote(emu.env.at("TSIGN_EMULATOR_TSA_ROOT")) + " -in " +
                quote(f));
}

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> v;
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) v.push_back(e.path().lexically_relative(dir).string());
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST_CASE("tsign.exe action signs a folder with non-ASCII names from INPUT_* variables",
          "[windows][wine]") {
  Emulator emu;
  it::TempDir d;
  tsign::test::TempDir runner{"runner"};
  const std::string top = "Veröffentlichung 2024", sub = "子目录 ñ";
  d.copy("pe64.exe", top + "/prüfung-😀.exe");
  d.copy("pe32.dll", top + "/" + sub + "/库.dll");
  d.copy("pe64.dll", top + "/" + sub + "/ünsigned.txt.dll");
  auto r = action(emu,
                  {{"INPUT_FILES_FOLDER", (d.path / top).string()},
                   {"INPUT_FILES_FOLDER_RECURSE", "true"},
                   {"INPUT_FILES_FOLDER_FILTER", "exe,dll"},
                   {"INPUT_DESCRIPTION", "tsign ünïcode test"}},
                  runner.path());
  INFO(r.out);
  REQUIRE(r.code == 0);
  for (auto rel : {top + "/prüfung-😀.exe", top + "/" + sub + "/库.dll",
                   top + "/" + sub + "/ünsigned.txt.dll"}) {
    INFO(rel);
    auto v = judge(emu, d.path / rel);
    INFO(v.out);
    CHECK(v.code == 0);
    CHECK(v.out.find("Timestamp Server Signature verification: ok") != std::string::npos);
  }
  // Exactly the three files, under the same UTF-8 names: nothing renamed, nothing left behind.
  CHECK(files_in(d.path) == std::vector<std::string>{top + "/prüfung-😀.exe",
                                                     top + "/" + sub + "/ünsigned.txt.dll",
                                                     top + "/" + sub + "/库.dll"});
  auto outputs = it::read_file(runner.path() / "output");
  CHECK(outputs.find("signed-count=3") != std::string::npos);
  CHECK(outputs.find("failed-count=0") != std::string::npos);
  CHECK(outputs.find("prüfung-😀.exe") != std::string::npos);
  auto summary = it::read_file(runner.path() / "summary.md");
  CHECK(summary.find("库.dll") != std::string::npos);
}

TEST_CASE("tsign.exe: the deadline exits 4 and leaves every file whole", "[windows][wine]") {
  // Each answer of the service takes 4 s, the run may take 2.
  Emulator emu({"--latency-ms", "4000"});
  it::TempDir d;
  tsign::test::TempDir runner{"runner"};
  auto a = d.copy("pe64.exe", "a.exe");
  auto b = d.copy("pe32.dll", "b.dll");
  auto before_a = it::read_file(a), before_b = it::read_file(b);
  auto r = action(emu, {{"INPUT_FILES", a.string() + "," + b.string()}, {"INPUT_TIMEOUT", "2"}},
                  runner.path());
  INFO(r.out);
  CHECK(r.code == 4);
  CHECK(it::read_file(a) == before_a);
  CHECK(it::read_file(b) == before_b);
  CHECK(files_in(d.path) == std::vector<std::string>{"a.exe", "b.dll"});
}

TEST_CASE("tsign.exe: a read-only file fails alone and is left unchanged", "[windows][wine]") {
  Emulator emu;
  it::TempDir d;
  tsign::test::TempDir runner{"runner"};
  auto ro = d.copy("pe64.exe", "readonly.exe");
  auto ok = d.copy("pe64.dll", "ok.dll");
  auto before = it::read_file(ro);
  // wine shows a file without write permission bits as FILE_ATTRIBUTE_READONLY.
  fs::permissions(ro, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  auto r = action(emu, {{"INPUT_FILES", ro.string() + "\n" + ok.string()}}, runner.path());
  fs::permissions(ro, fs::perms::owner_write, fs::perm_options::add);
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find("readonly.exe") != std::string::npos);
  CHECK(it::read_file(ro) == before);
  CHECK(judge(emu, ok).code == 0);
  CHECK(files_in(d.path) == std::vector<std::string>{"ok.dll", "readonly.exe"});
}

TEST_CASE("tsign.exe: a file another program holds open fails alone and is left unchanged",
          "[windows][wine]") {
  Emulator emu;
  it::TempDir d;
  tsign::test::TempDir runner{"runner"};
  auto locked = d.copy("pe64.exe", "locked.exe");
  auto ok = d.copy("pe32.exe", "ok.exe");
  auto before = it::read_file(locked);
  Child holder({need_env("TSIGN_WINE_RUN"), need_env("TSIGN_WIN_CHILD"), "lock", locked.string()});
  REQUIRE(holder.line() == "locked");
  auto r = action(emu, {{"INPUT_FILES", locked.string() + "," + ok.string()}}, runner.path());
  holder.stop();
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find("locked.exe") != std::string::npos);
  CHECK(it::read_file(locked) == before);
  CHECK(judge(emu, ok).code == 0);
  CHECK(files_in(d.path) == std::vector<std::string>{"locked.exe", "ok.exe"});
}
