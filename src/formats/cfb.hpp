// Compound files: [MS-CFB] "Compound File Binary File Format" (header, FAT, DIFAT, mini FAT,
// mini stream, directory red-black tree), the container of Windows Installer files (msi.hpp
// signs them). Its own file because the container is a format of its own, with its own hostile
// input: every chain is checked here once, and the writer that grows a compound file by appended
// sectors knows nothing of what the streams mean.
//
// The parser and the reader work on a Source (a file or a memory buffer) so the unit tests and
// the fuzz target exercise exactly the code the signer runs. Memory: the allocation tables and the
// directory only, never a stream's content.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/bytes.hpp"
#include "formats/format.hpp"
#include "formats/pe.hpp"

namespace tsign::formats::cfb {

using Source = pe::Source;
using MemorySource = pe::MemorySource;

inline constexpr std::size_t kEntrySize = 128;
inline constexpr std::uint32_t kNoStream = 0xFFFFFFFF;
inline constexpr std::uint32_t kMiniCutoff = 4096;  // smaller streams live in the mini stream
inline constexpr std::uint8_t kStorage = 1, kStream = 2, kRoot = 5;

// One 128-byte directory entry, as stored, with the fields tsign reads.
struct Entry {
  std::array<std::uint8_t, kEntrySize> raw{};
  std::uint16_t name_len = 0;  // bytes, with the terminating NUL
  std::uint8_t type = 0;       // 0 unused, 1 storage, 2 stream, 5 root
  std::uint32_t left = 0, right = 0, child = 0;
  std::uint32_t start = 0;
  std::uint64_t size = 0;
  ByteView name() const { return ByteView(raw.data(), name_len); }
};

// The compound file's structure as parsed: its tables, never its streams' bytes.
struct Layout {
  std::uint64_t file_size = 0;
  std::uint16_t major = 3;
  std::uint32_t sector_size = 512;
  std::uint64_t sectors = 0;  // sector slots the file holds (the last may be partial)
  std::array<std::uint8_t, 512> header{};
  std::vector<std::uint32_t> fat_sectors;    // where the FAT lives, in order (the DIFAT)
  std::vector<std::uint32_t> difat_sectors;  // the DIFAT chain beyond the header's 109
  std::vector<std::uint32_t> fat;
  std::vector<std::uint32_t> minifat_sectors;
  std::vector<std::uint32_t> minifat;
  std::vector<std::uint32_t> dir_sectors;
  std::vector<std::uint32_t> ministream;  // the root entry's chain, which holds the mini stream
  std::vector<Entry> entries;
  // For each storage (and the root) the ids of its children, empty otherwise, sorted by their raw
  // UTF-16LE names: memcmp over the shorter name (NULs included), the longer first when one is a
  // prefix of the other. A fixed order whatever the tree's shape (and the one MSI digests in).
  std::vector<std::vector<std::uint32_t>> children;
};

// Content detection: the compound-file magic D0 CF 11 E0 A1 B1 1A E1. Never throws.
bool detect(Source& src);

// Full validation of the structure. Throws FileError "<name>: <reason>" for anything a writer
// must refuse: loops, sectors past the end of the file, directory cycles, streams larger than
// their chains, mini sectors beyond the mini stream, two entries of one name in a storage.
Layout parse(Source& src, std::string_view name);

// How an error names an entry: directory entry 3 ("Name").
std::string entry_label(const Entry& e, std::uint32_t id);

// True if `a` and `b` have the same header, tables and directory entries, byte for byte.
bool same_structure(const Layout& a, const Layout& b);

// Throws FileError "<name>: the file changed while it was being signed; sign it again".
[[noreturn]] void changed(std::string_view name);

// Reads streams' contents. Not thread-safe; it caches the last regular sector that held mini
// sectors, so one reader serves a whole walk over the file.
class StreamReader {
 public:
  // on_sector(s, bytes), if set, sees every regular sector read, whole (write() fingerprints them).
  using SectorObserver = std::function<void(std::uint32_t, ByteView)>;
  StreamReader(Source& src, const Layout& l, std::string_view name, SectorObserver on_sector = {})
      : src_(src), l_(l), on_sector_(std::move(on_sector)), name_(name) {}

  // Calls fn(ByteView) with the stream's bytes, in order.
  void read(const Entry& e, const std::function<void(ByteView)>& fn);

 private:
  void load(std::uint32_t reg);

  Source& src_;
  const Layout& l_;
  SectorObserver on_sector_;
  std::string_view name_;
  Bytes cache_;
  std::size_t cache_len_ = 0;
  std::uint32_t cached_ = kNoStream;
};

// A stream of the root storage to write: the existing stream entry `id`, or (without an id) a new
// stream named `name` (UTF-16LE with the NUL, as stored).
struct StreamUpdate {
  std::optional<std::uint32_t> id;
  Bytes name;
  Bytes data;
};

// Streams the file to `out` with `streams` written. Every existing sector is copied as it stands;
// only the tables change. The replaced streams' sectors (and mini sectors) are marked free, the
// new contents appended: under kMiniCutoff to the mini stream ([MS-CFB] 2.4: readers look for such
// a stream there by its size), which grows by whole sectors, else to regular sectors. The FAT,
// DIFAT, mini FAT and directory grow by appended sectors when they must; a new entry takes a free
// directory slot (or a new directory sector) and the root's red-black tree is rebuilt balanced.
//
// `read_first(reader)` runs once the new tables are known and before a byte is written: every
// sector it reads is fingerprinted and checked again as it is copied, so a file edited in between
// fails with changed(), as does a file whose size changed. The caller checks beforehand that the
// file still has `layout`'s structure (parse, same_structure). Throws FileError if the file would
// need more sectors than a compound file can hold.
void write(Source& src, const Layout& layout, const std::vector<StreamUpdate>& streams,
           const std::function<void(StreamReader&)>& read_first, SignedOutput& out,
           std::string_view name);

// The same file written in one read of the original (issue 13), when the streams to write are
// known only later (a signature of the digest being read):
// copy_while_reading runs `read(reader)` while it copies the file to `copy` as it stands, in
// order, 1 MiB ahead of the reads: a read of the two chunks copied last gets their bytes (a
// stream stored in file order costs one read of the file), a read further behind is read from
// `src` again and checked against fingerprints of the bytes copied (changed() on a difference,
// or when the file's size changed). Either way what the caller reads is what was copied.
// finish_copy then makes of the copy exactly what write() writes: the last sector padded, the
// new sectors appended, the header and the existing table sectors patched in place.
void copy_while_reading(Source& src, const Layout& layout,
                        const std::function<void(StreamReader&)>& read, PatchableOutput& copy,
                        std::string_view name);
void finish_copy(const Layout& layout, const std::vector<StreamUpdate>& streams,
                 PatchableOutput& copy, std::string_view name);

}  // namespace tsign::formats::cfb
