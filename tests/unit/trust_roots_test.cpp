// The trust store on Unix (platform::load_trust_roots): a released binary carries the OpenSSL of
// the machine that built it, so its compiled-in CA bundle path may be missing where it runs
// (RHEL, macOS without Homebrew). The system's own bundle must then be found
// (docs/usage.md, "Credentials, hosts and trust").
#include <catch2/catch.hpp>

#include <array>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>

#include "platform/platform.hpp"
#include "support/scratch_dir.hpp"

namespace fs = std::filesystem;
using tsign::platform::extra_ca_bundle;

namespace {
// A fresh directory, removed at the end (fixtures.hpp's TempDir is POSIX-only; this test also
// runs in the Windows build).
void touch(const fs::path& p) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << "-----BEGIN CERTIFICATE-----\n";
}
}  // namespace

TEST_CASE("the system CA bundle is probed only when OpenSSL's own is missing") {
  tsign::test::ScratchDir t{"roots"};
  // A RHEL-like layout: no /etc/ssl/cert.pem or Debian bundle, the one under /etc/pki.
  fs::path debian = t.path / "etc/ssl/certs/ca-certificates.crt";
  fs::path rhel = t.path / "etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem";
  fs::path macos = t.path / "etc/ssl/cert.pem";
  std::string d = debian.string(), r = rhel.string(), m = macos.string();
  std::array<std::string_view, 3> probe = {d, r, m};
  fs::path compiled_in = t.path / "opt/homebrew/etc/openssl@3/cert.pem";

  CHECK_FALSE(extra_ca_bundle(compiled_in, probe).has_value());  // nothing anywhere
  touch(rhel);
  CHECK(extra_ca_bundle(compiled_in, probe) == rhel);
  touch(macos);
  CHECK(extra_ca_bundle(compiled_in, probe) == rhel);  // the first in the list wins
  fs::create_directories(debian);                      // a directory is not a bundle
  CHECK(extra_ca_bundle(compiled_in, probe) == rhel);
  touch(compiled_in);
  CHECK_FALSE(extra_ca_bundle(compiled_in, probe).has_value());  // OpenSSL's own file is used
}

TEST_CASE("the probed locations cover Debian, RHEL, SUSE and macOS") {
  auto has = [](std::string_view p) {
    for (auto c : tsign::platform::kSystemCaBundles)
      if (c == p) return true;
    return false;
  };
  CHECK(has("/etc/ssl/certs/ca-certificates.crt"));
  CHECK(has("/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"));
  CHECK(has("/etc/pki/tls/certs/ca-bundle.crt"));
  CHECK(has("/etc/ssl/ca-bundle.pem"));
  CHECK(has("/etc/ssl/cert.pem"));
}
