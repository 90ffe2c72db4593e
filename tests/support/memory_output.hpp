// The in-memory formats::SignedOutput of the tests (and of the fuzz targets): collects what a
// format writes, so a signed image can be checked without touching a disk.
#pragma once

#include <algorithm>
#include <stdexcept>

#include "common/bytes.hpp"
#include "formats/format.hpp"

namespace tsign::test {

class MemoryOutput final : public formats::SignedOutput {
 public:
  void write(ByteView data) override { bytes.insert(bytes.end(), data.begin(), data.end()); }
  Bytes bytes;
};

// The same for the copy a format writes while it digests (SignableFile::digest_copying).
class MemoryPatchable final : public formats::PatchableOutput {
 public:
  void write(ByteView data) override { bytes.insert(bytes.end(), data.begin(), data.end()); }
  void patch(std::uint64_t offset, ByteView data) override {
    if (offset > bytes.size() || data.size() > bytes.size() - offset)
      throw std::logic_error("patch outside what was written");
    std::copy(data.begin(), data.end(), bytes.begin() + static_cast<std::ptrdiff_t>(offset));
  }
  Bytes bytes;
};

}  // namespace tsign::test
