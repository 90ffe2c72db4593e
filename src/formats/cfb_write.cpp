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

// What one read of the file saw of each regular sector, so that another read of the same
// sectors can be checked against it: a file edited between the digest pass and the copy (in
// either order) is caught.
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

// What writing `streams` makes of a compound file, from its tables alone: the new header, what
// replaces each existing table sector, and the sectors appended after the last one. Both ways of
// writing (write(), and copy_while_reading() then finish_copy()) emit exactly this. Keeps a
// reference to the layout.
class Plan {
 public:
  enum class Kind : std::uint8_t { fat_table, difat_table, minifat_table, dir_table };
  struct Role {
    std::uint32_t sector;
    Kind kind;
    std::uint32_t index;
  };

  Plan(const Layout& l, const std::vector<StreamUpdate>& streams, std::string_view name);

  const std::array<std::uint8_t, 512>& header() const { return header_; }
  // The existing table sectors, sorted by position (a table a sector would cost as much memory
  // as the fingerprints).
  const std::vector<Role>& roles() const { return roles_; }
  // The new content of an existing table sector.
  Bytes sector(const Role& r) const { return table_sector(r.kind, r.index); }
  // Everything after the file's last sector: mini stream, stream data and the tables' growth.
  void write_appended(SignedOutput& out) const;

 private:
  Bytes table_sector(Kind kind, std::uint32_t k) const;
  Bytes dir_sector(std::size_t k) const;
  Bytes difat_sector(std::size_t k) const;

  const Layout& l_;
  std::uint32_t per_ = 0;  // table entries a sector
  FatEdit fat_;
  std::vector<std::uint32_t> minifat_;
  std::vector<Entry> entries_;
  std::array<std::uint8_t, 512> header_{};
  std::vector<std::uint32_t> fat_sectors_, difat_sectors_;
  Bytes mini_data_, reg_data_;
  std::uint32_t minifat_have_ = 0, minifat_add_ = 0, dir_add_ = 0;
  std::uint32_t fat_have_ = 0, fat_add_ = 0, difat_have_ = 0, difat_add_ = 0;
  std::vector<Role> roles_;
};

