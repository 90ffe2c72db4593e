// [MS-CFB] "Compound File Binary File Format", written: a compound file grows by appended sectors
// only (mini stream, regular stream sectors, mini FAT, directory, FAT, DIFAT), so every existing
// sector is copied as it stands and only the tables change; the red-black tree of the root is
// rebuilt when it gets a new entry. What the streams mean is the caller's business (msi.cpp).
#include <algorithm>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>

#include "common/error.hpp"
#include "formats/cfb.hpp"
#include "formats/cfb_detail.hpp"

namespace tsign::formats::cfb {

using namespace detail;

namespace {

// What a stream read sees of each regular sector, so that a later copy of the same sectors can
// be checked against it: a file edited between the digest pass and the copy is caught.
class Fingerprints {
 public:
  // 4 bytes a sector: a 2 GiB file of 512-byte sectors keeps 16 MiB of them.
  explicit Fingerprints(std::uint64_t sectors) : fp_(static_cast<std::size_t>(sectors), 0) {}
  static std::uint32_t of(ByteView b) {
    // FNV-1a over 8-byte words, folded to 32 bits: fast; it guards against edits, not against an
    // adversary who can already write the file (it would not need a collision to change what
    // gets signed).
    std::uint64_t h = 0xCBF29CE484222325ull ^ b.size();
    std::size_t i = 0;
    for (; i + 8 <= b.size(); i += 8) {
      std::uint64_t w;
      std::memcpy(&w, &b[i], 8);
      h = (h ^ w) * 0x100000001B3ull;
      h ^= h >> 29;
    }
    for (; i < b.size(); ++i) h = (h ^ b[i]) * 0x100000001B3ull;
    return static_cast<std::uint32_t>(h ^ (h >> 32)) | 1;  // 0 means "not read"
  }
  void note(std::uint32_t s, ByteView b, std::string_view name) {
    const std::uint32_t f = of(b);
    if (fp_[s] != 0 && fp_[s] != f) changed(name);
    fp_[s] = f;
  }
  std::uint32_t get(std::uint32_t s) const { return fp_[s]; }

 private:
  std::vector<std::uint32_t> fp_;
};

// The new FAT as edits over the parsed one. Signing changes a handful of entries (the old
// signature's sectors freed, the new sectors chained, the tables' own sectors marked) and
// appends a few: a second copy of a table of 4 bytes a sector would double its memory.
class FatEdit {
 public:
  explicit FatEdit(const std::vector<std::uint32_t>& base) : base_(base), size_(base.size()) {}
  std::uint32_t operator[](std::size_t i) const {
    if (auto it = edits_.find(i); it != edits_.end()) return it->second;
    return i < base_.size() && i < free_from_ ? base_[i] : kFreeSect;
  }
  void set(std::size_t i, std::uint32_t v) { edits_[i] = v; }
  std::size_t size() const { return size_; }
  // The table grows to `n` entries, and every entry from `from` on that is not set later reads
  // as free (the parsed table's entries past the file's last sector included).
  void grow_free_from(std::size_t n, std::size_t from) {
    size_ = std::max(size_, n);
    free_from_ = from;
  }

