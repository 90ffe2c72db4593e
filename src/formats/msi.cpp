// Windows Installer files: [MS-CFB] "Compound File Binary File Format" for the container, and the
// MSI signing rules of docs/authenticode.md (row MSI), checked against osslsigncode's msi.c, the
// judge of our output: the digest order (raw UTF-16LE names compared with memcmp over the
// shorter length, the longer first on a tie), the CLSID after each storage's children, the
// MsiDigitalSignatureEx pre-hash, and the SIP GUID's byte order.
#include "formats/msi.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>

#include <openssl/objects.h>
#include <openssl/pkcs7.h>

#include "common/error.hpp"
#include "formats/spc_data.hpp"
#include "platform/platform.hpp"

namespace tsign::formats::msi {

namespace {

constexpr std::array<std::uint8_t, 8> kMagic{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1};
constexpr std::uint32_t kMaxRegSect = 0xFFFFFFFA;
constexpr std::uint32_t kDifSect = 0xFFFFFFFC;
constexpr std::uint32_t kFatSect = 0xFFFFFFFD;
constexpr std::uint32_t kEndOfChain = 0xFFFFFFFE;
constexpr std::uint32_t kFreeSect = 0xFFFFFFFF;
constexpr std::uint32_t kNoStream = 0xFFFFFFFF;
constexpr std::uint32_t kMiniCutoff = 4096;
constexpr std::uint32_t kMiniSector = 64;
constexpr std::size_t kHeaderDifat = 109;
constexpr std::size_t kChunk = std::size_t{1} << 20;
// An Authenticode signature is kilobytes; a larger stream is not one we can hold and re-embed.
constexpr std::uint64_t kMaxSignature = 64u << 20;
constexpr std::uint8_t kStorage = 1, kStream = 2, kRoot = 5;

// "\x05DigitalSignature" and "\x05MsiDigitalSignatureEx" as stored: UTF-16LE with the NUL.
Bytes utf16z(std::u16string_view s) {
  Bytes b;
  for (char16_t c : s) {
    b.push_back(static_cast<std::uint8_t>(c));
    b.push_back(static_cast<std::uint8_t>(c >> 8));
  }
  b.push_back(0);
  b.push_back(0);
  return b;
}
const Bytes& ds_name() {
  static const Bytes n = utf16z(
      u"\x05"
      u"DigitalSignature");
  return n;
}
const Bytes& dse_name() {
  static const Bytes n = utf16z(
      u"\x05"
      u"MsiDigitalSignatureEx");
  return n;
}

std::uint16_t le16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
std::uint32_t le32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
void put32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

[[noreturn]] void fail(std::string_view name, const std::string& reason) {
  throw FileError(std::string(name) + ": " + reason);
}
[[noreturn]] void changed(std::string_view name) {
  fail(name, "the file changed while it was being signed; sign it again");
}

std::uint64_t sector_offset(const Layout& l, std::uint32_t s) {
  return (std::uint64_t{s} + 1) * l.sector_size;
}

// Bytes of sector `s` present in the file (the last sector may be cut short).
std::size_t sector_bytes(const Layout& l, std::uint32_t s) {
  const std::uint64_t off = sector_offset(l, s);
  if (off >= l.file_size) return 0;
  return static_cast<std::size_t>(std::min<std::uint64_t>(l.sector_size, l.file_size - off));
}

void decode(Entry& e, std::uint16_t major) {
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

std::string entry_label(const Entry& e, std::uint32_t id) {
  std::string n;
  for (std::size_t i = 0; i + 1 < e.name_len && i + 1 < 64; i += 2) {
    const std::uint16_t c = le16(&e.raw[i]);
    if (c == 0) break;
    n += (c >= 0x20 && c < 0x7F && c != '"') ? static_cast<char>(c) : '?';
  }
  return "directory entry " + std::to_string(id) + " (\"" + n + "\")";
}

// osslsigncode's dirent_cmp_hash: memcmp over the shorter name (NULs included), the longer
// first when one is a prefix of the other.
bool hash_order(const Entry& a, const Entry& b) {
  const int d = std::memcmp(a.raw.data(), b.raw.data(), std::min(a.name_len, b.name_len));
  if (d != 0) return d < 0;
  return a.name_len > b.name_len;
}

// [MS-CFB] 2.6.4: shorter names first, then code unit by code unit, upper-cased (ASCII only:
// MSI's stream names are ASCII or its own encoding above U+3800, which has no case).
bool tree_order(const Entry& a, const Entry& b) {
  if (a.name_len != b.name_len) return a.name_len < b.name_len;
  for (std::size_t i = 0; i + 1 < a.name_len; i += 2) {
    std::uint16_t x = le16(&a.raw[i]), y = le16(&b.raw[i]);
    if (x >= 'a' && x <= 'z') x = static_cast<std::uint16_t>(x - 32);
    if (y >= 'a' && y <= 'z') y = static_cast<std::uint16_t>(y - 32);
    if (x != y) return x < y;
  }
  return false;
}

// Follows a FAT chain from `start`; every sector must be inside the file, used once.
std::vector<std::uint32_t> fat_chain(const Layout& l, std::uint32_t start, std::vector<bool>& used,
                                     std::string_view name, const std::string& what) {
  std::vector<std::uint32_t> chain;
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
    chain.push_back(s);
    s = l.fat[s];
  }
  return chain;
}

Bytes read_sector(Source& src, const Layout& l, std::uint32_t s) {
  Bytes b(l.sector_size, 0);
  const std::size_t n = sector_bytes(l, s);
  src.read_at(sector_offset(l, s), std::span<std::uint8_t>(b.data(), n));
  return b;
}

}  // namespace

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
      auto chain = fat_chain(l, e.start, used, name, label);
      if (std::uint64_t{chain.size()} * l.sector_size < e.size)
        fail(name, label + " is " + std::to_string(e.size) + " bytes but its chain holds " +
                       std::to_string(chain.size()) + " sectors");
      const std::uint64_t k = (e.size + l.sector_size - 1) / l.sector_size;
      for (std::uint64_t i = 0; i < k; ++i) {
        const std::uint64_t need = i + 1 < k ? l.sector_size : e.size - (k - 1) * l.sector_size;
        if (sector_bytes(l, chain[static_cast<std::size_t>(i)]) < need)
          fail(name, label + " ends past the end of the file");
      }
    }
  }

  for (std::size_t id = 0; id < l.children.size(); ++id) {
    auto& c = l.children[id];
    std::sort(c.begin(), c.end(), [&](std::uint32_t a, std::uint32_t b) {
      return hash_order(l.entries[a], l.entries[b]);
    });
    for (std::size_t i = 1; i < c.size(); ++i) {
      const Entry& a = l.entries[c[i - 1]];
      const Entry& b = l.entries[c[i]];
      if (a.name_len == b.name_len && std::memcmp(a.raw.data(), b.raw.data(), a.name_len) == 0)
        fail(name, entry_label(b, c[i]) + " has the name of another entry in the same storage");
    }
  }
  for (std::uint32_t id : l.children[0]) {
    const Entry& e = l.entries[id];
    const bool is_ds =
        std::equal(e.name().begin(), e.name().end(), ds_name().begin(), ds_name().end());
    const bool is_dse =
        std::equal(e.name().begin(), e.name().end(), dse_name().begin(), dse_name().end());
    if ((is_ds || is_dse) && e.type != kStream)
      fail(name, entry_label(e, id) + " is a storage; a signature must be a stream");
    if (is_ds) l.signature = id;
    if (is_dse) l.signature_ex = id;
  }
  return l;
}

