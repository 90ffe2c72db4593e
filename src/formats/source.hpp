// Random access to the bytes of a file being parsed, shared by every format: the parsers are
// written against Source so that they run the same over a file (FileSource, production) and over
// memory (MemorySource: unit tests and fuzz targets), and the little-endian field helpers every
// binary format of Windows uses. Not thread-safe; a Source belongs to one parser at a time.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/bytes.hpp"

namespace tsign::platform {
class ReadFile;
}

namespace tsign::formats {

class Source {
 public:
  virtual ~Source() = default;
  virtual std::uint64_t size() const = 0;
  // Reads exactly out.size() bytes at offset; throws FileError if they are not there.
  virtual void read_at(std::uint64_t offset, std::span<std::uint8_t> out) = 0;
};

class MemorySource final : public Source {
 public:
  explicit MemorySource(ByteView data, std::string name = "<memory>")
      : data_(data), name_(std::move(name)) {}
  // It only views the bytes: a temporary buffer would be gone before the first read.
  explicit MemorySource(Bytes&& temporary, std::string name = "<memory>") = delete;
  std::uint64_t size() const override { return data_.size(); }
  void read_at(std::uint64_t offset, std::span<std::uint8_t> out) override;

 private:
  ByteView data_;
  std::string name_;
};

// An open file (platform::ReadFile, which must outlive it).
class FileSource final : public Source {
 public:
  explicit FileSource(platform::ReadFile& f) : f_(f) {}
  std::uint64_t size() const override;
  void read_at(std::uint64_t offset, std::span<std::uint8_t> out) override;

 private:
  platform::ReadFile& f_;
};

// Little-endian fields, as every Windows file format stores them.
inline std::uint16_t le16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
inline std::uint32_t le32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
inline void put_le16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v);
  p[1] = static_cast<std::uint8_t>(v >> 8);
}
inline void put_le32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
inline std::uint64_t round8(std::uint64_t v) {
  return (v + 7) & ~std::uint64_t{7};
}

// "0x1A2B": offsets and sizes in messages, as hex editors show them.
std::string hex(std::uint64_t v);

// Throws FileError "<name>: <reason>": the file named once, then what is wrong with it.
[[noreturn]] void fail(std::string_view name, const std::string& reason);

}  // namespace tsign::formats
