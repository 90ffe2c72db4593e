// Integration-test helpers on top of support/fixtures.hpp: run the real `tsign` binary
// (TSIGN_BINARY) on copies of the generated fixtures, judged by osslsigncode.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "support/fixtures.hpp"

namespace it {

namespace fs = std::filesystem;
using tsign::test::fixture;
using tsign::test::fixtures_dir;
using tsign::test::quote;

struct Proc {
  int code = -1;
  std::string out;  // stdout and stderr together
};

inline Proc sh(const std::string& cmd) {
  auto r = tsign::test::run_command(cmd);
  return {r.exit_code, r.output};
}

// TSIGN_TEST_BINARY, when set, is a command prefix run instead (scripts/test-windows: tsign.exe
// under wine).
inline std::string tsign_cmd() {
  if (const char* o = std::getenv("TSIGN_TEST_BINARY"); o && *o) return o;
  return quote(TSIGN_BINARY);
}
inline Proc run_tsign(const std::string& args) {
  return sh(tsign_cmd() + " " + args);
}

inline std::string fx(const std::string& name) {
  return quote(fixture(name));
}

// A temporary folder holding copies of fixtures.
struct TempDir {
  tsign::test::TempDir dir{"it"};
  const fs::path& path = dir.path();
  fs::path copy(const std::string& name, const std::string& as = {}) const {
    fs::path to = path / (as.empty() ? name : as);
    fs::create_directories(to.parent_path());
    fs::copy_file(fixture(name), to, fs::copy_options::overwrite_existing);
    return to;
  }
  std::string q(const std::string& rel = {}) const { return quote(path / rel); }
};

inline std::string read_file(const fs::path& p) {
  auto b = tsign::test::read_all(p);
  return {b.begin(), b.end()};
}
inline void write_file(const fs::path& p, const std::string& s) {
  tsign::test::write_all(p, std::vector<std::uint8_t>(s.begin(), s.end()));
}

// Every entry below a folder (to prove no temporary file is left behind).
inline std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> v;
  for (auto& e : fs::recursive_directory_iterator(dir))
    v.push_back(e.path().lexically_relative(dir).string());
  std::sort(v.begin(), v.end());
  return v;
}

inline std::string local_key() {
  return "--key " + fx("leaf.key") + " --cert " + fx("chain.pem");
}

// osslsigncode 2.9's exit status follows the primary signature only: a nested signature that
// fails ("Signature verification: failed" in its section) still exits 0 (docs/judges.md). The
// judge's answer is therefore both: a failure anywhere in the output is a failure.
inline Proc judged(Proc r) {
  if (r.code == 0 && r.out.find("verification: failed") != std::string::npos) r.code = 1;
  return r;
}

inline Proc ossl_verify(const fs::path& file, const std::string& extra = {}) {
  return judged(
      sh("osslsigncode verify -CAfile " + fx("root.pem") + " " + extra + " -in " + quote(file)));
}

}  // namespace it
