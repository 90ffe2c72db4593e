// Runs `tsign emulator` as a child process for a test: waits for its "ready" line (no sleeping),
// collects the environment it prints, and stops it (closing its stdin) when destroyed.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness.hpp"

extern char** environ;

namespace it {

class Emulator {
 public:
  // `args`: extra emulator options (faults); the state lives in `state_dir`.
  Emulator(const fs::path& state_dir, std::vector<std::string> args = {}) : state_(state_dir) {
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::string err = (state_dir / "emulator.stderr").string();
    fs::create_directories(state_dir);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    std::vector<std::string> argv_s = {TSIGN_BINARY, "emulator", "--state-dir", state_dir.string(),
                                       "--exit-on-stdin-eof"};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, TSIGN_BINARY, &fa, nullptr, argv.data(), environ) != 0)
      throw std::runtime_error("cannot start tsign emulator");
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    stdin_ = in[1];
    // Read its announcements until the ready line.
    std::string buf;
    char c;
    for (;;) {
      ssize_t n = read(out[0], &c, 1);
      if (n <= 0) {
        close(out[0]);
        throw std::runtime_error("tsign emulator exited before it was ready:\n" +
                                 read_file(state_dir / "emulator.stderr"));
      }
      if (c != '\n') {
        buf += c;
        continue;
      }
      if (buf == "# tsign emulator ready") break;
      parse_export(buf);
      buf.clear();
    }
    stdout_ = out[0];
  }
  ~Emulator() {
    close(stdin_);  // --exit-on-stdin-eof: it stops
    int st = 0;
    waitpid(pid_, &st, 0);
    close(stdout_);
  }
  Emulator(const Emulator&) = delete;
  Emulator& operator=(const Emulator&) = delete;

  const std::string& var(const std::string& name) const { return env_.at(name); }

  // `NAME='value' ...` for a shell command line: the environment `tsign` needs for this emulator
  // (GitHub OIDC variables, authority, tenant, client, CA bundle, allowed hosts).
  std::string env() const {
    std::string s;
    for (auto& [k, v] : env_)
      if (k.rfind("TSIGN_EMULATOR_", 0) != 0) s += k + "=" + quote(v) + " ";
    return s;
  }

  // The `tsign action` environment for signing `folder` (plus `extra` INPUT_* assignments).
  std::string action_env(const fs::path& folder, const std::string& extra = {}) const {
    return env() + "INPUT_ENDPOINT=" + quote(var("TSIGN_EMULATOR_ENDPOINT")) +
           " INPUT_SIGNING_ACCOUNT_NAME=" + quote(var("TSIGN_EMULATOR_ACCOUNT")) +
           " INPUT_CERTIFICATE_PROFILE_NAME=" + quote(var("TSIGN_EMULATOR_PROFILE")) +
           " INPUT_TIMESTAMP_RFC3161=" + quote(var("TSIGN_EMULATOR_TSA")) +
           " INPUT_FILES_FOLDER=" + quote(folder) + " " + extra + " ";
  }

  // Verifies with osslsigncode against the emulator's code-signing and time-stamp roots.
  Proc verify(const fs::path& file) const {
    return judged(sh("osslsigncode verify -CAfile " + quote(var("TSIGN_EMULATOR_CODESIGN_ROOT")) +
                     " -TSA-CAfile " + quote(var("TSIGN_EMULATOR_TSA_ROOT")) + " -in " +
                     quote(file)));
  }

  // How many requests of a kind ("oidc", "entra", "sign", "poll", "tsa") the log holds.
  int count(const std::string& kind) const {
    std::istringstream log(read_file(state_ / "requests.log"));
    std::string line;
    int n = 0;
    while (std::getline(log, line))
      if (line.find("\"kind\":\"" + kind + "\"") != std::string::npos) ++n;
    return n;
  }
  std::string request_log() const { return read_file(state_ / "requests.log"); }
  // Signatures the service issued (and would bill): sign requests it accepted with 202, not
  // counting injected faults (a malformed 202 issues nothing).
  int signatures_issued() const {
    std::istringstream log(request_log());
    std::string line;
    int n = 0;
    while (std::getline(log, line))
      if (line.find("\"kind\":\"sign\"") != std::string::npos &&
          line.find("\"status\":202") != std::string::npos &&
          line.find("\"fault\"") == std::string::npos)
        ++n;
    return n;
  }

 private:
  void parse_export(const std::string& line) {
    // export NAME='value'
    if (line.rfind("export ", 0) != 0) return;
    auto eq = line.find('=');
    if (eq == std::string::npos) return;
    std::string name = line.substr(7, eq - 7);
    std::string v = line.substr(eq + 1);
    if (v.size() >= 2 && v.front() == '\'' && v.back() == '\'') v = v.substr(1, v.size() - 2);
    env_[name] = v;
  }

  fs::path state_;
  pid_t pid_ = -1;
  int stdin_ = -1, stdout_ = -1;
  std::map<std::string, std::string> env_;
};

// A state directory for an Emulator in `d`: keys take seconds to generate, so the first emulator
// of the process makes them in a template and every later one starts from a copy (one template
// per test process, however many test files ask).
inline fs::path emulator_state(const TempDir& d) {
  static std::mutex mu;
  static tsign::test::TempDir templ("emu-template");
  std::lock_guard lock(mu);
  if (!fs::exists(templ.path() / "state")) {
    Emulator warmup(templ.path() / "state");
  }
  fs::path to = d.path / "emu";
  fs::copy(templ.path() / "state", to, fs::copy_options::recursive);
  fs::remove(to / "requests.log");
  return to;
}

}  // namespace it