Plan::Plan(const Layout& l, const std::vector<StreamUpdate>& streams, std::string_view name)
    : l_(l), per_(l.sector_size / 4), fat_(l.fat), minifat_(l.minifat), entries_(l.entries) {
  const std::uint32_t ssz = l.sector_size;
  const std::uint32_t per = per_;
  const std::uint32_t S = static_cast<std::uint32_t>(l.sectors);
  FatEdit& fat = fat_;
  std::vector<std::uint32_t>& minifat = minifat_;
  std::vector<Entry>& entries = entries_;
  for (const StreamUpdate& st : streams)
    if (st.id) free_stream(l, l.entries[*st.id], fat, minifat);

  // Each new stream's directory entry: a free slot, or a new directory sector.
  std::vector<std::uint32_t> ids, added;
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
      ++dir_add_;
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
  minifat_have_ = static_cast<std::uint32_t>(l.minifat_sectors.size());
  const std::uint32_t minifat_total = std::max<std::uint32_t>(
      minifat_have_, static_cast<std::uint32_t>((minifat_need + per - 1) / per));
  minifat_add_ = minifat_total - minifat_have_;
  std::uint32_t reg_add = 0;
  for (auto& it : regular_items)
    reg_add += static_cast<std::uint32_t>((it.data.size() + ssz - 1) / ssz);

  // The FAT and DIFAT grow until they cover every sector, themselves included.
  const std::uint64_t base = std::uint64_t{S} + mini_add + reg_add + minifat_add_ + dir_add_;
  fat_have_ = static_cast<std::uint32_t>(l.fat_sectors.size());
  difat_have_ = static_cast<std::uint32_t>(l.difat_sectors.size());
  for (;;) {
    const std::uint64_t total = base + fat_add_ + difat_add_;
    const std::uint32_t need_fat = static_cast<std::uint32_t>((total + per - 1) / per);
    const std::uint32_t fat_total = std::max(fat_have_, need_fat);
    const std::uint32_t need_difat =
        fat_total > kHeaderDifat
            ? static_cast<std::uint32_t>((fat_total - kHeaderDifat + per - 2) / (per - 1))
            : 0;
    const std::uint32_t difat_total = std::max(difat_have_, need_difat);
    if (fat_total - fat_have_ == fat_add_ && difat_total - difat_have_ == difat_add_) break;
    fat_add_ = fat_total - fat_have_;
    difat_add_ = difat_total - difat_have_;
  }
  const std::uint64_t total = base + fat_add_ + difat_add_;
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
  const std::uint32_t minifat_at = take(minifat_add_);
  const std::uint32_t dir_at = take(dir_add_);
  const std::uint32_t fat_at = take(fat_add_);
  const std::uint32_t difat_at = take(difat_add_);

  fat.grow_free_from(std::size_t{fat_have_ + fat_add_} * per, S);
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
  mini_data_.assign(std::size_t{mini_add} * ssz, 0);
  if (mini_add) {
    minifat.resize(std::size_t{minifat_total} * per, kFreeSect);
    std::uint64_t m = m0;
    for (auto& it : mini_items) {
      const std::uint64_t k = (it.data.size() + kMiniSector - 1) / kMiniSector;
      std::copy(it.data.begin(), it.data.end(),
                mini_data_.begin() + static_cast<std::ptrdiff_t>((m - m0) * kMiniSector));
      for (std::uint64_t i = 0; i < k; ++i)
        minifat[m + i] = i + 1 < k ? static_cast<std::uint32_t>(m + i + 1) : kEndOfChain;
      set_size(entries[it.id], it.data.size(), static_cast<std::uint32_t>(m));
      m += k;
    }
    set_size(root, (m0 + mcount) * kMiniSector, root_start);
  }
  reg_data_.assign(std::size_t{reg_add} * ssz, 0);
  {
    std::uint32_t at = reg_at;
    std::size_t pos = 0;
    for (auto& it : regular_items) {
      const std::uint32_t k = static_cast<std::uint32_t>((it.data.size() + ssz - 1) / ssz);
      chain(at, k, kNoStream, nullptr);
      std::copy(it.data.begin(), it.data.end(),
                reg_data_.begin() + static_cast<std::ptrdiff_t>(pos));
      set_size(entries[it.id], it.data.size(), at);
      at += k;
      pos += std::size_t{k} * ssz;
    }
  }
  std::array<std::uint8_t, 512>& header = header_;
  header = l.header;
  std::uint32_t minifat_first = le32(header.data() + 0x3C);
  chain(minifat_at, minifat_add_, l.minifat_sectors.empty() ? kNoStream : l.minifat_sectors.back(),
        &minifat_first);
  std::uint32_t dir_first = le32(header.data() + 0x30);
  chain(dir_at, dir_add_, l.dir_sectors.back(), &dir_first);
  for (std::uint32_t i = 0; i < fat_add_; ++i) fat.set(fat_at + i, kFatSect);
  for (std::uint32_t i = 0; i < difat_add_; ++i) fat.set(difat_at + i, kDifSect);
  if (!added.empty()) {
    std::vector<std::uint32_t> root_ids = l.children[0];
    root_ids.insert(root_ids.end(), added.begin(), added.end());
    rebuild_root_tree(entries, root_ids);
  }

  // The DIFAT: every FAT sector's number, 109 in the header, the rest in DIFAT sectors.
  fat_sectors_ = l.fat_sectors;
  for (std::uint32_t i = 0; i < fat_add_; ++i) fat_sectors_.push_back(fat_at + i);
  difat_sectors_ = l.difat_sectors;
  for (std::uint32_t i = 0; i < difat_add_; ++i) difat_sectors_.push_back(difat_at + i);
  for (std::size_t i = 0; i < kHeaderDifat; ++i)
    put32(header.data() + 0x4C + 4 * i, i < fat_sectors_.size() ? fat_sectors_[i] : kFreeSect);
  put32(header.data() + 0x2C, static_cast<std::uint32_t>(fat_sectors_.size()));
  put32(header.data() + 0x30, dir_first);
  put32(header.data() + 0x3C, minifat_first);
  put32(header.data() + 0x40, minifat_total);
  put32(header.data() + 0x44, difat_sectors_.empty() ? kEndOfChain : difat_sectors_[0]);
  put32(header.data() + 0x48, static_cast<std::uint32_t>(difat_sectors_.size()));
  if (l.major == 4)
    put32(header.data() + 0x28, static_cast<std::uint32_t>(l.dir_sectors.size() + dir_add_));

  for (std::uint32_t i = 0; i < fat_have_; ++i)
    roles_.push_back({l.fat_sectors[i], Kind::fat_table, i});
  for (std::uint32_t i = 0; i < difat_have_; ++i)
    roles_.push_back({l.difat_sectors[i], Kind::difat_table, i});
  for (std::uint32_t i = 0; i < minifat_have_; ++i)
    roles_.push_back({l.minifat_sectors[i], Kind::minifat_table, i});
  for (std::uint32_t i = 0; i < l.dir_sectors.size(); ++i)
    roles_.push_back({l.dir_sectors[i], Kind::dir_table, i});
  std::sort(roles_.begin(), roles_.end(),
            [](const Role& a, const Role& b) { return a.sector < b.sector; });
}

