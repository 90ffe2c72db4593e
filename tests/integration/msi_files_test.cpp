// Windows Installer files through the real binary: msitools-built packages (a table, a stream
// in the mini stream, one in regular sectors) signed with a local key, judged by osslsigncode
// and by `tsign verify`; osslsigncode's own signatures (with and without MsiDigitalSignatureEx)
// replaced and nested; a tampered stream and hostile structures refused.
#include <catch2/catch.hpp>

#include "harness.hpp"
#include "support/cfb.hpp"

using namespace it;
using Bytes = std::vector<std::uint8_t>;

namespace {

bool has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

Proc tsign_verify(const fs::path& f) {
  return run_tsign("verify --ca " + fx("root.pem") + " " + quote(f.string()));
}

// Where the fixture's 10000-byte stream "Big" lies in `file` (make_fixtures.sh's keystream).
std::size_t big_stream_offset(const Bytes& file) {
  const Proc k =
      sh("head -c 64 /dev/zero | openssl enc -aes-128-ctr -K 00112233445566778899aabbccddeeff -iv "
         "00000000000000000000000000000001 -nosalt");
  const Bytes head(k.out.begin(), k.out.end());
  REQUIRE(head.size() == 64);
  auto at = std::search(file.begin(), file.end(), head.begin(), head.end());
  REQUIRE(at != file.end());
  return static_cast<std::size_t>(at - file.begin());
}

}  // namespace

TEST_CASE(
    "MSI signed with a local key verifies with osslsigncode and tsign, every digest, "
    "replaced and nested",
    "[integration][local][msi]") {
  for (std::string digest : {"SHA256", "SHA384", "SHA512"}) {
    INFO(digest);
    TempDir d;
    auto f = d.copy("msi.msi", "setup.msi");
    auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --file-digest " + digest +
                       " " + quote(f.string()));
    INFO(r.out);
    REQUIRE(r.code == 0);
    auto v = ossl_verify(f);
    INFO(v.out);
    CHECK(v.code == 0);
    auto t = tsign_verify(f);
    INFO(t.out);
    CHECK(t.code == 0);
    CHECK(has(t.out, digest));
    // Again: the signature is replaced.
    r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --file-digest " + digest +
                  " " + quote(f.string()));
    REQUIRE(r.code == 0);
    v = ossl_verify(f);
    CHECK(v.code == 0);
    CHECK(has(v.out, "Number of verified signatures: 1"));
    // And nested.
    r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --append-signature " +
                  quote(f.string()));
    REQUIRE(r.code == 0);
    v = ossl_verify(f);
    INFO(v.out);
    CHECK(v.code == 0);
    CHECK(has(v.out, "Number of verified signatures: 2"));
    t = tsign_verify(f);
    CHECK(t.code == 0);
    CHECK(has(t.out, "2 signatures"));
    CHECK(listing(d.path) == std::vector<std::string>{"setup.msi"});
  }
}

TEST_CASE("MSI signed by osslsigncode: tsign verifies it, replaces it and nests into it",
          "[integration][local][msi]") {
  for (std::string name : {"msi-signed.msi", "msi-dse.msi"}) {
    INFO(name);
    TempDir d;
    auto f = d.copy(name);
    auto t = tsign_verify(f);
    INFO(t.out);
    CHECK(t.code == 0);
    auto g = d.copy(name, "replaced.msi");
    auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --file-digest SHA384 " +
                       quote(g.string()));
    INFO(r.out);
    REQUIRE(r.code == 0);
    auto v = ossl_verify(g);
    INFO(v.out);
    CHECK(v.code == 0);
    CHECK_FALSE(has(v.out, "Incorrect MsiDigitalSignatureEx"));
    CHECK(tsign_verify(g).code == 0);
    r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --append-signature " +
                  quote(f.string()));
    REQUIRE(r.code == 0);
    v = ossl_verify(f);
    CHECK(v.code == 0);
    CHECK(has(v.out, "Number of verified signatures: 2"));
    CHECK_FALSE(has(v.out, "Incorrect MsiDigitalSignatureEx"));
    CHECK(tsign_verify(f).code == 0);
  }
}

TEST_CASE(
    "MSI with a storage, 4096-byte sectors: tsign and osslsigncode accept each other's "
    "signatures",
    "[integration][local][msi]") {
  for (int major : {3, 4}) {
    INFO("version " << major);
    auto c = tsign::test::make_cfb(major, {{"Small", Bytes(100, 1)},
                                           {"Stg/Large", Bytes(5000, 2)},
                                           {"Big", Bytes(10000, 3)},
                                           {"Stg/Inner", Bytes(50, 4)}});
    TempDir d;
    tsign::test::write_all(d.path / "a.msi", c.bytes);
    auto o = sh("osslsigncode sign -certs " + fx("chain.pem") + " -key " + fx("leaf.key") +
                " -h sha256 -in " + d.q("a.msi") + " -out " + d.q("ossl.msi"));
    INFO(o.out);
    REQUIRE(o.code == 0);
    auto t = tsign_verify(d.path / "ossl.msi");
    INFO(t.out);
    CHECK(t.code == 0);
    auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none " + d.q("a.msi"));
    INFO(r.out);
    REQUIRE(r.code == 0);
    auto v = ossl_verify(d.path / "a.msi");
    INFO(v.out);
    CHECK(v.code == 0);
  }
}