namespace {

bool is_signature_entry(const Layout& l, std::uint32_t id) {
  return id == l.signature || id == l.signature_ex;
}

// What a stream read sees of each regular sector, so that a later copy of the same sectors can
// be checked against it: a file edited between the digest pass and the copy is caught.
class Fingerprints {
 public:
  explicit Fingerprints(std::uint64_t sectors) : fp_(static_cast<std::size_t>(sectors), 0) {}
  static std::uint64_t of(ByteView b) {
    // FNV-1a over 8-byte words: fast; it guards against edits, not against an adversary who can
    // already write the file (it would not need a collision to change what gets signed).
    std::uint64_t h = 0xCBF29CE484222325ull ^ b.size();
    std::size_t i = 0;
    for (; i + 8 <= b.size(); i += 8) {
      std::uint64_t w;
      std::memcpy(&w, &b[i], 8);
      h = (h ^ w) * 0x100000001B3ull;
      h ^= h >> 29;
    }
    for (; i < b.size(); ++i) h = (h ^ b[i]) * 0x100000001B3ull;
    return h | 1;  // 0 means "not read"
  }
  void note(std::uint32_t s, ByteView b, std::string_view name) {
    const std::uint64_t f = of(b);
    if (fp_[s] != 0 && fp_[s] != f) changed(name);
    fp_[s] = f;
  }
  std::uint64_t get(std::uint32_t s) const { return fp_[s]; }

