// A minimal compound-file writer ([MS-CFB]) for tests and fuzz seeds: version 3 (512-byte
// sectors) or 4 (4096-byte sectors), streams in the root storage (the small ones in the mini
// stream), laid out as [FAT][DIFAT][directory][mini FAT][mini stream][streams...]. Tests mutate
// its output to make hostile files; `Cfb` records where each part went.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace tsign::test {

struct CfbStream {
  std::string name;  // ASCII; "\x05..." allowed
  std::vector<std::uint8_t> data;
};

struct Cfb {
  std::vector<std::uint8_t> bytes;
  std::uint32_t sector_size = 512;
  std::uint32_t first_fat = 0, first_dir = 0, first_minifat = 0, first_ministream = 0;
  std::vector<std::uint32_t> stream_start;  // per input stream: first sector or mini sector
  std::size_t offset(std::uint32_t sector) const { return (std::size_t{sector} + 1) * sector_size; }
  void put32(std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
  }
  std::uint32_t get32(std::size_t at) const {
    return bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) |
           (static_cast<std::uint32_t>(bytes[at + 3]) << 24);
  }
  // Byte offset of FAT entry `s` (the FAT is contiguous from first_fat in this writer).
  std::size_t fat_entry(std::uint32_t s) const { return offset(first_fat) + 4 * std::size_t{s}; }
  std::size_t dir_entry(std::uint32_t id) const {
    return offset(first_dir) + 128 * std::size_t{id};
  }
};