Bytes Plan::dir_sector(std::size_t k) const {
  const std::size_t n = l_.sector_size / kEntrySize;
  Bytes b(l_.sector_size, 0);
  for (std::size_t i = 0; i < n; ++i)
    std::copy(entries_[k * n + i].raw.begin(), entries_[k * n + i].raw.end(),
              b.begin() + static_cast<std::ptrdiff_t>(i * kEntrySize));
  return b;
}

Bytes Plan::difat_sector(std::size_t k) const {
  Bytes b(l_.sector_size, 0xFF);
  for (std::size_t i = 0; i + 1 < per_; ++i) {
    const std::size_t at = kHeaderDifat + k * (per_ - 1) + i;
    if (at < fat_sectors_.size()) put32(&b[4 * i], fat_sectors_[at]);
  }
  put32(&b[l_.sector_size - 4],
        k + 1 < difat_sectors_.size() ? difat_sectors_[k + 1] : kEndOfChain);
  return b;
}

Bytes Plan::table_sector(Kind kind, std::uint32_t k) const {
  Bytes b;
  switch (kind) {
    case Kind::fat_table:
      put_table(b, fat_, std::size_t{k} * per_, per_);
      break;
    case Kind::minifat_table:
      put_table(b, minifat_, std::size_t{k} * per_, per_);
      break;
    case Kind::difat_table:
      b = difat_sector(k);
      break;
    case Kind::dir_table:
      b = dir_sector(k);
      break;
  }
  return b;
}

void Plan::write_appended(SignedOutput& out) const {
  out.write(mini_data_);
  out.write(reg_data_);
  for (std::uint32_t i = 0; i < minifat_add_; ++i)
    out.write(table_sector(Kind::minifat_table, minifat_have_ + i));
  for (std::uint32_t i = 0; i < dir_add_; ++i) out.write(dir_sector(l_.dir_sectors.size() + i));
  for (std::uint32_t i = 0; i < fat_add_; ++i)
    out.write(table_sector(Kind::fat_table, fat_have_ + i));
  for (std::uint32_t i = 0; i < difat_add_; ++i) out.write(difat_sector(difat_have_ + i));
}

// Bytes of the file's last sector missing from the file (a file may end inside its last sector;
// the appended sectors start at the next whole one).
std::uint64_t tail_padding(const Layout& l) {
  const std::uint64_t end = sector_offset(l, static_cast<std::uint32_t>(l.sectors));
  return end > l.file_size ? end - l.file_size : 0;
}

