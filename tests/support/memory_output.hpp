// The in-memory formats::SignedOutput of the tests (and of the fuzz targets): collects what a
// format writes, so a signed image can be checked without touching a disk.
#pragma once

#include "common/bytes.hpp"
#include "formats/format.hpp"

namespace tsign::test {

class MemoryOutput final : public formats::SignedOutput {
 public:
  void write(ByteView data) override { bytes.insert(bytes.end(), data.begin(), data.end()); }
  Bytes bytes;
};

}  // namespace tsign::test