inline Cfb make_cfb(int major, std::vector<CfbStream> streams) {
  constexpr std::uint32_t kEnd = 0xFFFFFFFE, kFree = 0xFFFFFFFF, kFatS = 0xFFFFFFFD,
                          kDifS = 0xFFFFFFFC, kNone = 0xFFFFFFFF;
  Cfb c;
  c.sector_size = major == 4 ? 4096 : 512;
  const std::uint32_t ssz = c.sector_size, per = ssz / 4;
  auto up = [](std::uint64_t n, std::uint64_t d) {
    return static_cast<std::uint32_t>((n + d - 1) / d);
  };
  // Storages: a stream named "Stg/Name" is "Name" in storage "Stg" (one level), whose CLSID is
  // 16 bytes of 0x11 so that its place in the digest shows.
  std::vector<std::string> storages;
  for (auto& st : streams)
    if (auto slash = st.name.find('/');
        slash != std::string::npos &&
        std::find(storages.begin(), storages.end(), st.name.substr(0, slash)) == storages.end())
      storages.push_back(st.name.substr(0, slash));
  const std::size_t n_entries = 1 + streams.size() + storages.size();
  std::uint64_t mini_len = 0, big_sectors = 0;
  for (auto& s : streams) {
    if (s.data.size() < 4096)
      mini_len += up(s.data.size(), 64) * 64ull;
    else
      big_sectors += up(s.data.size(), ssz);
  }
  const std::uint32_t n_dir = up(n_entries * 128, ssz);
  const std::uint32_t n_minifat = up(up(mini_len, 64) * 4ull, ssz);
  const std::uint32_t n_mini = up(mini_len, ssz);
  const std::uint64_t data = n_dir + n_minifat + n_mini + big_sectors;
  std::uint32_t n_fat = 1, n_difat = 0;
  for (;;) {
    const std::uint64_t total = data + n_fat + n_difat;
    const std::uint32_t f = up(total, per);
    const std::uint32_t d = f > 109 ? up(f - 109, per - 1) : 0;
    if (f <= n_fat && d <= n_difat) break;
    n_fat = std::max(n_fat, f);
    n_difat = std::max(n_difat, d);
  }
  const std::uint64_t total = data + n_fat + n_difat;
  c.bytes.assign((total + 1) * ssz, 0);
  std::vector<std::uint32_t> fat(std::size_t{n_fat} * per, kFree);
  std::uint32_t next = 0;
  c.first_fat = next;
  for (std::uint32_t i = 0; i < n_fat; ++i) fat[next++] = kFatS;
  const std::uint32_t first_difat = n_difat ? next : kEnd;
  for (std::uint32_t i = 0; i < n_difat; ++i) fat[next++] = kDifS;
  auto chain = [&](std::uint32_t n) {
    const std::uint32_t first = n ? next : kEnd;
    for (std::uint32_t i = 0; i < n; ++i, ++next) fat[next] = i + 1 < n ? next + 1 : kEnd;
    return first;
  };
  c.first_dir = chain(n_dir);
  c.first_minifat = chain(n_minifat);
  c.first_ministream = chain(n_mini);
  // Header.
  const std::uint8_t magic[8] = {0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1};
  std::copy(magic, magic + 8, c.bytes.begin());
  c.bytes[0x18] = 0x3E;
  c.bytes[0x1A] = static_cast<std::uint8_t>(major);
  c.bytes[0x1C] = 0xFE;
  c.bytes[0x1D] = 0xFF;
  c.bytes[0x1E] = major == 4 ? 12 : 9;
  c.bytes[0x20] = 6;
  if (major == 4) c.put32(0x28, n_dir);
  c.put32(0x2C, n_fat);
  c.put32(0x30, c.first_dir);
  c.put32(0x38, 4096);
  c.put32(0x3C, c.first_minifat);
  c.put32(0x40, n_minifat);
  c.put32(0x44, first_difat);
  c.put32(0x48, n_difat);
  for (std::uint32_t i = 0; i < 109; ++i)
    c.put32(0x4C + 4 * i, i < n_fat ? c.first_fat + i : kFree);
  for (std::uint32_t k = 0; k < n_difat; ++k) {
    const std::size_t at = c.offset(first_difat + k);
    for (std::uint32_t i = 0; i + 1 < per; ++i) {
      const std::uint32_t f = 109 + k * (per - 1) + i;
      c.put32(at + 4 * i, f < n_fat ? c.first_fat + f : kFree);
    }
    c.put32(at + ssz - 4, k + 1 < n_difat ? first_difat + k + 1 : kEnd);
  }
  // Streams.
  std::vector<std::uint32_t> minifat(std::size_t{n_minifat} * per, kFree);
  std::uint32_t mini_next = 0;
  c.stream_start.resize(streams.size());
  for (std::size_t i = 0; i < streams.size(); ++i) {
    const auto& d = streams[i].data;
    if (d.empty()) {
      c.stream_start[i] = kEnd;
    } else if (d.size() < 4096) {
      const std::uint32_t k = up(d.size(), 64);
      c.stream_start[i] = mini_next;
      for (std::uint32_t j = 0; j < k; ++j)
        minifat[mini_next + j] = j + 1 < k ? mini_next + j + 1 : kEnd;
      const std::uint64_t off = std::uint64_t{mini_next} * 64;
      std::copy(d.begin(), d.end(),
                c.bytes.begin() + static_cast<std::ptrdiff_t>(c.offset(c.first_ministream) + off));
      mini_next += k;
    } else {
      c.stream_start[i] = chain(up(d.size(), ssz));
      std::copy(d.begin(), d.end(),
                c.bytes.begin() + static_cast<std::ptrdiff_t>(c.offset(c.stream_start[i])));
    }
  }
  for (std::size_t i = 0; i < fat.size(); ++i) c.put32(c.offset(c.first_fat) + 4 * i, fat[i]);
  for (std::size_t i = 0; i < minifat.size(); ++i)
    c.put32(c.offset(c.first_minifat) + 4 * i, minifat[i]);
  // Directory: root, then the streams; the tree is a right-leaning chain in name order.
  auto entry = [&](std::uint32_t id, const std::string& name, std::uint8_t type,
                   std::uint32_t start, std::uint64_t size) {
    const std::size_t at = c.dir_entry(id);
    for (std::size_t i = 0; i < name.size(); ++i)
      c.bytes[at + 2 * i] = static_cast<std::uint8_t>(name[i]);
    c.bytes[at + 0x40] = static_cast<std::uint8_t>(2 * name.size() + 2);
    c.bytes[at + 0x42] = type;
    c.bytes[at + 0x43] = 1;
    c.put32(at + 0x44, kNone);
    c.put32(at + 0x48, kNone);
    c.put32(at + 0x4C, kNone);
    c.put32(at + 0x74, start);
    c.put32(at + 0x78, static_cast<std::uint32_t>(size));
  };
  entry(0, "Root Entry", 5, mini_len ? c.first_ministream : kEnd, mini_len);
  // Each storage's children (the root is storage "") as (entry id, name).
  std::vector<std::pair<std::string, std::vector<std::pair<std::uint32_t, std::string>>>> kids{
      {"", {}}};
  for (auto& stg : storages) kids.push_back({stg, {}});
  auto kids_of = [&](const std::string& parent) -> auto& {
    for (auto& k : kids)
      if (k.first == parent) return k.second;
    return kids[0].second;
  };
  for (std::size_t i = 0; i < streams.size(); ++i) {
    const auto& n = streams[i].name;
    const auto slash = n.find('/');
    const std::string leaf = slash == std::string::npos ? n : n.substr(slash + 1);
    const std::string parent = slash == std::string::npos ? "" : n.substr(0, slash);
    entry(static_cast<std::uint32_t>(i + 1), leaf, 2, c.stream_start[i], streams[i].data.size());
    kids_of(parent).push_back({static_cast<std::uint32_t>(i + 1), leaf});
  }
  for (std::size_t j = 0; j < storages.size(); ++j) {
    const auto id = static_cast<std::uint32_t>(streams.size() + 1 + j);
    entry(id, storages[j], 1, 0, 0);
    std::fill_n(c.bytes.begin() + static_cast<std::ptrdiff_t>(c.dir_entry(id) + 0x50), 16, 0x11);
    kids[0].second.push_back({id, storages[j]});
  }
  for (auto id = static_cast<std::uint32_t>(n_entries); id < n_dir * ssz / 128; ++id) {
    c.put32(c.dir_entry(id) + 0x44, kNone);
    c.put32(c.dir_entry(id) + 0x48, kNone);
    c.put32(c.dir_entry(id) + 0x4C, kNone);
  }
  // Each tree is a right-leaning chain in directory order: shorter names first, then by code
  // unit (the tests' names need no case folding).
  for (auto& [parent, list] : kids) {
    std::sort(list.begin(), list.end(), [](const auto& x, const auto& y) {
      if (x.second.size() != y.second.size()) return x.second.size() < y.second.size();
      return x.second < y.second;
    });
    if (list.empty()) continue;
    std::uint32_t pid = 0;
    for (std::size_t j = 0; j < storages.size(); ++j)
      if (storages[j] == parent) pid = static_cast<std::uint32_t>(streams.size() + 1 + j);
    c.put32(c.dir_entry(pid) + 0x4C, list[0].first);
    for (std::size_t k = 0; k + 1 < list.size(); ++k)
      c.put32(c.dir_entry(list[k].first) + 0x48, list[k + 1].first);
  }
  return c;
}

}  // namespace tsign::test
