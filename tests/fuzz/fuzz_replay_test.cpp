// Replays every fuzz target's seeds (tests/fuzz/seeds/<target>.hex, the minimized corpora and
// the regression inputs of fixed findings), and the PE check over the generated fixtures and
// deterministic mutations of them, so the fuzz targets' invariants are exercised in every build
// (no clang/libFuzzer needed).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>

#include "auth/auth_internal.hpp"
#include "common/error.hpp"
#include "formats/appx.hpp"
#include "formats/cab.hpp"
#include "formats/script.hpp"
#include "fuzz_pe.hpp"
#include "fuzz_targets.hpp"
#include "fuzz_timestamp.hpp"
#include "support/fixtures.hpp"

using tsign::Bytes;
using tsign::ByteView;
using tsign::fuzz::check_pe;

namespace {

const char* const kInputs[] = {"pe64.exe",
                               "pe64.dll",
                               "pe32.exe",
                               "pe32.dll",
                               "pe64-overlay.exe",
                               "pe64-signed.exe",
                               "pe64-signed-leaf.exe"};

// One seed a line in hex; empty lines and lines starting with '#' are skipped. With
// `regressions_only`, only the lines after "# regressions" (inputs of fixed findings).
std::vector<Bytes> read_seeds(const std::filesystem::path& file, bool regressions_only = false) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  std::vector<Bytes> seeds;
  bool in_regressions = false;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("# regressions", 0) == 0) in_regressions = true;
    if (line.empty() || line[0] == '#' || (regressions_only && !in_regressions)) continue;
    auto nibble = [&](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      throw std::runtime_error(file.string() + ": not hex: " + line.substr(0, 40));
    };
    if (line.size() % 2 != 0) throw std::runtime_error(file.string() + ": odd hex line");
    Bytes b(line.size() / 2);
    for (std::size_t i = 0; i < b.size(); ++i)
      b[i] = static_cast<std::uint8_t>(nibble(line[2 * i]) * 16 + nibble(line[2 * i + 1]));
    seeds.push_back(std::move(b));
  }
  return seeds;
}

}  // namespace

TEST_CASE("every fuzz target's seeds replay without a violation", "[fuzz]") {
  const std::filesystem::path dir = std::filesystem::path(TSIGN_SOURCE_DIR) / "tests/fuzz/seeds";
  for (const auto& target : tsign::fuzz::kTargets) {
    INFO("target " << target.name);
    const auto seeds = read_seeds(dir / (std::string(target.name) + ".hex"));
    CHECK(!seeds.empty());
    for (std::size_t i = 0; i < seeds.size(); ++i) {
      INFO("seed " << i + 1 << " (" << seeds[i].size() << " bytes)");
      CHECK(target.check(seeds[i]) == "");
    }
  }
}

// The fuzz_timestamp seeds must get past the nonce and imprint checks, or the fuzzer would only
// ever see the refusals.
TEST_CASE("the granted time-stamp seed answers the fuzz target's request", "[fuzz]") {
  const auto seeds =
      read_seeds(std::filesystem::path(TSIGN_SOURCE_DIR) / "tests/fuzz/seeds/timestamp.hex");
  std::size_t granted = 0;
  for (const auto& s : seeds) {
    try {
      tsign::authenticode::check_timestamp_response(s, tsign::fuzz::timestamp_request(),
                                                    tsign::fuzz::timestamp_signature_value(),
                                                    tsign::DigestAlg::sha256);
      ++granted;
    } catch (const tsign::FileError&) {
    }
  }
  CHECK(granted >= 1);
}

TEST_CASE("fuzz check accepts every fixture", "[fuzz]") {
  for (const char* name : kInputs) {
    INFO(name);
    Bytes data = tsign::test::read_all(tsign::test::fixture(name));
    auto r = check_pe(data);
    CHECK(r.violation == "");
    CHECK(r.parsed);
  }
}

TEST_CASE("fuzz check holds on mutated fixtures", "[fuzz]") {
  std::mt19937 rng(20240601);  // fixed seed: the same mutants every run
  std::size_t parsed = 0, rejected = 0;
  for (const char* name : kInputs) {
    const Bytes original = tsign::test::read_all(tsign::test::fixture(name));
    for (int i = 0; i < 300; ++i) {
      Bytes m = original;
      switch (i % 4) {
        case 0: {  // a few random bytes in the headers
          std::uniform_int_distribution<std::size_t> pos(0,
                                                         std::min<std::size_t>(m.size(), 1024) - 1);
          for (int k = 0; k < 1 + i % 3; ++k) m[pos(rng)] = static_cast<std::uint8_t>(rng());
          break;
        }
        case 1: {  // truncation anywhere
          m.resize(std::uniform_int_distribution<std::size_t>(0, m.size())(rng));
          break;
        }
        case 2: {  // random bytes near the end (the certificate table, the overlay)
          std::uniform_int_distribution<std::size_t> pos(m.size() > 64 ? m.size() - 64 : 0,
                                                         m.size() - 1);
          m[pos(rng)] = static_cast<std::uint8_t>(rng());
          break;
        }
        default: {  // odd-length appendix
          m.resize(m.size() + std::uniform_int_distribution<std::size_t>(1, 15)(rng),
                   static_cast<std::uint8_t>(rng()));
          break;
        }
      }
      auto r = check_pe(m);
      INFO(name << " mutant " << i);
      REQUIRE(r.violation == "");
      (r.parsed ? parsed : rejected)++;
    }
  }
  // Both outcomes must really have been exercised.
  CHECK(parsed > 100);
  CHECK(rejected > 100);
}