 private:
  const std::vector<std::uint32_t>& base_;
  std::map<std::size_t, std::uint32_t> edits_;
  std::size_t size_;
  std::size_t free_from_ = static_cast<std::size_t>(-1);
};

// Frees a stream's sectors in the new tables.
void free_stream(const Layout& l, const Entry& e, FatEdit& fat,
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
      fat.set(s, kFreeSect);
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

template <class Table>
void put_table(Bytes& b, const Table& t, std::size_t from, std::size_t n) {
  b.assign(n * 4, 0xFF);
  for (std::size_t i = 0; i < n && from + i < t.size(); ++i) put32(&b[4 * i], t[from + i]);
}

}  // namespace

void write(Source& src, const Layout& layout, const std::vector<StreamUpdate>& streams,
           const std::function<void(StreamReader&)>& read_first, SignedOutput& out,
           std::string_view name) {
  const Layout& l = layout;
  const std::uint32_t ssz = l.sector_size;
  const std::uint32_t per = ssz / 4;
  const std::uint32_t S = static_cast<std::uint32_t>(l.sectors);

  FatEdit fat(l.fat);
  std::vector<std::uint32_t> minifat = l.minifat;
  std::vector<Entry> entries = l.entries;
  for (const StreamUpdate& st : streams)
    if (st.id) free_stream(l, l.entries[*st.id], fat, minifat);

  // Each new stream's directory entry: a free slot, or a new directory sector.
  std::vector<std::uint32_t> ids, added;
  std::uint32_t dir_add = 0;
  for (const StreamUpdate& st : streams) {
    if (st.id) {
      ids.push_back(*st.id);
      continue;
    }
    if (st.name.size() < 2 || st.name.size() > 64 || st.name.size() % 2 != 0)
      throw std::invalid_argument("cfb::write: a stream name is 2 to 64 bytes of UTF-16LE");
    std::uint32_t id = 0;
    for (std::uint32_t i = 1; i < entries.size() && id == 0; ++i)
      if (entries[i].type == 0) id = i;
    if (id == 0) {
      id = static_cast<std::uint32_t>(entries.size());
      ++dir_add;
      Entry blank;
      put32(blank.raw.data() + 0x44, kNoStream);
      put32(blank.raw.data() + 0x48, kNoStream);
      put32(blank.raw.data() + 0x4C, kNoStream);
      decode(blank, l.major);
      entries.resize(entries.size() + ssz / kEntrySize, blank);
    }
    Entry e;
    std::copy(st.name.begin(), st.name.end(), e.raw.begin());
    e.raw[0x40] = static_cast<std::uint8_t>(st.name.size());
    e.raw[0x42] = kStream;
    e.raw[0x43] = 1;
    put32(e.raw.data() + 0x44, kNoStream);
    put32(e.raw.data() + 0x48, kNoStream);
    put32(e.raw.data() + 0x4C, kNoStream);
    decode(e, l.major);
    entries[id] = e;
    ids.push_back(id);
    added.push_back(id);
  }

  // The new streams' bytes: small ones go to the mini stream ([MS-CFB] 2.4: a stream under the
  // 4096-byte cutoff MUST be there; readers look for it by its size).
  struct NewStream {
    std::uint32_t id;
    ByteView data;
  };
  std::vector<NewStream> mini_items, regular_items;
  for (std::size_t i = 0; i < streams.size(); ++i)
    (streams[i].data.size() < kMiniCutoff ? mini_items : regular_items)
        .push_back({ids[i], streams[i].data});

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

  fat.grow_free_from(std::size_t{fat_have + fat_add} * per, S);
  auto chain = [&](std::uint32_t first, std::uint32_t n, std::uint32_t prev_last,
                   std::uint32_t* head) {
    if (n == 0) return;
    if (prev_last != kNoStream) {
      fat.set(prev_last, first);
    } else if (head) {
      *head = first;
    }
    for (std::uint32_t i = 0; i < n; ++i)
      fat.set(first + i, i + 1 < n ? first + i + 1 : kEndOfChain);
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
  for (std::uint32_t i = 0; i < fat_add; ++i) fat.set(fat_at + i, kFatSect);
  for (std::uint32_t i = 0; i < difat_add; ++i) fat.set(difat_at + i, kDifSect);
  if (!added.empty()) {
    std::vector<std::uint32_t> root_ids = l.children[0];
    root_ids.insert(root_ids.end(), added.begin(), added.end());
    rebuild_root_tree(entries, root_ids);
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

  // The caller's reads (a digest of the file as it will be written), fingerprinted.
  Fingerprints fps(l.sectors);
  {
    StreamReader reader(src, l, name, [&](std::uint32_t s, ByteView b) { fps.note(s, b, name); });
    read_first(reader);
  }

  // What replaces each existing table sector: the table sectors only, sorted by position (a
  // table a sector would cost as much memory as the fingerprints).
  enum class Kind : std::uint8_t { data, fat_table, difat_table, minifat_table, dir_table };
  struct Role {
    std::uint32_t sector;
    Kind kind;
    std::uint32_t index;
  };
  std::vector<Role> roles;
  for (std::uint32_t i = 0; i < fat_have; ++i)
    roles.push_back({l.fat_sectors[i], Kind::fat_table, i});
  for (std::uint32_t i = 0; i < difat_have; ++i)
    roles.push_back({l.difat_sectors[i], Kind::difat_table, i});
  for (std::uint32_t i = 0; i < minifat_have; ++i)
    roles.push_back({l.minifat_sectors[i], Kind::minifat_table, i});
  for (std::uint32_t i = 0; i < l.dir_sectors.size(); ++i)
    roles.push_back({l.dir_sectors[i], Kind::dir_table, i});
  std::sort(roles.begin(), roles.end(),
            [](const Role& a, const Role& b) { return a.sector < b.sector; });
  std::size_t next_role = 0;  // the first table sector at or after the copy's position
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
    while (next_role < roles.size() && roles[next_role].sector < s) ++next_role;
    if (next_role < roles.size() && roles[next_role].sector == s) {
      out.write(table_sector(roles[next_role].kind, roles[next_role].index));
      ++s;
      continue;
    }
    const std::uint32_t table_at = next_role < roles.size() ? roles[next_role].sector : S;
    std::uint32_t e = s;
    while (e < S && e < table_at && e - s < kChunk / ssz) ++e;
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
}

}  // namespace tsign::formats::cfb