// The original as copy_while_reading's caller reads it. The file is copied in order, a chunk
// at a time, lent to the copy before anything reads it; a read just ahead of the copy (within
// the next chunk) moves it on. A read inside the last two chunks (a stream stored in file order,
// the usual case: one read of the file in all) is served from them, the very bytes copied. A read
// further behind (a stream stored before the one read last) goes to the file again, from the page
// cache, each sector checked against a fingerprint of the bytes copied. The fingerprints are taken
// as a chunk leaves the two, of the sectors a read may still want: those not read yet, and those
// of the mini stream (read once for each small stream in them). A stream stored in order so costs
// no fingerprint at all.
// A read further ahead goes to the file directly and leaves the copy where it is, each sector
// fingerprinted and checked again as the copy reaches it. Moving the copy on instead would carry
// it through everything in between unread, to be read again from behind: msibuild stores the
// mini stream, which the digest reads first, after a large stream (a 1 GiB MSI was read twice).
class CopyingSource final : public Source {
 public:
  CopyingSource(Source& src, const Layout& l, PatchableOutput& copy, std::string_view name)
      : src_(src),
        l_(l),
        copy_(copy),
        name_(name),
        fps_(l.sectors),
        read_(static_cast<std::size_t>(l.sectors)),
        shared_(static_cast<std::size_t>(l.sectors)),
        ring_(kLendDepth + 1) {
    for (std::uint32_t s : l.ministream) shared_[s] = true;
  }
  // The copy may still be reading the chunks lent to it: they live until it has settled.
  ~CopyingSource() override {
    try {
      copy_.settle();
    } catch (...) {  // an error writing the copy was thrown to the reader already, or will be
    }
  }
  CopyingSource(const CopyingSource&) = delete;
  CopyingSource& operator=(const CopyingSource&) = delete;

  std::uint64_t size() const override { return src_.size(); }

  void read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    const std::uint32_t ssz = l_.sector_size;
    const std::uint64_t end = offset + out.size();
    // The reader reads whole sectors (the last one as far as the file goes), never the header.
    if (offset % ssz != 0 || offset < ssz || end > l_.file_size)
      throw std::logic_error("cfb: a stream read that is not a run of sectors");
    if (offset >= copied_ + kChunk) {
      src_.read_at(offset, out);
      note_sectors(out, offset, [](std::uint64_t) { return true; });
    } else {
      from_copy(offset, out);
    }
    for (std::uint64_t at = offset; at < end; at += ssz) read_[at / ssz - 1] = true;
  }

  // Copies what no read reached.
  void finish() {
    while (copied_ < l_.file_size) advance();
    copy_.settle();
  }

 private:
  void advance() {
    // Leaving the two: the sectors a read may still want (not read yet, or the mini stream's).
    note_sectors(prev_, prev_at_, [&](std::uint64_t s) { return !read_[s] || shared_[s]; });
    prev_ = cur_;
    prev_at_ = cur_at_;
    cur_at_ = copied_;
    // The chunks are lent to the copy (PatchableOutput::lend), kLendDepth + 1 buffers in turn:
    // this one was lent kLendDepth + 1 chunks ago, so the copy is done with it.
    Bytes& buf = ring_[chunks_++ % ring_.size()];
    // kChunk is a multiple of every sector size: a chunk starts on a sector.
    buf.resize(static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, l_.file_size - copied_)));
    src_.read_at(copied_, buf);
    cur_ = buf;
    // A sector read ahead of the copy (read_at) must be copied as it was read.
    note_sectors(cur_, cur_at_, [&](std::uint64_t s) { return read_[s]; });
    copy_.lend(cur_);
    copied_ += cur_.size();
  }
  // A read within the next chunk or behind: the copy moved on to its end, the part behind the
  // two chunks kept read from the file and checked, the rest from them.
  void from_copy(std::uint64_t offset, std::span<std::uint8_t> out) {
    const std::uint32_t ssz = l_.sector_size;
    const std::uint64_t end = offset + out.size();
    while (copied_ < end) advance();
    const std::uint64_t split = std::clamp(prev_at_, offset, end);
    if (offset < split) {
      const std::span<std::uint8_t> behind = out.first(static_cast<std::size_t>(split - offset));
      src_.read_at(offset, behind);
      for (std::uint64_t at = offset; at < split; at += ssz) {
        const auto s = static_cast<std::uint32_t>(at / ssz - 1);
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(ssz, split - at));
        // No fingerprint: read before, and not expected again (a chain holds a sector once).
        if (fps_.get(s) == 0 ||
            fps_.get(s) != Fingerprints::of(ByteView(behind.data() + (at - offset), n)))
          changed(name_);
      }
    }
    for (const auto& [at, b] : {std::pair{prev_at_, prev_}, std::pair{cur_at_, cur_}}) {
      const std::uint64_t from = std::max(split, at), to = std::min(end, at + b.size());
      if (from < to)
        std::memcpy(out.data() + (from - offset), b.data() + (from - at),
                    static_cast<std::size_t>(to - from));
    }
  }
  // Fingerprints the sectors of `b` (the file's bytes from `from`) for which keep(sector) holds,
  // or checks them against the fingerprints they have (Fingerprints::note).
  template <class Keep>
  void note_sectors(ByteView b, std::uint64_t from, Keep keep) {
    const std::uint32_t ssz = l_.sector_size;
    const std::uint64_t end = from + b.size();
    for (std::uint64_t at = std::max<std::uint64_t>(from, ssz); at < end; at += ssz) {
      const std::uint64_t s = at / ssz - 1;
      if (s >= l_.sectors) break;
      if (!keep(s)) continue;
      fps_.note(static_cast<std::uint32_t>(s),
                ByteView(b.data() + (at - from),
                         static_cast<std::size_t>(std::min<std::uint64_t>(ssz, end - at))),
                name_);
    }
  }

  Source& src_;
  const Layout& l_;
  PatchableOutput& copy_;
  std::string_view name_;
  Fingerprints fps_;
  std::vector<bool> read_;    // sectors a read has seen
  std::vector<bool> shared_;  // the mini stream's sectors
  std::vector<Bytes> ring_;   // the chunks' buffers, in turn
  std::uint64_t chunks_ = 0;  // chunks copied
  ByteView prev_, cur_;       // the last two chunks copied, at prev_at_ and cur_at_
  std::uint64_t prev_at_ = 0, cur_at_ = 0, copied_ = 0;
};

}  // namespace