TEST_CASE("fuzz check holds on several certificate-table entries and on truncated images",
          "[fuzz]") {
  // Seeds for the paths added with them: a table of two WIN_CERTIFICATE entries, mutated in the
  // table; and images cut inside their sections, which must be refused.
  const Bytes two = tsign::test::two_entry_pe();
  auto whole = check_pe(two);
  CHECK(whole.violation == "");
  CHECK(whole.parsed);
  const std::size_t table = tsign::test::pe_get32(two, tsign::test::pe_cert_dir(two));
  std::mt19937 rng(20261130);
  std::size_t parsed = 0, rejected = 0;
  for (int i = 0; i < 200; ++i) {
    Bytes m = two;
    std::uniform_int_distribution<std::size_t> pos(table, m.size() - 1);
    m[pos(rng)] = static_cast<std::uint8_t>(rng());
    auto r = check_pe(m);
    INFO("mutant " << i);
    REQUIRE(r.violation == "");
    (r.parsed ? parsed : rejected)++;
  }
  CHECK(parsed > 10);
  CHECK(rejected > 10);
  const Bytes plain = tsign::test::read_all(tsign::test::fixture("pe64.exe"));
  for (std::size_t cut : {std::size_t{1}, std::size_t{100}, plain.size() / 2}) {
    INFO("cut " << cut);
    auto r = check_pe(ByteView(plain).first(plain.size() - cut));
    CHECK(r.violation == "");
    CHECK_FALSE(r.parsed);
  }
}

// ---- Defects found writing the fuzz targets, each input also a seed of its target
// -------------------------------

namespace {
const auto kNow = tsign::auth::SysClock::time_point(std::chrono::seconds(1767225600));  // 2026
}

// parse_token_response (fuzz_entra): an expires_in beyond what the clock can hold overflowed
// (signed overflow, UBSan) and wrapped the expiry into the past; the answer must be refused, never
// mis-dated.
TEST_CASE("a token answer with an absurd lifetime is refused, not wrapped", "[fuzz]") {
  for (const char* body :
       {R"({"access_token":"t","expires_in":9300000000})",
        R"({"access_token":"t","expires_in":"9300000000"})",
        R"({"access_token":"t","expires_in":1e300})", R"({"access_token":"t","expires_in":-1e300})",
        R"({"access_token":"t","expires_on":9300000000})"}) {
    INFO(body);
    try {
      auto t = tsign::auth::parse_token_response(body, kNow, "Entra ID (test)");
      CHECK(t.expires_on > kNow);
    } catch (const tsign::AuthError& e) {
      CHECK_THAT(e.what(), Catch::Contains("expires_in / expires_on"));
    }
  }
}

// parse_azure_cli_output (fuzz_azure_cli): the same overflow with expires_on / expiresOn.
TEST_CASE("az output with an absurd expires_on is not mis-dated", "[fuzz]") {
  for (const char* out : {R"({"accessToken":"t","expires_on":9300000000})",
                          R"({"accessToken":"t","expires_on":"9300000000"})",
                          R"({"accessToken":"t","expires_on":18446744073709551615})",
                          R"({"accessToken":"t","expiresOn":"9999-12-31 23:59:59.000000"})"}) {
    INFO(out);
    auto t = tsign::auth::parse_azure_cli_output(out, kNow);
    CHECK(t.expires_on > kNow);
  }
}

// check_timestamp_response (fuzz_timestamp): a reply OpenSSL decodes but whose token it encodes
// into DER it cannot decode again (a digest AlgorithmIdentifier with a parameter of tag 0x20):
// the token must be refused, not handed on to be embedded in the signature.
TEST_CASE("a time-stamp token that does not survive re-encoding is refused", "[fuzz]") {
  const auto inputs =
      read_seeds(std::filesystem::path(TSIGN_SOURCE_DIR) / "tests/fuzz/seeds/timestamp.hex", true);
  REQUIRE(!inputs.empty());
  for (const auto& reply : inputs) {
    CHECK_THROWS_AS(tsign::authenticode::check_timestamp_response(
                        reply, tsign::fuzz::timestamp_request(),
                        tsign::fuzz::timestamp_signature_value(), tsign::DigestAlg::sha256),
                    tsign::FileError);
  }
}

