// [MS-CFB] constants and byte-level helpers shared by the compound-file parser (cfb.cpp) and
// writer (cfb_write.cpp); not an interface: only those two files include it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "formats/cfb.hpp"

namespace tsign::formats::cfb::detail {

constexpr std::uint32_t kMaxRegSect = 0xFFFFFFFA;
constexpr std::uint32_t kDifSect = 0xFFFFFFFC;
constexpr std::uint32_t kFatSect = 0xFFFFFFFD;
constexpr std::uint32_t kEndOfChain = 0xFFFFFFFE;
constexpr std::uint32_t kFreeSect = 0xFFFFFFFF;
constexpr std::uint32_t kMiniSector = 64;
constexpr std::size_t kHeaderDifat = 109;
constexpr std::size_t kChunk = std::size_t{1} << 20;

inline std::uint16_t le16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
inline std::uint32_t le32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
inline void put32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

[[noreturn]] inline void fail(std::string_view name, const std::string& reason) {
  throw FileError(std::string(name) + ": " + reason);
}

inline std::uint64_t sector_offset(const Layout& l, std::uint32_t s) {
  return (std::uint64_t{s} + 1) * l.sector_size;
}

// Bytes of sector `s` present in the file (the last sector may be cut short).
inline std::size_t sector_bytes(const Layout& l, std::uint32_t s) {
  const std::uint64_t off = sector_offset(l, s);
  if (off >= l.file_size) return 0;
  return static_cast<std::size_t>(std::min<std::uint64_t>(l.sector_size, l.file_size - off));
}

inline void decode(Entry& e, std::uint16_t major) {
  const std::uint8_t* p = e.raw.data();
  e.name_len = le16(p + 0x40);
  e.type = p[0x42];
  e.left = le32(p + 0x44);
  e.right = le32(p + 0x48);
  e.child = le32(p + 0x4C);
  e.start = le32(p + 0x74);
  // Version 3 readers must ignore the high half of the size (some writers leave garbage there).
  e.size = le32(p + 0x78);
  if (major == 4) e.size |= std::uint64_t{le32(p + 0x7C)} << 32;
}

// [MS-CFB] 2.6.4: shorter names first, then code unit by code unit, upper-cased (ASCII only:
// MSI's stream names are ASCII or its own encoding above U+3800, which has no case).
inline bool tree_order(const Entry& a, const Entry& b) {
  if (a.name_len != b.name_len) return a.name_len < b.name_len;
  for (std::size_t i = 0; i + 1 < a.name_len; i += 2) {
    std::uint16_t x = le16(&a.raw[i]), y = le16(&b.raw[i]);
    if (x >= 'a' && x <= 'z') x = static_cast<std::uint16_t>(x - 32);
    if (y >= 'a' && y <= 'z') y = static_cast<std::uint16_t>(y - 32);
    if (x != y) return x < y;
  }
  return false;
}

}  // namespace tsign::formats::cfb::detail