 private:
  std::vector<std::uint64_t> fp_;
};

// Reads stream contents for the digest, fingerprinting every regular sector it reads.
class StreamReader {
 public:
  StreamReader(Source& src, const Layout& l, Fingerprints* fps, std::string_view name)
      : src_(src), l_(l), fps_(fps), name_(name) {}

  // Calls fn(ByteView) with the stream's bytes, in order.
  void read(const Entry& e, const std::function<void(ByteView)>& fn) {
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
      for (std::size_t i = 0; i < run.size() && fps_; ++i) {
        const std::size_t a = i * l_.sector_size;
        fps_->note(run[i],
                   ByteView(buf.data() + a, std::min<std::size_t>(l_.sector_size, buf.size() - a)),
                   name_);
      }
      if (want > buf.size()) fail(name_, "a stream ends past the end of the file");
      fn(ByteView(buf.data(), static_cast<std::size_t>(want)));
      left -= want;
      s = next;
    }
  }

 private:
  void load(std::uint32_t reg) {
    if (cached_ == reg) return;
    cache_len_ = sector_bytes(l_, reg);
    cache_.resize(l_.sector_size);
    src_.read_at(sector_offset(l_, reg), std::span<std::uint8_t>(cache_.data(), cache_len_));
    if (fps_) fps_->note(reg, ByteView(cache_.data(), cache_len_), name_);
    cached_ = reg;
  }

  Source& src_;
  const Layout& l_;
  Fingerprints* fps_;
  std::string_view name_;
  Bytes cache_;
  std::size_t cache_len_ = 0;
  std::uint32_t cached_ = kNoStream;
};

// Visits the tree in digest order: on_stream(id) for each stream, on_storage_end(id) after a
// storage's (and finally the root's) children. The root's signature streams are left out.
template <typename OnStream, typename OnStart, typename OnEnd>
void walk(const Layout& l, OnStream&& on_stream, OnStart&& on_storage_start,
          OnEnd&& on_storage_end) {
  std::vector<std::pair<std::uint32_t, std::size_t>> stack{{0, 0}};
  on_storage_start(0);
  while (!stack.empty()) {
    auto& [id, at] = stack.back();
    const auto& c = l.children[id];
    if (at == c.size()) {
      on_storage_end(id);
      stack.pop_back();
      continue;
    }
    const std::uint32_t child = c[at++];
    if (id == 0 && is_signature_entry(l, child)) continue;
    if (l.entries[child].type == kStream) {
      on_stream(child);
    } else {
      on_storage_start(child);
      stack.emplace_back(child, 0);
    }
  }
}

Bytes prehash_of(const Layout& l, const std::vector<Entry>& entries, DigestAlg alg) {
  Hasher h(alg);
  auto meta = [&](std::uint32_t id) {
    const Entry& e = entries[id];
    const std::uint8_t* p = e.raw.data();
    if (e.type != kRoot) h.update(ByteView(p, e.name_len - 2u));
    if (e.type != kStream) {
      h.update(ByteView(p + 0x50, 16));  // CLSID
    } else {
      h.update(ByteView(p + 0x78, 4));  // size, low half
    }
    h.update(ByteView(p + 0x60, 4));                        // state bits
    if (e.type != kRoot) h.update(ByteView(p + 0x64, 16));  // creation and modification times
  };
  walk(l, meta, meta, [](std::uint32_t) {});
  return h.finish();
}

Bytes digest_with(Source& src, const Layout& l, const std::vector<Entry>& entries, DigestAlg alg,
                  Fingerprints* fps, std::string_view name) {
  Hasher h(alg);
  if (l.signature_ex) h.update(prehash_of(l, entries, alg));
  StreamReader reader(src, l, fps, name);
  walk(
      l, [&](std::uint32_t id) { reader.read(l.entries[id], [&](ByteView b) { h.update(b); }); },
      [](std::uint32_t) {},
      [&](std::uint32_t id) { h.update(ByteView(entries[id].raw.data() + 0x50, 16)); });
  return h.finish();
}

Bytes read_stream(Source& src, const Layout& l, std::uint32_t id, std::string_view name) {
  const Entry& e = l.entries[id];
  if (e.size > kMaxSignature)
    fail(name, entry_label(e, id) + " is " + std::to_string(e.size) +
                   " bytes, too large to be a signature");
  Bytes out;
  StreamReader reader(src, l, nullptr, name);
  reader.read(e, [&](ByteView b) { out.insert(out.end(), b.begin(), b.end()); });
  return out;
}

}  // namespace

Bytes prehash(const Layout& layout, DigestAlg alg) {
  return prehash_of(layout, layout.entries, alg);
}

