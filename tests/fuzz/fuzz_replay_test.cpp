// Replays the PE fuzz check over the generated fixtures and deterministic mutations of them, so
// the fuzz target's invariants are exercised in every build (no clang/libFuzzer needed).
#include <catch2/catch.hpp>

#include <random>

#include "fuzz_pe.hpp"
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

}  // namespace

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
