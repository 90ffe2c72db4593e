// Access to the generated test inputs of tests/support/make_fixtures.sh (file names documented
// at the top of that script), and a helper to run the reference tools (openssl, osslsigncode).
// Link with tsign_use_fixtures(target) from tests/support/fixtures.cmake.
#pragma once

#include <algorithm>
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

// ---- PE certificate tables, read and rebuilt independently of src/formats/pe.cpp

inline std::uint32_t pe_get32(const std::vector<std::uint8_t>& b, std::size_t off) {
  return b.at(off) | (b.at(off + 1) << 8) | (b.at(off + 2) << 16) |
         (std::uint32_t{b.at(off + 3)} << 24);
}
inline void pe_put32(std::vector<std::uint8_t>& b, std::size_t off, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.at(off + i) = static_cast<std::uint8_t>(v >> (8 * i));
}
// The offset of the certificate table's directory entry (PE32 E+152, PE32+ E+168).
inline std::size_t pe_cert_dir(const std::vector<std::uint8_t>& b) {
  const std::size_t e = pe_get32(b, 0x3C);
  return e + (b.at(e + 24) == 0x0B && b.at(e + 25) == 2 ? 168 : 152);
}

// The PE checksum as a plain word-by-word loop with the carry folded at every step
// (osslsigncode's formulation), an odd last byte taken as a zero-padded word: the reference the
// tests hold the production code to.
inline std::uint32_t pe_reference_checksum(const std::vector<std::uint8_t>& b,
                                           std::size_t checksum_offset) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < b.size(); i += 2) {
    std::uint32_t w = b[i] | (i + 1 < b.size() ? b[i + 1] << 8 : 0);
    if (i == checksum_offset || i == checksum_offset + 2) w = 0;
    sum += w;
    sum = (sum & 0xFFFF) + (sum >> 16);
  }
  return sum + static_cast<std::uint32_t>(b.size());
}
// The WIN_CERTIFICATE entries of a signed image, each with its padding to 8 bytes.
inline std::vector<std::vector<std::uint8_t>> pe_cert_entries(const std::vector<std::uint8_t>& b) {
  const std::size_t dir = pe_cert_dir(b);
  const std::size_t pos = pe_get32(b, dir), len = pe_get32(b, dir + 4);
  std::vector<std::vector<std::uint8_t>> entries;
  for (std::size_t at = 0; at < len;) {
    const std::size_t next = std::min<std::size_t>(len, (at + pe_get32(b, pos + at) + 7) & ~7u);
    if (next <= at) throw std::runtime_error("malformed certificate table");
    entries.emplace_back(b.begin() + static_cast<std::ptrdiff_t>(pos + at),
                         b.begin() + static_cast<std::ptrdiff_t>(pos + next));
    at = next;
  }
  return entries;
}

// `signed_image` with its certificate table replaced by `entries` (each a multiple of 8 bytes),
// the directory entry and the PE checksum updated.
inline std::vector<std::uint8_t> pe_with_cert_entries(
    std::vector<std::uint8_t> b, const std::vector<std::vector<std::uint8_t>>& entries) {
  const std::size_t dir = pe_cert_dir(b);
  const std::size_t pos = pe_get32(b, dir);
  b.resize(pos);
  for (const auto& e : entries) b.insert(b.end(), e.begin(), e.end());
  pe_put32(b, dir + 4, static_cast<std::uint32_t>(b.size() - pos));
  const std::size_t checksum_at = pe_get32(b, 0x3C) + 88;
  pe_put32(b, checksum_at, pe_reference_checksum(b, checksum_at));
  return b;
}

// pe64-signed-leaf.exe with pe64-signed.exe's signature as a second WIN_CERTIFICATE entry (both
// sign pe64.exe): the layout of Microsoft's shimx64.efi, whose table holds two entries.
inline std::vector<std::uint8_t> two_entry_pe() {
  const auto leaf = read_all(fixture("pe64-signed-leaf.exe"));
  const auto self = read_all(fixture("pe64-signed.exe"));
  return pe_with_cert_entries(leaf, {pe_cert_entries(leaf).at(0), pe_cert_entries(self).at(0)});
}

// Real-world signed EFI images from Debian's archive (tests/support/debian_efi.sh):
// "shimx64.efi.signed" (shim-signed, signed by Microsoft) and "grubx64.efi.signed"
// (grub-efi-amd64-signed, signed by Debian). debian_efi_problem() is empty when they are there,
// else why apt-get could not download them (no network, no package lists): the caller skips.
inline const std::string& debian_efi_problem() {
  static const std::string why = [] {
    const auto script =
        std::filesystem::path(TSIGN_FIXTURES_SCRIPT).parent_path() / "debian_efi.sh";
    auto r = run_command("sh " + quote(script) + " " + quote(fixtures_dir() / "debian-efi"));
    return r.exit_code == 0
               ? std::string()
               : "skipped: Debian's signed EFI images are not available (" + r.output + ")";
  }();
  return why;
}
inline std::filesystem::path debian_efi(const std::string& name) {
  return fixtures_dir() / "debian-efi" / name;
}

}  // namespace tsign::test
