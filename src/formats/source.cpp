// Sources of the format parsers (source.hpp): a file through the platform layer, or memory.
#include "formats/source.hpp"

#include <algorithm>
#include <cstdio>

#include "common/error.hpp"
#include "platform/platform.hpp"

namespace tsign::formats {

void MemorySource::read_at(std::uint64_t offset, std::span<std::uint8_t> out) {
  if (offset > data_.size() || out.size() > data_.size() - offset)
    throw FileError(name_ + ": unexpected end of file");
  std::copy_n(data_.begin() + static_cast<std::ptrdiff_t>(offset), out.size(), out.begin());
}

std::uint64_t FileSource::size() const {
  return f_.size();
}

void FileSource::read_at(std::uint64_t offset, std::span<std::uint8_t> out) {
  f_.read_at(offset, out);
}

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llX", static_cast<unsigned long long>(v));
  return buf;
}

void fail(std::string_view name, const std::string& reason) {
  throw FileError(std::string(name) + ": " + reason);
}

}  // namespace tsign::formats