TEST_CASE("MSI with MsiDigitalSignatureEx: a nested signature of another digest is refused",
          "[integration][local][msi][bad-input]") {
  TempDir d;
  auto f = d.copy("msi-dse.msi");
  const Bytes before = tsign::test::read_all(f);
  auto r = run_tsign("sign " + local_key() +
                     " --timestamp-rfc3161=none --append-signature --file-digest SHA512 " +
                     quote(f.string()));
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(has(r.out, "msi-dse.msi: the file has an MsiDigitalSignatureEx stream"));
  CHECK(tsign::test::read_all(f) == before);
  CHECK(listing(d.path) == std::vector<std::string>{"msi-dse.msi"});
}

TEST_CASE("MSI: a one-byte change in a stream fails osslsigncode and tsign verify",
          "[integration][local][msi]") {
  TempDir d;
  auto f = d.copy("msi.msi");
  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none " + quote(f.string()));
  REQUIRE(r.code == 0);
  Bytes b = tsign::test::read_all(f);
  b[big_stream_offset(b) + 1234] ^= 0x01;
  tsign::test::write_all(f, b);
  auto v = ossl_verify(f);
  INFO(v.out);
  CHECK(v.code != 0);
  auto t = tsign_verify(f);
  INFO(t.out);
  CHECK(t.code != 0);
}

TEST_CASE("MSI: hostile structures are refused, named, the files unchanged",
          "[integration][local][msi][bad-input]") {
  auto c = tsign::test::make_cfb(3, {{"Small", Bytes(100, 1)}, {"Big", Bytes(10000, 2)}});
  const std::uint32_t big = c.stream_start[1];
  struct Case {
    std::string file, expect;
    Bytes bytes;
  };
  std::vector<Case> cases;
  auto loop = c;
  loop.put32(loop.fat_entry(big + 3), big);
  cases.push_back({"loop.msi", "loop.msi: directory entry 2 (\"Big\") reaches sector", loop.bytes});
  auto past = c;
  past.put32(past.fat_entry(big + 3), 90000);
  cases.push_back({"past.msi",
                   "past.msi: directory entry 2 (\"Big\") runs to sector 90000, past "
                   "the end of the file",
                   past.bytes});
  auto cycle = c;
  cycle.put32(cycle.dir_entry(1) + 0x48, 2);  // "Small" leads back to "Big"
  cases.push_back(
      {"cycle.msi", "cycle.msi: the directory tree reaches entry 2 twice", cycle.bytes});
  auto count = c;
  count.put32(0x2C, 70000);
  cases.push_back({"count.msi", "count.msi: the header counts 70000 FAT sectors", count.bytes});

  TempDir d;
  std::string args;
  std::vector<std::string> names;
  for (auto& k : cases) {
    tsign::test::write_all(d.path / k.file, k.bytes);
    args += " " + d.q(k.file);
    names.push_back(k.file);
  }
  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none" + args);
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(has(r.out, "0 signed, 4 failed"));
  for (auto& k : cases) {
    CHECK(has(r.out, k.expect));
    CHECK(tsign::test::read_all(d.path / k.file) == k.bytes);
  }
  std::sort(names.begin(), names.end());
  CHECK(listing(d.path) == names);
}

TEST_CASE("MSI: a 64 MiB package signs with memory far below its size",
          "[integration][local][msi]") {
  TempDir d;
  auto f = d.copy("msi.msi", "large.msi");
  const fs::path blob = d.path / "blob.bin";
  // In a subshell: sh() sends the command's own output elsewhere.
  REQUIRE(sh("(head -c 67108864 /dev/zero | openssl enc -aes-128-ctr -K "
             "00112233445566778899aabbccddeeff -iv 00000000000000000000000000000003 -nosalt > " +
             quote(blob.string()) + ")")
              .code == 0);
  REQUIRE(sh("msibuild " + quote(f.string()) + " -a Blob " + quote(blob.string())).code == 0);
  fs::remove(blob);
  REQUIRE(fs::file_size(f) > (64u << 20));
  // GNU time reports a process's peak resident set. What the signing adds is measured against
  // the same binary doing nothing (`tsign --version`), so that a sanitizer build's runtime (~20 MiB
  // of its own) does not count; its quarantine of freed blocks is turned off for both runs, or
  // the 1 MiB buffers the copy reuses would stay resident as if they were leaked.
  const bool timed = fs::exists("/usr/bin/time");
  const std::string peak =
      "ASAN_OPTIONS=\"${ASAN_OPTIONS:-}:quarantine_size_mb=0\" /usr/bin/time "
      "-f peak-rss-kb=%M ";
  auto r = sh(std::string(timed ? peak : "") + tsign_cmd() + " sign " + local_key() +
              " --timestamp-rfc3161=none " + quote(f.string()));
  INFO(r.out);
  REQUIRE(r.code == 0);
  const auto peak_kb = [](const std::string& out) {
    const auto at = out.find("peak-rss-kb=");
    REQUIRE(at != std::string::npos);
    return std::stol(out.substr(at + 12));
  };
  if (timed) {
    const long idle = peak_kb(sh(peak + tsign_cmd() + " --version").out);
    const long kb = peak_kb(r.out);
    INFO("peak " << kb << " KiB, of which " << idle << " KiB with nothing to do");
    CHECK(kb - idle < 24 * 1024);  // measured: 10 MiB (dev), 14 MiB (ASan); the file is 64 MiB
  } else {
    WARN("/usr/bin/time is missing (scripts/setup installs it): peak memory not measured");
  }
  CHECK(ossl_verify(f).code == 0);
  CHECK(tsign_verify(f).code == 0);
}
