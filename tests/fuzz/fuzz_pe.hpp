// The PE fuzz check, shared by the libFuzzer target and the regression test of every build.
#pragma once

#include <string>

#include "common/bytes.hpp"

namespace tsign::fuzz {

struct PeCheck {
  bool parsed = false;    // the bytes were accepted as a signable PE image
  std::string violation;  // empty, or the invariant the code broke
};

// Feeds arbitrary bytes to the PE parser, the digest and write_signed, and checks what must
// hold for any input: detection agrees with parsing, errors are FileErrors, and a written
// image parses again with the same digest, the embedded signature and a correct checksum.
PeCheck check_pe(ByteView data);

}  // namespace tsign::fuzz
