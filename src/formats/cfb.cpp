// [MS-CFB] "Compound File Binary File Format", read: the parser checks every chain (FAT, DIFAT,
// mini FAT, directory, mini stream, each stream's) once, because a compound file comes from
// anyone; the reader then follows those chains without checking them again.
#include "formats/cfb.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "common/error.hpp"
#include "formats/cfb_detail.hpp"

namespace tsign::formats::cfb {

using namespace detail;

namespace {

constexpr std::array<std::uint8_t, 8> kMagic{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1};

// Layout::children's order: memcmp over the shorter name (NULs included), the longer first when
// one is a prefix of the other (osslsigncode's dirent_cmp_hash).
bool name_order(const Entry& a, const Entry& b) {
  const int d = std::memcmp(a.raw.data(), b.raw.data(), std::min(a.name_len, b.name_len));
  if (d != 0) return d < 0;
  return a.name_len > b.name_len;
}

// Follows a FAT chain from `start`, calling `visit` with each sector; every sector must be inside
// the file, used once.
template <class Visit>
void walk_fat_chain(const Layout& l, std::uint32_t start, std::vector<bool>& used,
                    std::string_view name, const std::string& what, Visit visit) {
  for (std::uint32_t s = start; s != kEndOfChain;) {
    if (s > kMaxRegSect || s >= l.sectors)
      fail(name, what + " runs to sector " + std::to_string(s) + ", past the end of the file (" +
                     std::to_string(l.sectors) + " sectors)");
    if (s >= l.fat.size())
      fail(name, what + " runs to sector " + std::to_string(s) + ", which the FAT does not cover");
    if (used[s])
      fail(name, what + " reaches sector " + std::to_string(s) +
                     " a second time (a loop, or a sector shared with another chain)");
    used[s] = true;
    visit(s);
    s = l.fat[s];
  }
}

// The same, keeping the chain (for the tables and the mini stream, which stay small).
std::vector<std::uint32_t> fat_chain(const Layout& l, std::uint32_t start, std::vector<bool>& used,
                                     std::string_view name, const std::string& what) {
  std::vector<std::uint32_t> chain;
  walk_fat_chain(l, start, used, name, what, [&](std::uint32_t s) { chain.push_back(s); });
  return chain;
}

Bytes read_sector(Source& src, const Layout& l, std::uint32_t s) {
  Bytes b(l.sector_size, 0);
  const std::size_t n = sector_bytes(l, s);
  src.read_at(sector_offset(l, s), std::span<std::uint8_t>(b.data(), n));
  return b;
}

}  // namespace

std::string entry_label(const Entry& e, std::uint32_t id) {
  std::string n;
  for (std::size_t i = 0; i + 1 < e.name_len && i + 1 < 64; i += 2) {
    const std::uint16_t c = le16(&e.raw[i]);
    if (c == 0) break;
    n += (c >= 0x20 && c < 0x7F && c != '"') ? static_cast<char>(c) : '?';
  }
  return "directory entry " + std::to_string(id) + " (\"" + n + "\")";
}

bool detect(Source& src) {
  try {
    if (src.size() < 512) return false;
    std::array<std::uint8_t, 8> m{};
    src.read_at(0, m);
    return m == kMagic;
  } catch (const Error&) {
    return false;
  }
}

Layout parse(Source& src, std::string_view name) {
  Layout l;
  l.file_size = src.size();
  if (l.file_size < 512) fail(name, "not a compound file: shorter than its 512-byte header");
  src.read_at(0, l.header);
  const std::uint8_t* h = l.header.data();
  if (!std::equal(kMagic.begin(), kMagic.end(), h))
    fail(name, "not a compound file: no D0 CF 11 E0 A1 B1 1A E1 signature");
  l.major = le16(h + 0x1A);
  if (l.major != 3 && l.major != 4)
    fail(name, "unknown compound file version " + std::to_string(l.major) + " (expected 3 or 4)");
  if (le16(h + 0x1C) != 0xFFFE) fail(name, "the compound file header's byte order is not 0xFFFE");
  const std::uint16_t shift = le16(h + 0x1E);
  if ((l.major == 3 && shift != 9) || (l.major == 4 && shift != 12))
    fail(name, "sector shift " + std::to_string(shift) + " does not match version " +
                   std::to_string(l.major) + " (9 for version 3, 12 for version 4)");
  if (le16(h + 0x20) != 6) fail(name, "the mini sector shift is not 6 (64-byte mini sectors)");
  if (le32(h + 0x38) != kMiniCutoff) fail(name, "the mini stream cutoff is not 4096");
  l.sector_size = 1u << shift;
  if (l.file_size < 2 * std::uint64_t{l.sector_size})
    fail(name, "the file is too short to hold a compound file's header and a sector");
  l.sectors = (l.file_size - l.sector_size + l.sector_size - 1) / l.sector_size;
  if (l.sectors > kMaxRegSect) fail(name, "the file holds more sectors than a compound file can");
  const std::uint32_t per = l.sector_size / 4;

  const std::uint32_t n_fat = le32(h + 0x2C);
  const std::uint32_t first_dir = le32(h + 0x30);
  const std::uint32_t first_minifat = le32(h + 0x3C);
  const std::uint32_t n_minifat = le32(h + 0x40);
  const std::uint32_t first_difat = le32(h + 0x44);
  const std::uint32_t n_difat = le32(h + 0x48);
  for (auto [count, what] :
       {std::pair{n_fat, "FAT"}, std::pair{n_minifat, "mini FAT"}, std::pair{n_difat, "DIFAT"}})
    if (count > l.sectors)
      fail(name, std::string("the header counts ") + std::to_string(count) + " " + what +
                     " sectors, more than the file holds (" + std::to_string(l.sectors) + ")");
  if (n_fat == 0) fail(name, "the header counts no FAT sectors");

  std::vector<bool> used(static_cast<std::size_t>(l.sectors), false);
  auto claim = [&](std::uint32_t s, const char* what) {
    if (s >= l.sectors)
      fail(name, std::string(what) + " sector " + std::to_string(s) +
                     " is past the end of the file (" + std::to_string(l.sectors) + " sectors)");
    if (used[s])
      fail(name, std::string(what) + " sector " + std::to_string(s) +
                     " is used twice (a loop, or a sector shared with another table)");
    used[s] = true;
  };

  // The DIFAT: the first 109 FAT sector numbers in the header, the rest in a chain of sectors.
  for (std::size_t i = 0; i < kHeaderDifat && l.fat_sectors.size() < n_fat; ++i)
    l.fat_sectors.push_back(le32(h + 0x4C + 4 * i));
  std::uint32_t ds = first_difat;
  for (std::uint32_t i = 0; i < n_difat; ++i) {
    claim(ds, "DIFAT");
    l.difat_sectors.push_back(ds);
    Bytes b = read_sector(src, l, ds);
    for (std::uint32_t k = 0; k + 1 < per && l.fat_sectors.size() < n_fat; ++k)
      l.fat_sectors.push_back(le32(&b[4 * k]));
    ds = le32(&b[4 * (per - 1)]);
  }
  if (l.fat_sectors.size() < n_fat)
    fail(name, "the DIFAT lists " + std::to_string(l.fat_sectors.size()) +
                   " FAT sectors, fewer than the header's " + std::to_string(n_fat));
  l.fat.reserve(std::size_t{n_fat} * per);
  for (std::uint32_t s : l.fat_sectors) {
    claim(s, "FAT");
    Bytes b = read_sector(src, l, s);
    for (std::uint32_t k = 0; k < per; ++k) l.fat.push_back(le32(&b[4 * k]));
  }
  // The tables' own sectors must be marked as such, or a chain could run through them.
  for (std::uint32_t s : l.fat_sectors)
    if (l.fat[s] != kFatSect)
      fail(name, "FAT sector " + std::to_string(s) + " is not marked as a FAT sector in the FAT");

  l.dir_sectors = fat_chain(l, first_dir, used, name, "the directory chain");
  if (l.dir_sectors.empty()) fail(name, "the directory is empty");
  l.minifat_sectors = fat_chain(l, first_minifat, used, name, "the mini FAT chain");
  if (l.minifat_sectors.size() != n_minifat)
    fail(name, "the mini FAT chain has " + std::to_string(l.minifat_sectors.size()) +
                   " sectors, the header counts " + std::to_string(n_minifat));
  for (std::uint32_t s : l.minifat_sectors) {
    Bytes b = read_sector(src, l, s);
    for (std::uint32_t k = 0; k < per; ++k) l.minifat.push_back(le32(&b[4 * k]));
  }
  const std::uint32_t per_dir = l.sector_size / kEntrySize;
  l.entries.resize(l.dir_sectors.size() * per_dir);
  for (std::size_t i = 0; i < l.dir_sectors.size(); ++i) {
    Bytes b = read_sector(src, l, l.dir_sectors[i]);
    for (std::uint32_t k = 0; k < per_dir; ++k) {
      Entry& e = l.entries[i * per_dir + k];
      std::copy_n(b.begin() + k * kEntrySize, kEntrySize, e.raw.begin());
      decode(e, l.major);
    }
  }
  Entry& root = l.entries[0];
  if (root.type != kRoot) fail(name, "the first directory entry is not the root storage");

  // The mini stream: the root entry's chain.
  if (root.size > 0) {
    l.ministream = fat_chain(l, root.start, used, name, "the mini stream");
    if (std::uint64_t{l.ministream.size()} * l.sector_size < root.size)
      fail(name, "the mini stream is " + std::to_string(root.size) + " bytes but its chain holds " +
                     std::to_string(l.ministream.size()) + " sectors");
  }
  const std::uint64_t mini_sectors = (root.size + kMiniSector - 1) / kMiniSector;
  // Every mini sector must lie in the file, whole: the file's last sector may be cut short, and
  // a mini sector in the missing part would only be found when the stream holding it is read,
  // after the file was accepted.
  for (std::size_t i = 0; i < l.ministream.size(); ++i) {
    const std::uint64_t from = std::uint64_t{i} * l.sector_size;
    if (from >= mini_sectors * kMiniSector) break;
    const std::uint64_t need =
        std::min<std::uint64_t>(l.sector_size, mini_sectors * kMiniSector - from);
    if (sector_bytes(l, l.ministream[i]) < need)
      fail(name, "the mini stream ends past the end of the file");
  }

  // The directory tree, walked without recursion; each entry may be reached once.
  l.children.resize(l.entries.size());
  std::vector<bool> seen(l.entries.size(), false);
  std::vector<bool> mini_used(l.minifat.size(), false);
  seen[0] = true;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> todo;  // (entry, its parent storage)
  if (root.child != kNoStream) todo.emplace_back(root.child, 0);
  while (!todo.empty()) {
    auto [id, parent] = todo.back();
    todo.pop_back();
    if (id >= l.entries.size())
      fail(name, "the directory refers to entry " + std::to_string(id) + ", beyond its " +
                     std::to_string(l.entries.size()) + " entries");
    if (seen[id])
      fail(name, "the directory tree reaches entry " + std::to_string(id) +
                     " twice (a cycle in the directory)");
    seen[id] = true;
    const Entry& e = l.entries[id];
    const std::string label = entry_label(e, id);
    if (e.type != kStorage && e.type != kStream)
      fail(name, label + " in the directory tree is neither a storage nor a stream");
    if (e.name_len < 2 || e.name_len > 64 || e.name_len % 2 != 0)
      fail(name, label + " has an invalid name length " + std::to_string(e.name_len));
    l.children[parent].push_back(id);
    if (e.left != kNoStream) todo.emplace_back(e.left, parent);
    if (e.right != kNoStream) todo.emplace_back(e.right, parent);
    if (e.type == kStorage && e.child != kNoStream) todo.emplace_back(e.child, id);
    if (e.type != kStream || e.size == 0) continue;
    if (e.size > l.file_size)
      fail(name, label + " is " + std::to_string(e.size) + " bytes, larger than the file");
    if (e.size < kMiniCutoff) {
      std::uint64_t count = 0;
      for (std::uint32_t m = e.start; m != kEndOfChain; m = l.minifat[m]) {
        if (m >= l.minifat.size() || m >= mini_sectors)
          fail(name, label + " runs to mini sector " + std::to_string(m) +
                         ", beyond the mini stream (" + std::to_string(mini_sectors) +
                         " mini sectors)");
        if (mini_used[m])
          fail(name, label + " reaches mini sector " + std::to_string(m) +
                         " a second time (a loop, or a mini sector shared with another stream)");
        mini_used[m] = true;
        ++count;
      }
      if (count * kMiniSector < e.size)
        fail(name, label + " is " + std::to_string(e.size) + " bytes but its mini chain holds " +
                       std::to_string(count) + " mini sectors");
    } else {
      // Walked, not stored: the chain of a 2 GiB stream would be 16 MiB of sector numbers.
      const std::uint64_t k = (e.size + l.sector_size - 1) / l.sector_size;
      std::uint64_t count = 0;
      bool short_sector = false;  // a sector the stream needs whole lies past the end of the file
      walk_fat_chain(l, e.start, used, name, label, [&](std::uint32_t sector) {
        if (count < k) {
          const std::uint64_t need =
              count + 1 < k ? l.sector_size : e.size - (k - 1) * l.sector_size;
          if (sector_bytes(l, sector) < need) short_sector = true;
        }
        ++count;
      });
      if (count * l.sector_size < e.size)
        fail(name, label + " is " + std::to_string(e.size) + " bytes but its chain holds " +
                       std::to_string(count) + " sectors");
      if (short_sector) fail(name, label + " ends past the end of the file");
    }
  }

  for (std::size_t id = 0; id < l.children.size(); ++id) {
    auto& c = l.children[id];
    std::sort(c.begin(), c.end(), [&](std::uint32_t a, std::uint32_t b) {
      return name_order(l.entries[a], l.entries[b]);
    });
    for (std::size_t i = 1; i < c.size(); ++i) {
      const Entry& a = l.entries[c[i - 1]];
      const Entry& b = l.entries[c[i]];
      if (a.name_len == b.name_len && std::memcmp(a.raw.data(), b.raw.data(), a.name_len) == 0)
        fail(name, entry_label(b, c[i]) + " has the name of another entry in the same storage");
    }
  }
  return l;
}

bool same_structure(const Layout& a, const Layout& b) {
  if (a.header != b.header || a.fat != b.fat || a.minifat != b.minifat ||
      a.dir_sectors != b.dir_sectors || a.entries.size() != b.entries.size())
    return false;
  for (std::size_t i = 0; i < a.entries.size(); ++i)
    if (a.entries[i].raw != b.entries[i].raw) return false;
  return true;
}

[[noreturn]] void changed(std::string_view name) {
  fail(name, "the file changed while it was being signed; sign it again");
}

void StreamReader::read(const Entry& e, const std::function<void(ByteView)>& fn) {
  if (e.size == 0) return;
  if (e.size < kMiniCutoff) {
    std::uint64_t left = e.size;
    for (std::uint32_t m = e.start; left > 0; m = l_.minifat[m]) {
      const std::uint64_t off = std::uint64_t{m} * kMiniSector;
      const std::uint32_t reg = l_.ministream[static_cast<std::size_t>(off / l_.sector_size)];
      load(reg);
      const std::size_t in = static_cast<std::size_t>(off % l_.sector_size);
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, kMiniSector));
      if (in + n > cache_len_) fail(name_, "a mini sector lies past the end of the file");
      fn(ByteView(cache_.data() + in, n));
      left -= n;
    }
    return;
  }
  std::uint64_t left = e.size;
  std::uint32_t s = e.start;
  const std::size_t per_run = kChunk / l_.sector_size;
  Bytes buf;
  while (left > 0) {
    // A run of consecutive sectors, read at once.
    std::vector<std::uint32_t> run{s};
    std::uint32_t next = l_.fat[s];
    std::uint64_t want = std::min<std::uint64_t>(left, l_.sector_size);
    while (run.size() < per_run && want < left && next == run.back() + 1) {
      run.push_back(next);
      want = std::min<std::uint64_t>(left, std::uint64_t{run.size()} * l_.sector_size);
      next = l_.fat[next];
    }
    // Whole sectors (as present in the file) so that the fingerprints match the copy's.
    const std::uint64_t first = sector_offset(l_, run.front());
    const std::uint64_t span =
        std::min<std::uint64_t>(std::uint64_t{run.size()} * l_.sector_size, l_.file_size - first);
    buf.resize(static_cast<std::size_t>(span));
    src_.read_at(first, buf);
    for (std::size_t i = 0; i < run.size() && on_sector_; ++i) {
      const std::size_t a = i * l_.sector_size;
      on_sector_(run[i],
                 ByteView(buf.data() + a, std::min<std::size_t>(l_.sector_size, buf.size() - a)));
    }
    if (want > buf.size()) fail(name_, "a stream ends past the end of the file");
    fn(ByteView(buf.data(), static_cast<std::size_t>(want)));
    left -= want;
    s = next;
  }
}

void StreamReader::load(std::uint32_t reg) {
  if (cached_ == reg) return;
  cache_len_ = sector_bytes(l_, reg);
  cache_.resize(l_.sector_size);
  src_.read_at(sector_offset(l_, reg), std::span<std::uint8_t>(cache_.data(), cache_len_));
  if (on_sector_) on_sector_(reg, ByteView(cache_.data(), cache_len_));
  cached_ = reg;
}

}  // namespace tsign::formats::cfb