Bytes digest(Source& src, const Layout& layout, DigestAlg alg, std::string_view name) {
  return digest_with(src, layout, layout.entries, alg, nullptr, name);
}

std::optional<Bytes> signature(Source& src, const Layout& layout, std::string_view name) {
  if (!layout.signature) return std::nullopt;
  Bytes b = read_stream(src, layout, *layout.signature, name);
  if (b.empty()) return std::nullopt;
  return b;
}

namespace {

// The digest algorithm (NID) of the primary SignerInfo of a DER PKCS#7, or NID_undef.
int primary_digest_nid(ByteView der) {
  const unsigned char* p = der.data();
  std::unique_ptr<PKCS7, decltype(&PKCS7_free)> p7(
      d2i_PKCS7(nullptr, &p, static_cast<long>(der.size())), &PKCS7_free);
  if (!p7 || !PKCS7_type_is_signed(p7.get())) return NID_undef;
  STACK_OF(PKCS7_SIGNER_INFO)* infos = PKCS7_get_signer_info(p7.get());
  if (!infos || sk_PKCS7_SIGNER_INFO_num(infos) < 1) return NID_undef;
  const PKCS7_SIGNER_INFO* si = sk_PKCS7_SIGNER_INFO_value(infos, 0);
  return si->digest_alg ? OBJ_obj2nid(si->digest_alg->algorithm) : NID_undef;
}

// Frees a stream's sectors in the new tables.
void free_stream(const Layout& l, const Entry& e, std::vector<std::uint32_t>& fat,
                 std::vector<std::uint32_t>& minifat) {
  if (e.size == 0) return;
  std::uint64_t n = 0;
  if (e.size < kMiniCutoff) {
    const std::uint64_t count = (e.size + kMiniSector - 1) / kMiniSector;
    for (std::uint32_t m = e.start; m != kEndOfChain && n < count; ++n) {
      const std::uint32_t next = l.minifat[m];
      minifat[m] = kFreeSect;
      m = next;
    }
  } else {
    const std::uint64_t count = (e.size + l.sector_size - 1) / l.sector_size;
    for (std::uint32_t s = e.start; s != kEndOfChain && n < count; ++n) {
      const std::uint32_t next = l.fat[s];
      fat[s] = kFreeSect;
      s = next;
    }
  }
}

void set_size(Entry& e, std::uint64_t size, std::uint32_t start) {
  put32(e.raw.data() + 0x74, start);
  put32(e.raw.data() + 0x78, static_cast<std::uint32_t>(size));
  put32(e.raw.data() + 0x7C, static_cast<std::uint32_t>(size >> 32));
  e.start = start;
  e.size = size;
}

// Rebuilds the root's red-black tree as a balanced tree: black down to the last full level, the
// nodes below it red (every path then holds the same number of black nodes).
void rebuild_root_tree(std::vector<Entry>& entries, std::vector<std::uint32_t> ids) {
  std::sort(ids.begin(), ids.end(),
            [&](std::uint32_t a, std::uint32_t b) { return tree_order(entries[a], entries[b]); });
  std::size_t full = 0;  // depth of the last full level
  while ((std::size_t{2} << full) - 1 <= ids.size()) ++full;
  std::function<std::uint32_t(std::size_t, std::size_t, std::size_t)> build =
      [&](std::size_t lo, std::size_t hi, std::size_t depth) -> std::uint32_t {
    if (lo >= hi) return kNoStream;
    const std::size_t mid = lo + (hi - lo) / 2;
    Entry& e = entries[ids[mid]];
    const std::uint32_t left = build(lo, mid, depth + 1);
    const std::uint32_t right = build(mid + 1, hi, depth + 1);
    put32(e.raw.data() + 0x44, left);
    put32(e.raw.data() + 0x48, right);
    e.raw[0x43] = depth >= full ? 0 : 1;  // 0 red, 1 black
    e.left = left;
    e.right = right;
    return ids[mid];
  };
  const std::uint32_t top = build(0, ids.size(), 0);
  put32(entries[0].raw.data() + 0x4C, top);
  entries[0].child = top;
}

void put_table(Bytes& b, const std::vector<std::uint32_t>& t, std::size_t from, std::size_t n) {
  b.assign(n * 4, 0xFF);
  for (std::size_t i = 0; i < n && from + i < t.size(); ++i) put32(&b[4 * i], t[from + i]);
}

}  // namespace