// fuzz_cab between fuzzing sessions: its seeds mutated in the header, cut short, and lengthened.
TEST_CASE("fuzz_cab's check holds on mutated cabinet seeds", "[fuzz][cab]") {
  const auto seeds =
      read_seeds(std::filesystem::path(TSIGN_SOURCE_DIR) / "tests/fuzz/seeds/cab.hex");
  std::mt19937 rng(20261130);  // fixed seed: the same mutants every run
  std::size_t parsed = 0, rejected = 0;
  for (const auto& original : seeds) {
    for (int i = 0; i < 200; ++i) {
      Bytes m = original;
      if (i % 3 == 0) {
        m.resize(std::uniform_int_distribution<std::size_t>(0, m.size())(rng));
      } else if (i % 3 == 1) {
        std::uniform_int_distribution<std::size_t> pos(0, std::min<std::size_t>(m.size(), 80) - 1);
        m[pos(rng)] = static_cast<std::uint8_t>(rng() & (i % 2 ? 0x0F : 0xFF));
      } else {
        m.resize(m.size() + std::uniform_int_distribution<std::size_t>(1, 15)(rng), 0);
      }
      INFO("mutant " << i << " of a " << original.size() << "-byte seed");
      REQUIRE(tsign::fuzz::check_cab_target(m) == "");
      tsign::formats::cab::MemorySource src(m);
      try {
        tsign::formats::cab::parse(src, "m");
        ++parsed;
      } catch (const tsign::FileError&) {
        ++rejected;
      }
    }
  }
  CHECK(parsed > 50);
  CHECK(rejected > 100);
}

// fuzz_script between fuzzing sessions: its seeds with characters of the block's syntax (line
// ends, comment marks, base64 and non-ASCII bytes) written over their text, cut short, and
// lengthened.
TEST_CASE("fuzz_script's check holds on mutated script seeds", "[fuzz][script]") {
  const auto seeds =
      read_seeds(std::filesystem::path(TSIGN_SOURCE_DIR) / "tests/fuzz/seeds/script.hex");
  static constexpr std::uint8_t kChars[] = {'\r', '\n', '#', '/', '*',  '\'', '<',  '>',  '-',
                                            'S',  'A',  '=', ' ', 0x00, 0xC3, 0xA9, 0xFF, 0xFE};
  std::mt19937 rng(20261130);  // fixed seed: the same mutants every run
  std::size_t parsed = 0, rejected = 0;
  for (const auto& original : seeds) {
    for (int i = 0; i < 60; ++i) {
      Bytes m = original;
      if (i % 3 == 0) {
        m.resize(std::uniform_int_distribution<std::size_t>(1, m.size())(rng));
      } else if (i % 3 == 1) {
        std::uniform_int_distribution<std::size_t> pos(1, m.size() - 1);
        m[pos(rng)] = kChars[rng() % std::size(kChars)];
      } else {
        m.insert(m.end(), {'\r', '\n', kChars[rng() % std::size(kChars)]});
      }
      INFO("mutant " << i << " of a " << original.size() << "-byte seed");
      REQUIRE(tsign::fuzz::check_script(m) == "");
      const auto family = tsign::formats::script::kStyles[m[0] % 6].family;
      try {
        tsign::formats::script::parse(tsign::ByteView(m).subspan(1), family, "m");
        ++parsed;
      } catch (const tsign::FileError&) {
        ++rejected;
      }
    }
  }
  CHECK(parsed > 300);
  CHECK(rejected > 300);
}

// fuzz_appx between fuzzing sessions: its seeds with one byte changed anywhere (the records, the
// central directory, the end records), cut short, and lengthened.
TEST_CASE("fuzz_appx's check holds on mutated app-package seeds", "[fuzz][appx]") {
  const auto seeds =
      read_seeds(std::filesystem::path(TSIGN_SOURCE_DIR) / "tests/fuzz/seeds/appx.hex");
  std::mt19937 rng(20261130);  // fixed seed: the same mutants every run
  std::size_t parsed = 0, rejected = 0;
  for (const auto& original : seeds) {
    for (int i = 0; i < 60; ++i) {
      Bytes m = original;
      if (i % 4 == 0) {
        m.resize(std::uniform_int_distribution<std::size_t>(0, m.size())(rng));
      } else if (i % 4 == 3) {
        m.resize(m.size() + std::uniform_int_distribution<std::size_t>(1, 15)(rng), 0);
      } else {
        std::uniform_int_distribution<std::size_t> pos(0, m.size() - 1);
        m[pos(rng)] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
      }
      INFO("mutant " << i << " of a " << original.size() << "-byte seed");
      REQUIRE(tsign::fuzz::check_appx(m) == "");
      tsign::formats::MemorySource src(m);
      try {
        tsign::formats::appx::parse(src, "m");
        ++parsed;
      } catch (const tsign::FileError&) {
        ++rejected;
      }
    }
  }
  CHECK(parsed > 10);
  CHECK(rejected > 100);
}