void write(Source& src, const Layout& layout, const std::vector<StreamUpdate>& streams,
           const std::function<void(StreamReader&)>& read_first, SignedOutput& out,
           std::string_view name) {
  const Layout& l = layout;
  const std::uint32_t ssz = l.sector_size;
  const std::uint32_t S = static_cast<std::uint32_t>(l.sectors);
  const Plan plan(l, streams, name);

  // The caller's reads (a digest of the file as it will be written), fingerprinted.
  Fingerprints fps(l.sectors);
  {
    StreamReader reader(src, l, name, [&](std::uint32_t s, ByteView b) { fps.note(s, b, name); });
    read_first(reader);
  }

  {
    // The header sector: the new header, the rest of a 4096-byte sector as it was.
    Bytes first(ssz, 0);
    src.read_at(0, first);
    std::copy(plan.header().begin(), plan.header().end(), first.begin());
    out.write(first);
  }
  const auto& roles = plan.roles();
  std::size_t next_role = 0;  // the first table sector at or after the copy's position
  Bytes buf;
  for (std::uint32_t s = 0; s < S;) {
    while (next_role < roles.size() && roles[next_role].sector < s) ++next_role;
    if (next_role < roles.size() && roles[next_role].sector == s) {
      out.write(plan.sector(roles[next_role]));
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
  plan.write_appended(out);
  if (src.size() != l.file_size) changed(name);
}

void copy_while_reading(Source& src, const Layout& layout,
                        const std::function<void(StreamReader&)>& read, PatchableOutput& copy,
                        std::string_view name) {
  if (src.size() != layout.file_size) changed(name);
  CopyingSource original(src, layout, copy, name);
  {
    StreamReader reader(original, layout, name);
    read(reader);
  }
  original.finish();
  if (src.size() != layout.file_size) changed(name);
}

void finish_copy(const Layout& layout, const std::vector<StreamUpdate>& streams,
                 PatchableOutput& copy, std::string_view name) {
  const Plan plan(layout, streams, name);
  // Appended first, so that every patch lies inside what is written.
  copy.write(Bytes(static_cast<std::size_t>(tail_padding(layout)), 0));
  plan.write_appended(copy);
  copy.patch(0, plan.header());
  for (const auto& r : plan.roles()) copy.patch(sector_offset(layout, r.sector), plan.sector(r));
}

}  // namespace tsign::formats::cfb