// MsiDigitalSignatureEx holds one pre-hash, of the primary signature's algorithm: a signature of
// another algorithm nested into `primary_der` could not verify beside it (osslsigncode refuses
// it too). Checked before a signature is requested (check_can_nest) and again when writing.
void check_nest_digest(ByteView primary_der, DigestAlg alg, std::string_view name) {
  const int nid = primary_digest_nid(primary_der);
  if (nid != NID_undef && nid != EVP_MD_type(evp_md(alg)))
    fail(name,
         "the file has an MsiDigitalSignatureEx stream, which fits one digest algorithm: "
         "a nested " +
             std::string(digest_name(alg)) + " signature would break the " + OBJ_nid2sn(nid) +
             " one; nest with the same file-digest or replace the signature");
}

Bytes write_signed(Source& src, const Layout& layout, ByteView pkcs7_der, SignedOutput& out,
                   std::string_view name, DigestAlg alg) {
  if (pkcs7_der.empty()) fail(name, "cannot embed an empty signature");
  if (src.size() != layout.file_size) changed(name);
  {
    // The structure is read again, not trusted from when the file was opened.
    Layout now = msi::parse(src, name);
    if (now.header != layout.header || now.fat != layout.fat || now.minifat != layout.minifat ||
        now.dir_sectors != layout.dir_sectors || now.entries.size() != layout.entries.size())
      changed(name);
    for (std::size_t i = 0; i < now.entries.size(); ++i)
      if (now.entries[i].raw != layout.entries[i].raw) changed(name);
  }
  if (layout.signature_ex) check_nest_digest(pkcs7_der, alg, name);
  const Layout& l = layout;
  const std::uint32_t ssz = l.sector_size;
  const std::uint32_t per = ssz / 4;
  const std::uint32_t S = static_cast<std::uint32_t>(l.sectors);

  std::vector<std::uint32_t> fat = l.fat;
  std::vector<std::uint32_t> minifat = l.minifat;
  std::vector<Entry> entries = l.entries;
  if (l.signature) free_stream(l, l.entries[*l.signature], fat, minifat);
  if (l.signature_ex) free_stream(l, l.entries[*l.signature_ex], fat, minifat);

  // The signature's directory entry: the old one, or a free slot, or a new directory sector.
  std::uint32_t sig_id = 0;
  bool new_entry = false;
  std::uint32_t dir_add = 0;
  if (l.signature) {
    sig_id = *l.signature;
  } else {
    new_entry = true;
    for (std::uint32_t i = 1; i < entries.size() && sig_id == 0; ++i)
      if (entries[i].type == 0) sig_id = i;
    if (sig_id == 0) {
      sig_id = static_cast<std::uint32_t>(entries.size());
      dir_add = 1;
      Entry blank;
      put32(blank.raw.data() + 0x44, kNoStream);
      put32(blank.raw.data() + 0x48, kNoStream);
      put32(blank.raw.data() + 0x4C, kNoStream);
      decode(blank, l.major);
      entries.resize(entries.size() + ssz / kEntrySize, blank);
    }
    Entry e;
    const Bytes& n = ds_name();
    std::copy(n.begin(), n.end(), e.raw.begin());
    e.raw[0x40] = static_cast<std::uint8_t>(n.size());
    e.raw[0x42] = kStream;
    e.raw[0x43] = 1;
    put32(e.raw.data() + 0x44, kNoStream);
    put32(e.raw.data() + 0x48, kNoStream);
    put32(e.raw.data() + 0x4C, kNoStream);
    decode(e, l.major);
    entries[sig_id] = e;
  }

  // The new streams' bytes: small ones go to the mini stream ([MS-CFB] 2.4: a stream under the
  // 4096-byte cutoff MUST be there; readers look for it by its size).
  struct NewStream {
    std::uint32_t id;
    Bytes data;
  };
  std::vector<NewStream> mini_items, regular_items;
  if (l.signature_ex) {
    NewStream dse{*l.signature_ex, prehash_of(l, entries, alg)};
    mini_items.push_back(std::move(dse));
  }
  NewStream sig{sig_id, Bytes(pkcs7_der.begin(), pkcs7_der.end())};
  (sig.data.size() < kMiniCutoff ? mini_items : regular_items).push_back(std::move(sig));

  // Mini sectors are appended after the mini stream's last whole sector (the partly used tail
  // of that sector stays free), so no existing data sector changes.
  const std::uint64_t per_mini = ssz / kMiniSector;
  const std::uint64_t m0 = std::uint64_t{l.ministream.size()} * per_mini;
  std::uint64_t mcount = 0;
  for (auto& it : mini_items) mcount += (it.data.size() + kMiniSector - 1) / kMiniSector;
  const std::uint32_t mini_add = static_cast<std::uint32_t>((mcount * kMiniSector + ssz - 1) / ssz);
  const std::uint64_t minifat_need = mini_add ? m0 + mcount : 0;
  const std::uint32_t minifat_have = static_cast<std::uint32_t>(l.minifat_sectors.size());
  const std::uint32_t minifat_total = std::max<std::uint32_t>(
      minifat_have, static_cast<std::uint32_t>((minifat_need + per - 1) / per));
  const std::uint32_t minifat_add = minifat_total - minifat_have;
  std::uint32_t reg_add = 0;
  for (auto& it : regular_items)
    reg_add += static_cast<std::uint32_t>((it.data.size() + ssz - 1) / ssz);

  // The FAT and DIFAT grow until they cover every sector, themselves included.
  const std::uint64_t base = std::uint64_t{S} + mini_add + reg_add + minifat_add + dir_add;
  const std::uint32_t fat_have = static_cast<std::uint32_t>(l.fat_sectors.size());
  const std::uint32_t difat_have = static_cast<std::uint32_t>(l.difat_sectors.size());
  std::uint32_t fat_add = 0, difat_add = 0;
  for (;;) {
    const std::uint64_t total = base + fat_add + difat_add;
    const std::uint32_t need_fat = static_cast<std::uint32_t>((total + per - 1) / per);
    const std::uint32_t fat_total = std::max(fat_have, need_fat);
    const std::uint32_t need_difat =
        fat_total > kHeaderDifat
            ? static_cast<std::uint32_t>((fat_total - kHeaderDifat + per - 2) / (per - 1))
            : 0;
    const std::uint32_t difat_total = std::max(difat_have, need_difat);
    if (fat_total - fat_have == fat_add && difat_total - difat_have == difat_add) break;
    fat_add = fat_total - fat_have;
    difat_add = difat_total - difat_have;
  }
  const std::uint64_t total = base + fat_add + difat_add;
  if (total > kMaxRegSect)
    fail(name, "the signed file would hold more sectors than a compound file can");

  // Where each appended part goes.
  std::uint32_t next = S;
  auto take = [&](std::uint32_t n) {
    const std::uint32_t at = next;
    next += n;
    return at;
  };
  const std::uint32_t mini_at = take(mini_add);
  const std::uint32_t reg_at = take(reg_add);
  const std::uint32_t minifat_at = take(minifat_add);
  const std::uint32_t dir_at = take(dir_add);
  const std::uint32_t fat_at = take(fat_add);
  const std::uint32_t difat_at = take(difat_add);

  fat.resize(std::size_t{fat_have + fat_add} * per, kFreeSect);
  for (std::size_t s = S; s < fat.size(); ++s) fat[s] = kFreeSect;
  auto chain = [&](std::uint32_t first, std::uint32_t n, std::uint32_t prev_last,
                   std::uint32_t* head) {
    if (n == 0) return;
    if (prev_last != kNoStream) {
      fat[prev_last] = first;
    } else if (head) {
      *head = first;
    }
    for (std::uint32_t i = 0; i < n; ++i) fat[first + i] = i + 1 < n ? first + i + 1 : kEndOfChain;
  };

  // The mini stream and the root entry.
  Entry& root = entries[0];
  std::uint32_t root_start = root.start;
  chain(mini_at, mini_add, l.ministream.empty() ? kNoStream : l.ministream.back(), &root_start);
  Bytes mini_data(std::size_t{mini_add} * ssz, 0);
  if (mini_add) {
    minifat.resize(std::size_t{minifat_total} * per, kFreeSect);
    std::uint64_t m = m0;
    for (auto& it : mini_items) {
      const std::uint64_t k = (it.data.size() + kMiniSector - 1) / kMiniSector;
      std::copy(it.data.begin(), it.data.end(),
                mini_data.begin() + static_cast<std::ptrdiff_t>((m - m0) * kMiniSector));
      for (std::uint64_t i = 0; i < k; ++i)
        minifat[m + i] = i + 1 < k ? static_cast<std::uint32_t>(m + i + 1) : kEndOfChain;
      set_size(entries[it.id], it.data.size(), static_cast<std::uint32_t>(m));
      m += k;
    }
    set_size(root, (m0 + mcount) * kMiniSector, root_start);
  }
  Bytes reg_data(std::size_t{reg_add} * ssz, 0);
  {
    std::uint32_t at = reg_at;
    std::size_t pos = 0;
    for (auto& it : regular_items) {
      const std::uint32_t k = static_cast<std::uint32_t>((it.data.size() + ssz - 1) / ssz);
      chain(at, k, kNoStream, nullptr);
      std::copy(it.data.begin(), it.data.end(),
                reg_data.begin() + static_cast<std::ptrdiff_t>(pos));
      set_size(entries[it.id], it.data.size(), at);
      at += k;
      pos += std::size_t{k} * ssz;
    }
  }
  std::array<std::uint8_t, 512> header = l.header;
  std::uint32_t minifat_first = le32(header.data() + 0x3C);
  chain(minifat_at, minifat_add, l.minifat_sectors.empty() ? kNoStream : l.minifat_sectors.back(),
        &minifat_first);
  std::uint32_t dir_first = le32(header.data() + 0x30);
  chain(dir_at, dir_add, l.dir_sectors.back(), &dir_first);
  for (std::uint32_t i = 0; i < fat_add; ++i) fat[fat_at + i] = kFatSect;
  for (std::uint32_t i = 0; i < difat_add; ++i) fat[difat_at + i] = kDifSect;
  if (new_entry) {
    std::vector<std::uint32_t> ids = l.children[0];
    ids.push_back(sig_id);
    rebuild_root_tree(entries, ids);
  }

  // The DIFAT: every FAT sector's number, 109 in the header, the rest in DIFAT sectors.
  std::vector<std::uint32_t> fat_sectors = l.fat_sectors;
  for (std::uint32_t i = 0; i < fat_add; ++i) fat_sectors.push_back(fat_at + i);
  std::vector<std::uint32_t> difat_sectors = l.difat_sectors;
  for (std::uint32_t i = 0; i < difat_add; ++i) difat_sectors.push_back(difat_at + i);
  for (std::size_t i = 0; i < kHeaderDifat; ++i)
    put32(header.data() + 0x4C + 4 * i, i < fat_sectors.size() ? fat_sectors[i] : kFreeSect);
  auto difat_sector = [&](std::size_t k) {
    Bytes b(ssz, 0xFF);
    for (std::size_t i = 0; i + 1 < per; ++i) {
      const std::size_t at = kHeaderDifat + k * (per - 1) + i;
      if (at < fat_sectors.size()) put32(&b[4 * i], fat_sectors[at]);
    }
    put32(&b[ssz - 4], k + 1 < difat_sectors.size() ? difat_sectors[k + 1] : kEndOfChain);
    return b;
  };
  put32(header.data() + 0x2C, static_cast<std::uint32_t>(fat_sectors.size()));
  put32(header.data() + 0x30, dir_first);
  put32(header.data() + 0x3C, minifat_first);
  put32(header.data() + 0x40, minifat_total);
  put32(header.data() + 0x44, difat_sectors.empty() ? kEndOfChain : difat_sectors[0]);
  put32(header.data() + 0x48, static_cast<std::uint32_t>(difat_sectors.size()));
  if (l.major == 4)
    put32(header.data() + 0x28, static_cast<std::uint32_t>(l.dir_sectors.size() + dir_add));

  // The digest of the file as it will be written, reading (and fingerprinting) its streams.
  Fingerprints fps(l.sectors);
  const Bytes result = digest_with(src, l, entries, alg, &fps, name);

  // What replaces each existing table sector.
  enum class Kind : std::uint8_t { data, fat_table, difat_table, minifat_table, dir_table };
  std::vector<std::pair<Kind, std::uint32_t>> role(S, {Kind::data, 0});
  for (std::uint32_t i = 0; i < fat_have; ++i) role[l.fat_sectors[i]] = {Kind::fat_table, i};
  for (std::uint32_t i = 0; i < difat_have; ++i) role[l.difat_sectors[i]] = {Kind::difat_table, i};
  for (std::uint32_t i = 0; i < minifat_have; ++i)
    role[l.minifat_sectors[i]] = {Kind::minifat_table, i};
  for (std::uint32_t i = 0; i < l.dir_sectors.size(); ++i)
    role[l.dir_sectors[i]] = {Kind::dir_table, i};
  auto dir_sector = [&](std::size_t k) {
    Bytes b(ssz, 0);
    for (std::size_t i = 0; i < ssz / kEntrySize; ++i)
      std::copy(entries[k * (ssz / kEntrySize) + i].raw.begin(),
                entries[k * (ssz / kEntrySize) + i].raw.end(), b.begin() + i * kEntrySize);
    return b;
  };
  auto table_sector = [&](Kind kind, std::uint32_t k) {
    Bytes b;
    switch (kind) {
      case Kind::fat_table:
        put_table(b, fat, std::size_t{k} * per, per);
        break;
      case Kind::minifat_table:
        put_table(b, minifat, std::size_t{k} * per, per);
        break;
      case Kind::difat_table:
        b = difat_sector(k);
        break;
      case Kind::dir_table:
        b = dir_sector(k);
        break;
      case Kind::data:
        break;
    }
    return b;
  };

  {
    // The header sector: the new header, the rest of a 4096-byte sector as it was.
    Bytes first(ssz, 0);
    src.read_at(0, first);
    std::copy(header.begin(), header.end(), first.begin());
    out.write(first);
  }
  Bytes buf;
  for (std::uint32_t s = 0; s < S;) {
    if (role[s].first != Kind::data) {
      out.write(table_sector(role[s].first, role[s].second));
      ++s;
      continue;
    }
    std::uint32_t e = s;
    while (e < S && role[e].first == Kind::data && e - s < kChunk / ssz) ++e;
    const std::uint64_t off = sector_offset(l, s);
    const std::uint64_t len =
        std::min<std::uint64_t>(std::uint64_t{e - s} * ssz, l.file_size - off);
    buf.assign(std::size_t{e - s} * ssz, 0);  // the last sector is padded to its full size
    src.read_at(off, std::span<std::uint8_t>(buf.data(), static_cast<std::size_t>(len)));
    for (std::uint32_t k = s; k < e; ++k) {
      if (fps.get(k) == 0) continue;
      const std::size_t a = std::size_t{k - s} * ssz;
      if (Fingerprints::of(ByteView(buf.data() + a, sector_bytes(l, k))) != fps.get(k))
        changed(name);
    }
    out.write(buf);
    s = e;
  }
  out.write(mini_data);
  out.write(reg_data);
  for (std::uint32_t i = 0; i < minifat_add; ++i)
    out.write(table_sector(Kind::minifat_table, minifat_have + i));
  for (std::uint32_t i = 0; i < dir_add; ++i) out.write(dir_sector(l.dir_sectors.size() + i));
  for (std::uint32_t i = 0; i < fat_add; ++i)
    out.write(table_sector(Kind::fat_table, fat_have + i));
  for (std::uint32_t i = 0; i < difat_add; ++i) out.write(difat_sector(difat_have + i));
  if (src.size() != l.file_size) changed(name);
  return result;
}

