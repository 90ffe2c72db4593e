// Access to the generated test inputs of tests/support/make_fixtures.sh (file names documented
// at the top of that script), and a helper to run the reference tools (openssl, osslsigncode).
// Link with tsign_use_fixtures(target) from tests/support/fixtures.cmake.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef _WIN32
#include <sys/wait.h>  // WIFEXITED: decoding std::system's status
#endif

#ifndef TSIGN_FIXTURES_DIR
#error "call tsign_use_fixtures(<target>) in the test's CMakeLists.txt"
#endif

namespace tsign::test {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command line, capturing its output (through a temporary file: std::system is the
// one portable way to run a command). Arguments must already be quoted.
inline CommandResult run_command(const std::string& command) {
  std::random_device rd;
  auto out = std::filesystem::temp_directory_path() /
             ("tsign-cmd-" + std::to_string(rd()) + "-" + std::to_string(rd()) + ".txt");
  int status = std::system((command + " > \"" + out.string() + "\" 2>&1").c_str());
  CommandResult r;
#ifdef _WIN32
  r.exit_code = status;
#else
  r.exit_code = (status != -1 && WIFEXITED(status)) ? WEXITSTATUS(status) : -1;
#endif
  std::ifstream in(out, std::ios::binary);
  r.output.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  in.close();
  std::error_code ec;
  std::filesystem::remove(out, ec);
  return r;
}

// Single-quotes a path for the shell.
inline std::string quote(const std::filesystem::path& p) {
  std::string s = "'";
  for (char c : p.string()) {
    if (c == '\'')
      s += "'\\''";
    else
      s += c;
  }
  return s + "'";
}

// The fixtures directory, generating it on first use if the CTest fixture has not (the script is
// idempotent and serialised by an flock, so concurrent test processes are safe).
inline const std::filesystem::path& fixtures_dir() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path d = TSIGN_FIXTURES_DIR;
    if (!std::filesystem::exists(d / ".done")) {
      auto r = run_command("sh " + quote(TSIGN_FIXTURES_SCRIPT) + " " + quote(d));
      if (r.exit_code != 0)
        throw std::runtime_error("make_fixtures.sh failed (" + std::to_string(r.exit_code) +
                                 "):\n" + r.output);
    }
    return d;
  }();
  return dir;
}

inline std::filesystem::path fixture(const std::string& name) {
  return fixtures_dir() / name;
}

inline std::vector<std::uint8_t> read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_all(const std::filesystem::path& p, const std::vector<std::uint8_t>& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

// A fresh, empty directory for one test, removed by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    auto base = std::filesystem::temp_directory_path();
    std::random_device rd;
    for (;;) {
      path_ = base / ("tsign-" + tag + "-" + std::to_string(rd()));
      if (std::filesystem::create_directory(path_)) break;
    }
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace tsign::test
