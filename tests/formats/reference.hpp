// osslsigncode as the reference of the format tests: signing with the test leaf and chain,
// extracting a signature, verifying, and reading the digests it prints. One copy for every
// format's test file, so every format is judged the same way.
#pragma once

#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

#include "common/bytes.hpp"
#include "common/text.hpp"
#include "support/fixtures.hpp"

namespace tsign::test::reference {

// The last "<label> : HEX" of an osslsigncode output (the calculated value comes last), upper
// case.
inline std::string last_hex(const std::string& output, const std::string& label) {
  std::string found;
  for (std::size_t at = output.find(label); at != std::string::npos;
       at = output.find(label, at + 1)) {
    std::size_t colon = output.find(':', at);
    if (colon == std::string::npos) break;
    std::size_t b = output.find_first_not_of(" \t", colon + 1);
    if (b == std::string::npos) break;
    std::size_t e = output.find_first_not_of("0123456789ABCDEFabcdef", b);
    found = output.substr(b, e == std::string::npos ? std::string::npos : e - b);
  }
  return ascii_upper(found);
}

// Signs `in` into `out` with the test leaf and chain (`alg`: "sha256", …).
inline void sign(const std::filesystem::path& in, const std::filesystem::path& out,
                 const char* alg) {
  std::filesystem::remove(out);
  auto r = run_command(std::string("osslsigncode sign -certs ") + quote(fixture("chain.pem")) +
                       " -key " + quote(fixture("leaf.key")) + " -h " + alg + " -in " + quote(in) +
                       " -out " + quote(out));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
}

// The DER of `signed_file`'s signature, as osslsigncode extracts it.
inline Bytes extract_signature(const std::filesystem::path& signed_file,
                               const std::filesystem::path& der_out) {
  std::filesystem::remove(der_out);  // osslsigncode refuses to overwrite
  auto r = run_command("osslsigncode extract-signature -in " + quote(signed_file) + " -out " +
                       quote(der_out));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  return read_all(der_out);
}

// `osslsigncode verify` with `extra` options (e.g. -CAfile).
inline CommandResult verify(const std::filesystem::path& file, const std::string& extra = "") {
  return run_command("osslsigncode verify " + extra + " -in " + quote(file));
}

// The same against the test root.
inline CommandResult verify_trusted(const std::filesystem::path& file) {
  return verify(file, "-CAfile " + quote(fixture("root.pem")));
}

}  // namespace tsign::test::reference