SignedContent signed_content() {
  // osslsigncode writes the GUID {000C10F1-0000-0000-C000-000000000046} in Windows' memory
  // layout (the first three fields little-endian): F1 10 0C 00 00 00 00 00 C0 00 … 46.
  static constexpr SipGuid kMsiSip{0xF1, 0x10, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46};
  return {std::string(kSpcSipInfoOid), sip_info_der(1, kMsiSip), {}, {}};
}

namespace {

class FileSource final : public Source {
 public:
  explicit FileSource(platform::ReadFile& f) : f_(f) {}
  std::uint64_t size() const override { return f_.size(); }
  void read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    f_.read_at(offset, out);
  }

 private:
  platform::ReadFile& f_;
};

class MsiFile final : public SignableFile {
 public:
  MsiFile(const std::filesystem::path& p, Layout layout)
      : SignableFile(p), name_(platform::to_utf8(p)), layout_(std::move(layout)) {}

  std::string_view format_name() const override { return "msi"; }
  SignedContent signed_content() const override { return msi::signed_content(); }
  std::uint64_t size() const override { return layout_.file_size; }

  Bytes digest(DigestAlg alg) override {
    platform::ReadFile f(path());
    FileSource src(f);
    if (src.size() != layout_.file_size) fail(name_, "the file changed since it was opened");
    return msi::digest(src, layout_, alg, name_);
  }

  std::optional<Bytes> existing_signature() override {
    platform::ReadFile f(path());
    FileSource src(f);
    if (src.size() != layout_.file_size) fail(name_, "the file changed since it was opened");
    return msi::signature(src, layout_, name_);
  }

  void check_can_nest(DigestAlg alg) override {
    if (!layout_.signature_ex) return;
    if (auto primary = existing_signature()) check_nest_digest(*primary, alg, name_);
  }

  Bytes write_signed(ByteView pkcs7_der, SignedOutput& out, DigestAlg alg) override {
    platform::ReadFile f(path());
    FileSource src(f);
    return msi::write_signed(src, layout_, pkcs7_der, out, name_, alg);
  }

 private:
  std::string name_;
  Layout layout_;
};

}  // namespace

bool detect(platform::ReadFile& file) {
  FileSource src(file);
  return msi::detect(static_cast<Source&>(src));
}

std::unique_ptr<SignableFile> open(const std::filesystem::path& path) {
  platform::ReadFile f(path);
  FileSource src(f);
  Layout layout = msi::parse(src, platform::to_utf8(path));
  return std::make_unique<MsiFile>(path, std::move(layout));
}

}  // namespace tsign::formats::msi
