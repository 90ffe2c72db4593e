// ZIP archives as Windows app packages use them (PKWARE "APPNOTE.TXT" 6.3.x: local file headers,
// data descriptors, central directory, ZIP64 end records), read over a Source and written back
// record by record. Only what a package needs: one disk, stored (0) and deflated (8) entries, no
// encryption, no archive comment.
//
// The reader is strict, because an app package's signature covers the records byte for byte and
// the central directory as a signer rewrites it (appx.hpp): the local records must follow one
// another from offset 0 without gaps or overlaps, in central-directory order, up to the central
// directory; each local header must agree with its central record (name, method, flags, CRC and
// sizes, or a data descriptor carrying them); each central record must be exactly what
// central_record() writes for it (so the rewritten directory a signer hashes is the one in the
// file); and the end records must be the ones end_records() writes. A zip that lies about any of
// it is refused naming the entry, before anything is signed.
//
// Memory: the central directory (refused beyond 64 MiB) and a fixed buffer; entry contents are
// streamed (inflated in 64 KiB pieces), never held whole.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.hpp"
#include "formats/source.hpp"

namespace tsign::formats::zip {

inline constexpr std::uint16_t kStored = 0;
inline constexpr std::uint16_t kDeflated = 8;
inline constexpr std::uint16_t kDescriptorFlag = 1u << 3;

struct Entry {
  std::string name;  // as stored (app packages: percent-encoded part names, '/' separators)
  // Central directory record.
  std::uint16_t creator_version = 0, needed_version = 0, flags = 0, method = 0;
  std::uint16_t mod_time = 0, mod_date = 0;
  std::uint32_t crc = 0;
  std::uint64_t compressed_size = 0, uncompressed_size = 0, local_offset = 0;
  std::uint32_t disk_start = 0;
  std::uint16_t internal_attr = 0;
  std::uint32_t external_attr = 0;
  Bytes comment;
  // Which fields the ZIP64 extended-information extra field of the central record holds.
  bool z64_usize = false, z64_csize = false, z64_offset = false, z64_disk = false;
  // From the local record: its own version and time fields (local_header() writes these, which
  // need not equal the central record's), where it ends.
  std::uint16_t local_version = 0, local_time = 0, local_date = 0;
  std::uint64_t local_header_size = 0;  // 30 + name + extra: the block map's LfhSize
  std::uint64_t data_offset = 0;        // where the (compressed) data starts
  std::uint64_t record_end = 0;         // after the data and its data descriptor, if any

  bool operator==(const Entry&) const = default;
};

struct Archive {
  std::uint64_t file_size = 0;
  std::vector<Entry> entries;  // in file order, which is central-directory order
  std::uint64_t cd_offset = 0, cd_size = 0;
  bool zip64 = false;  // ZIP64 end records (the EOCD's size or offset is 0xFFFFFFFF)
  // End-record fields that are either a count/size or the ZIP64 marker, as found.
  bool eocd_entries_marked = false;  // 0xFFFF in the EOCD's entry counts
  bool eocd_size_marked = false, eocd_offset_marked = false;
  std::uint16_t z64_creator = 45, z64_needed = 45;

  const Entry* find(std::string_view name) const;
  bool operator==(const Archive&) const = default;
};

// Content detection: the file ends with an end-of-central-directory record (no comment) and
// starts with a local file header. Never throws.
bool looks_like_zip(Source& src);

// Reads and checks the whole structure (see the header). Throws FileError "<name>: <reason>".
Archive read(Source& src, std::string_view name);

// Streams the uncompressed content of `e` to `sink` in pieces of at most 64 KiB, checking its
// size and CRC-32 against the central directory. Throws FileError naming the entry.
void read_entry(Source& src, const Entry& e, std::string_view name,
                const std::function<void(ByteView)>& sink);

// The whole uncompressed content, refused beyond `limit` bytes (XML documents of a package).
Bytes read_entry_all(Source& src, const Entry& e, std::string_view name, std::uint64_t limit);

// The central directory record of `e` with its local header at `offset`, laid out as packaging
// tools write it: the ZIP64 extra field (only the fields flagged in `e`, or the offset when it
// does not fit 32 bits) is its only extra field.
Bytes central_record(const Entry& e, std::uint64_t offset);

// The end records (ZIP64 record and locator when `a.zip64`, then the EOCD) for a central
// directory of `count` records at `cd_offset`, `cd_size` bytes long, keeping `a`'s markers.
Bytes end_records(const Archive& a, std::uint64_t count, std::uint64_t cd_offset,
                  std::uint64_t cd_size);

// A local file header without extra field, for an entry written anew: `e`'s local version and
// time, flags and method, and its CRC and sizes, or zeros when it has the data-descriptor flag.
Bytes local_header(const Entry& e);

// The data descriptor of an entry written anew with the flag: with its signature, and 8-byte
// sizes when `wide` (a ZIP64 archive), as packaging tools write it.
Bytes data_descriptor(const Entry& e, bool wide);

// Raw deflate (no zlib header), as entries store it; and CRC-32.
Bytes deflate(ByteView data);
std::uint32_t crc32(ByteView data);

}  // namespace tsign::formats::zip
