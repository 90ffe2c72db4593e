// The in-memory formats::SignedOutput of the tests (and of the fuzz targets): collects what a
// format writes, so a signed image can be checked without touching a disk.
#pragma once

#include <algorithm>
#include <deque>
#include <stdexcept>

#include "common/bytes.hpp"
#include "formats/format.hpp"

namespace tsign::test {

class MemoryOutput final : public formats::SignedOutput {
 public:
  void write(ByteView data) override { bytes.insert(bytes.end(), data.begin(), data.end()); }
  Bytes bytes;
};

// The same for the copy a format writes while it digests (SignableFile::digest_copying). It
// holds the format to lend()'s contract: a lent chunk's bytes must stay as they were lent until
// formats::kLendDepth more chunks are handed over or the output is settled (the engine's copy
// may go on writing them from another thread until then), or the next call throws.
class MemoryPatchable final : public formats::PatchableOutput {
 public:
  void write(ByteView data) override {
    check_lent();
    if (window_.size() == formats::kLendDepth) window_.pop_front();  // free to change now
    bytes.insert(bytes.end(), data.begin(), data.end());
  }
  void lend(ByteView data) override {
    write(data);
    window_.push_back({data, bytes.size() - data.size()});
    ++lent;
  }
  void settle() override {
    check_lent();
    window_.clear();
  }
  void patch(std::uint64_t offset, ByteView data) override {
    settle();
    if (offset > bytes.size() || data.size() > bytes.size() - offset)
      throw std::logic_error("patch outside what was written");
    std::copy(data.begin(), data.end(), bytes.begin() + static_cast<std::ptrdiff_t>(offset));
  }
  Bytes bytes;
  std::size_t lent = 0;  // chunks lent

 private:
  struct Lent {
    ByteView data;       // the lender's buffer
    std::size_t at = 0;  // where its bytes went in `bytes`
  };
  void check_lent() const {
    for (const auto& l : window_)
      if (!std::equal(l.data.begin(), l.data.end(),
                      bytes.begin() + static_cast<std::ptrdiff_t>(l.at)))
        throw std::logic_error("a lent chunk changed while the output could still be reading it");
  }
  std::deque<Lent> window_;  // chunks lent that the output may still be reading
};

}  // namespace tsign::test
