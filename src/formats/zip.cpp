// ZIP archives (PKWARE APPNOTE.TXT 6.3.x), strictly, as zip.hpp's header describes: sections 4.3.7
// (local file header), 4.3.9 (data descriptor), 4.3.12 (central directory record), 4.3.14-4.3.16
// (ZIP64 end record, locator, end of central directory) and 4.5.3 (ZIP64 extra field).
#include "formats/zip.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <set>

#include <zlib.h>

#include "common/error.hpp"

namespace tsign::formats::zip {

namespace {

constexpr std::uint32_t kLocalSig = 0x04034b50;
constexpr std::uint32_t kCentralSig = 0x02014b50;
constexpr std::uint32_t kEocdSig = 0x06054b50;
constexpr std::uint32_t kZ64EocdSig = 0x06064b50;
constexpr std::uint32_t kZ64LocatorSig = 0x07064b50;
constexpr std::uint32_t kDescriptorSig = 0x08074b50;
constexpr std::uint64_t kEocdSize = 22;
constexpr std::uint64_t kLocatorSize = 20;
constexpr std::uint64_t kZ64EocdSize = 56;  // with no extensible data (its size field says 44)
constexpr std::uint64_t kLocalFixed = 30;
constexpr std::uint64_t kCentralFixed = 46;
constexpr std::uint64_t kMaxCentralDirectory = 64u << 20;
constexpr std::uint32_t kMax32 = 0xFFFFFFFF;
constexpr std::uint16_t kMax16 = 0xFFFF;
constexpr std::uint16_t kZip64Tag = 0x0001;
constexpr std::uint16_t kEncryptedFlag = 1;
constexpr std::size_t kPiece = 64u << 10;

std::uint64_t le64(const std::uint8_t* p) {
  return std::uint64_t{le32(p)} | (std::uint64_t{le32(p + 4)} << 32);
}

// Appends little-endian fields.
struct Writer {
  Bytes b;
  void u16(std::uint64_t v) {
    for (int i = 0; i < 2; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void u32(std::uint64_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void bytes(ByteView v) { b.insert(b.end(), v.begin(), v.end()); }
  void text(std::string_view s) { b.insert(b.end(), s.begin(), s.end()); }
};

std::string quoted(std::string_view entry) {
  return "entry \"" + std::string(entry) + "\"";
}

// One central directory record at `p` (with `left` bytes of the directory left); fills `e` and
// returns the record's size.
std::uint64_t parse_central(const std::uint8_t* p, std::uint64_t left, Entry& e,
                            std::string_view name, std::size_t index) {
  const std::string which = "central directory record " + std::to_string(index + 1);
  if (left < kCentralFixed || le32(p) != kCentralSig)
    fail(name, which +
                   " is missing or cut short (the central directory lies about its size or "
                   "count)");
  e.creator_version = le16(p + 4);
  e.needed_version = le16(p + 6);
  e.flags = le16(p + 8);
  e.method = le16(p + 10);
  e.mod_time = le16(p + 12);
  e.mod_date = le16(p + 14);
  e.crc = le32(p + 16);
  std::uint64_t csize = le32(p + 20), usize = le32(p + 24);
  const std::uint16_t name_len = le16(p + 28), extra_len = le16(p + 30), comment_len = le16(p + 32);
  std::uint32_t disk = le16(p + 34);
  e.internal_attr = le16(p + 36);
  e.external_attr = le32(p + 38);
  std::uint64_t offset = le32(p + 42);
  const std::uint64_t total = kCentralFixed + name_len + extra_len + comment_len;
  if (total > left) fail(name, which + " runs past the end of the central directory");
  e.name.assign(reinterpret_cast<const char*>(p + kCentralFixed), name_len);
  const std::uint8_t* extra = p + kCentralFixed + name_len;
  e.comment.assign(extra + extra_len, extra + extra_len + comment_len);
  if (e.name.empty() || e.name.find('\0') != std::string::npos)
    fail(name, which + " has an empty or malformed file name");
  e.z64_usize = usize == kMax32;
  e.z64_csize = csize == kMax32;
  e.z64_offset = offset == kMax32;
  e.z64_disk = disk == kMax16;
  const std::uint16_t want =
      static_cast<std::uint16_t>(8 * (e.z64_usize + e.z64_csize + e.z64_offset) + 4 * e.z64_disk);
  if (want > 0) {
    if (extra_len < 4 || le16(extra) != kZip64Tag || le16(extra + 2) < want)
      fail(name, quoted(e.name) +
                     ": its central record marks ZIP64 sizes but has no ZIP64 "
                     "extra field holding them");
    const std::uint8_t* q = extra + 4;
    if (e.z64_usize) usize = le64(q), q += 8;
    if (e.z64_csize) csize = le64(q), q += 8;
    if (e.z64_offset) offset = le64(q), q += 8;
    if (e.z64_disk) disk = le32(q);
  }
  e.compressed_size = csize;
  e.uncompressed_size = usize;
  e.local_offset = offset;
  e.disk_start = disk;
  // The record must be exactly what a signer writes back for it (zip.hpp): no other extra field.
  const Bytes canonical = central_record(e, e.local_offset);
  if (canonical.size() != total || !std::equal(canonical.begin(), canonical.end(), p))
    fail(name, quoted(e.name) +
                   ": its central directory record carries extra fields other than "
                   "the ZIP64 sizes (or ZIP64 fields that are not needed), which app "
                   "packages do not use; repack it with MakeAppx");
  return total;
}

// The local record of `e`: checks it against the central record and finds where it ends
// (`next`: where the following record, or the central directory, starts).
void parse_local(Source& src, Entry& e, std::uint64_t next, bool zip64, std::string_view name) {
  std::array<std::uint8_t, kLocalFixed> h{};
  if (e.local_offset > src.size() || src.size() - e.local_offset < kLocalFixed)
    fail(name, quoted(e.name) + ": its local header offset " + hex(e.local_offset) +
                   " lies beyond the end of the file");
  src.read_at(e.local_offset, h);
  if (le32(h.data()) != kLocalSig)
    fail(name, quoted(e.name) + ": no local file header at " + hex(e.local_offset) +
                   " (the central directory lies)");
  e.local_version = le16(h.data() + 4);
  e.local_time = le16(h.data() + 10);
  e.local_date = le16(h.data() + 12);
  const std::uint16_t flags = le16(h.data() + 6), method = le16(h.data() + 8);
  const std::uint32_t crc = le32(h.data() + 14);
  std::uint64_t csize = le32(h.data() + 18), usize = le32(h.data() + 22);
  const std::uint16_t name_len = le16(h.data() + 26), extra_len = le16(h.data() + 28);
  e.local_header_size = kLocalFixed + name_len + extra_len;
  if (e.local_header_size > next - e.local_offset)
    fail(name, quoted(e.name) + ": its local header overlaps the next record");
  Bytes var(name_len + extra_len);
  src.read_at(e.local_offset + kLocalFixed, var);
  if (std::string_view(reinterpret_cast<const char*>(var.data()), name_len) != e.name)
    fail(name, quoted(e.name) + ": the local header at " + hex(e.local_offset) +
                   " names another file (the central directory lies)");
  if (method != e.method || flags != e.flags)
    fail(name, quoted(e.name) +
                   ": the local header's method or flags differ from the central "
                   "directory's");
  e.data_offset = e.local_offset + e.local_header_size;
  if (e.compressed_size > next - e.data_offset)
    fail(name, quoted(e.name) + ": its data (" + std::to_string(e.compressed_size) +
                   " bytes) overlaps the next record or the central directory");
  const std::uint64_t data_end = e.data_offset + e.compressed_size;
  if (!(flags & kDescriptorFlag)) {
    // Sizes in the header, or in its ZIP64 extra field when marked.
    if (csize == kMax32 || usize == kMax32) {
      const std::uint8_t* x = var.data() + name_len;
      if (extra_len < 4 || le16(x) != kZip64Tag)
        fail(name, quoted(e.name) + ": its local header marks ZIP64 sizes without a ZIP64 field");
      const std::uint16_t len = le16(x + 2);
      const std::uint8_t* q = x + 4;
      if (usize == kMax32) {
        if (len < 8 || extra_len < 12) fail(name, quoted(e.name) + ": short ZIP64 field");
        usize = le64(q), q += 8;
      }
      if (csize == kMax32) {
        if (len < 16 || extra_len < 20) fail(name, quoted(e.name) + ": short ZIP64 field");
        csize = le64(q);
      }
    }
    if (crc != e.crc || csize != e.compressed_size || usize != e.uncompressed_size)
      fail(name, quoted(e.name) +
                     ": the local header's CRC or sizes differ from the central "
                     "directory's");
    e.record_end = data_end;
  } else {
    // A data descriptor follows the data: with or without its signature, with 4- or 8-byte
    // sizes. The one that carries the central directory's values and ends where the next record
    // starts is the one.
    std::array<std::uint8_t, 24> d{};
    const std::uint64_t room = next - data_end;
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(room, d.size()));
    src.read_at(data_end, std::span<std::uint8_t>(d.data(), n));
    bool found = false;
    for (bool sig : {true, false}) {
      for (bool wide : {zip64, !zip64}) {
        const std::size_t len = (sig ? 4 : 0) + 4 + (wide ? 16 : 8);
        if (len != room) continue;
        const std::uint8_t* q = d.data();
        if (sig && le32(q) != kDescriptorSig) continue;
        if (sig) q += 4;
        const std::uint64_t dc = wide ? le64(q + 4) : le32(q + 4);
        const std::uint64_t du = wide ? le64(q + 12) : le32(q + 8);
        if (le32(q) == e.crc && dc == e.compressed_size && du == e.uncompressed_size) found = true;
      }
    }
    if (!found)
      fail(name, quoted(e.name) +
                     ": its data descriptor is missing, or differs from the "
                     "central directory, or is followed by unaccounted bytes");
    e.record_end = next;
  }
  if (e.record_end != next)
    fail(name, quoted(e.name) + ": " + std::to_string(next - e.record_end) +
                   " unaccounted bytes follow its data at " + hex(e.record_end) +
                   " (hidden data, or the central directory lies)");
}

}  // namespace

const Entry* Archive::find(std::string_view n) const {
  for (const auto& e : entries)
    if (e.name == n) return &e;
  return nullptr;
}

bool looks_like_zip(Source& src) {
  try {
    if (src.size() < kEocdSize + kLocalFixed) return false;
    std::array<std::uint8_t, 4> head{};
    src.read_at(0, head);
    std::array<std::uint8_t, kEocdSize> tail{};
    src.read_at(src.size() - kEocdSize, tail);
    return le32(head.data()) == kLocalSig && le32(tail.data()) == kEocdSig;
  } catch (const Error&) {
    return false;
  }
}

Archive read(Source& src, std::string_view name) {
  Archive a;
  a.file_size = src.size();
  if (a.file_size < kEocdSize + kLocalFixed) fail(name, "too short to be a zip package");
  std::array<std::uint8_t, kEocdSize> eocd{};
  const std::uint64_t eocd_at = a.file_size - kEocdSize;
  src.read_at(eocd_at, eocd);
  if (le32(eocd.data()) != kEocdSig)
    fail(name,
         "no end-of-central-directory record at the end of the file (not a zip package, "
         "or one with an archive comment or data appended)");
  if (le16(eocd.data() + 4) != 0 || le16(eocd.data() + 6) != 0)
    fail(name, "a multi-disk (spanned) zip archive; app packages are one file");
  const std::uint16_t disk_entries = le16(eocd.data() + 8), total16 = le16(eocd.data() + 10);
  const std::uint32_t size32 = le32(eocd.data() + 12), offset32 = le32(eocd.data() + 16);
  if (disk_entries != total16) fail(name, "the end record's entry counts disagree");
  a.eocd_entries_marked = total16 == kMax16;
  a.eocd_size_marked = size32 == kMax32;
  a.eocd_offset_marked = offset32 == kMax32;
  a.zip64 = a.eocd_size_marked || a.eocd_offset_marked;
  std::uint64_t count = total16, cd_end = eocd_at;
  a.cd_size = size32;
  a.cd_offset = offset32;
  if (a.zip64) {
    if (eocd_at < kLocatorSize + kZ64EocdSize) fail(name, "ZIP64 end records are missing");
    std::array<std::uint8_t, kLocatorSize> loc{};
    src.read_at(eocd_at - kLocatorSize, loc);
    const std::uint64_t rec_at = eocd_at - kLocatorSize - kZ64EocdSize;
    if (le32(loc.data()) != kZ64LocatorSig || le32(loc.data() + 4) != 0 ||
        le64(loc.data() + 8) != rec_at || le32(loc.data() + 16) != 1)
      fail(name,
           "the ZIP64 end-of-central-directory locator is missing or does not point to a "
           "ZIP64 end record just before it");
    std::array<std::uint8_t, kZ64EocdSize> rec{};
    src.read_at(rec_at, rec);
    if (le32(rec.data()) != kZ64EocdSig || le64(rec.data() + 4) != kZ64EocdSize - 12 ||
        le32(rec.data() + 16) != 0 || le32(rec.data() + 20) != 0 ||
        le64(rec.data() + 24) != le64(rec.data() + 32))
      fail(name,
           "the ZIP64 end-of-central-directory record is malformed (or carries extensible "
           "data, which app packages do not use)");
    a.z64_creator = le16(rec.data() + 12);
    a.z64_needed = le16(rec.data() + 14);
    count = le64(rec.data() + 32);
    a.cd_size = le64(rec.data() + 40);
    a.cd_offset = le64(rec.data() + 48);
    cd_end = rec_at;
    if ((!a.eocd_entries_marked && total16 != count) ||
        (!a.eocd_size_marked && size32 != a.cd_size) ||
        (!a.eocd_offset_marked && offset32 != a.cd_offset))
      fail(name, "the end record and the ZIP64 end record disagree");
  }
  if (a.cd_offset > cd_end || a.cd_size != cd_end - a.cd_offset)
    fail(name, "the central directory (offset " + hex(a.cd_offset) + ", " +
                   std::to_string(a.cd_size) +
                   " bytes) does not end where the end records start (" + hex(cd_end) + ")");
  if (a.cd_size > kMaxCentralDirectory)
    fail(name, "the central directory is larger than 64 MiB; tsign does not sign such packages");
  if (count == 0) fail(name, "the zip archive is empty");
  if (count > a.cd_size / kCentralFixed)
    fail(name, "the end record counts " + std::to_string(count) +
                   " entries, more than the central directory can hold");
  if (end_records(a, count, a.cd_offset, a.cd_size).size() != a.file_size - cd_end)
    fail(name, "unexpected bytes between the central directory and the end record");

  Bytes cd(static_cast<std::size_t>(a.cd_size));
  src.read_at(a.cd_offset, cd);
  std::uint64_t at = 0;
  std::set<std::string> names;
  a.entries.reserve(static_cast<std::size_t>(count));
  for (std::uint64_t i = 0; i < count; ++i) {
    Entry e;
    at += parse_central(cd.data() + at, cd.size() - at, e, name, static_cast<std::size_t>(i));
    if (e.flags & kEncryptedFlag) fail(name, quoted(e.name) + " is encrypted");
    if (e.method != kStored && e.method != kDeflated)
      fail(name, quoted(e.name) + " uses compression method " + std::to_string(e.method) +
                     "; app packages use stored (0) or deflated (8) entries");
    if (e.disk_start != 0) fail(name, quoted(e.name) + " is on another disk");
    if (e.method == kStored && e.compressed_size != e.uncompressed_size)
      fail(name, quoted(e.name) + " is stored, but its sizes differ");
    if (!names.insert(e.name).second)
      fail(name, "the file name \"" + e.name + "\" appears twice in the central directory");
    a.entries.push_back(std::move(e));
  }
  if (at != cd.size())
    fail(name, "the central directory holds " + std::to_string(cd.size() - at) +
                   " bytes after its last record (the entry count lies)");
  // The records follow one another from offset 0, in directory order, up to the directory.
  if (a.entries.front().local_offset != 0)
    fail(name,
         "the first local record does not start the file (data is prepended, or the "
         "central directory lies)");
  for (std::size_t i = 0; i < a.entries.size(); ++i) {
    const std::uint64_t next =
        i + 1 < a.entries.size() ? a.entries[i + 1].local_offset : a.cd_offset;
    if (next <= a.entries[i].local_offset || next > a.cd_offset)
      fail(name, quoted(a.entries[i].name) +
                     ": the local records are out of order or overlap "
                     "(offset " +
                     hex(a.entries[i].local_offset) + ", next " + hex(next) + ")");
    parse_local(src, a.entries[i], next, a.zip64, name);
  }
  return a;
}

void read_entry(Source& src, const Entry& e, std::string_view name,
                const std::function<void(ByteView)>& sink) {
  Bytes in(kPiece), out(kPiece);
  std::uint64_t produced = 0;
  uLong crc = ::crc32(0L, Z_NULL, 0);
  auto emit = [&](const std::uint8_t* p, std::size_t n) {
    if (n == 0) return;
    produced += n;
    if (produced > e.uncompressed_size)
      fail(name, quoted(e.name) + ": its data is larger than the central directory says");
    crc = ::crc32(crc, p, static_cast<uInt>(n));
    sink(ByteView(p, n));
  };
  if (e.method == kStored) {
    for (std::uint64_t off = 0; off < e.compressed_size;) {
      const auto n =
          static_cast<std::size_t>(std::min<std::uint64_t>(kPiece, e.compressed_size - off));
      src.read_at(e.data_offset + off, std::span<std::uint8_t>(in.data(), n));
      emit(in.data(), n);
      off += n;
    }
  } else {
    z_stream z{};
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) throw std::bad_alloc();
    struct End {
      z_stream* z;
      ~End() { inflateEnd(z); }
    } end{&z};
    std::uint64_t off = 0;
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
      if (z.avail_in == 0) {
        if (off == e.compressed_size)
          fail(name, quoted(e.name) + ": its deflated data ends before the stream does");
        const auto n =
            static_cast<std::size_t>(std::min<std::uint64_t>(kPiece, e.compressed_size - off));
        src.read_at(e.data_offset + off, std::span<std::uint8_t>(in.data(), n));
        off += n;
        z.next_in = in.data();
        z.avail_in = static_cast<uInt>(n);
      }
      z.next_out = out.data();
      z.avail_out = static_cast<uInt>(out.size());
      rc = inflate(&z, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END)
        fail(name, quoted(e.name) + ": its deflated data is corrupt");
      emit(out.data(), out.size() - z.avail_out);
    }
    if (z.avail_in != 0 || off != e.compressed_size)
      fail(name, quoted(e.name) + ": bytes follow the end of its deflated data");
  }
  if (produced != e.uncompressed_size)
    fail(name, quoted(e.name) + ": its data is " + std::to_string(produced) +
                   " bytes, but the central directory says " + std::to_string(e.uncompressed_size));
  if (static_cast<std::uint32_t>(crc) != e.crc)
    fail(name, quoted(e.name) + ": its CRC-32 does not match its data");
}

Bytes read_entry_all(Source& src, const Entry& e, std::string_view name, std::uint64_t limit) {
  if (e.uncompressed_size > limit)
    fail(name, quoted(e.name) + " is " + std::to_string(e.uncompressed_size) +
                   " bytes, larger than tsign reads for it (" + std::to_string(limit) + ")");
  Bytes all;
  all.reserve(static_cast<std::size_t>(e.uncompressed_size));
  read_entry(src, e, name, [&](ByteView b) { all.insert(all.end(), b.begin(), b.end()); });
  return all;
}

Bytes central_record(const Entry& e, std::uint64_t offset) {
  const bool z64_offset = e.z64_offset || offset >= kMax32;
  Writer w;
  w.u32(kCentralSig);
  w.u16(e.creator_version);
  w.u16(e.needed_version);
  w.u16(e.flags);
  w.u16(e.method);
  w.u16(e.mod_time);
  w.u16(e.mod_date);
  w.u32(e.crc);
  w.u32(e.z64_csize ? kMax32 : e.compressed_size);
  w.u32(e.z64_usize ? kMax32 : e.uncompressed_size);
  w.u16(e.name.size());
  const std::uint16_t chunk =
      static_cast<std::uint16_t>(8 * (e.z64_usize + e.z64_csize + z64_offset) + 4 * e.z64_disk);
  w.u16(chunk ? chunk + 4 : 0);
  w.u16(e.comment.size());
  w.u16(e.z64_disk ? kMax16 : e.disk_start);
  w.u16(e.internal_attr);
  w.u32(e.external_attr);
  w.u32(z64_offset ? kMax32 : offset);
  w.text(e.name);
  if (chunk) {
    w.u16(kZip64Tag);
    w.u16(chunk);
    if (e.z64_usize) w.u64(e.uncompressed_size);
    if (e.z64_csize) w.u64(e.compressed_size);
    if (z64_offset) w.u64(offset);
    if (e.z64_disk) w.u32(e.disk_start);
  }
  w.bytes(e.comment);
  return std::move(w.b);
}

Bytes end_records(const Archive& a, std::uint64_t count, std::uint64_t cd_offset,
                  std::uint64_t cd_size) {
  Writer w;
  if (a.zip64) {
    w.u32(kZ64EocdSig);
    w.u64(kZ64EocdSize - 12);
    w.u16(a.z64_creator);
    w.u16(a.z64_needed);
    w.u32(0);
    w.u32(0);
    w.u64(count);
    w.u64(count);
    w.u64(cd_size);
    w.u64(cd_offset);
    w.u32(kZ64LocatorSig);
    w.u32(0);
    w.u64(cd_offset + cd_size);
    w.u32(1);
  }
  w.u32(kEocdSig);
  w.u16(0);
  w.u16(0);
  w.u16(a.eocd_entries_marked ? kMax16 : count);
  w.u16(a.eocd_entries_marked ? kMax16 : count);
  w.u32(a.eocd_size_marked ? kMax32 : cd_size);
  w.u32(a.eocd_offset_marked ? kMax32 : cd_offset);
  w.u16(0);
  return std::move(w.b);
}

Bytes local_header(const Entry& e) {
  Writer w;
  w.u32(kLocalSig);
  w.u16(e.local_version);
  w.u16(e.flags);
  w.u16(e.method);
  w.u16(e.local_time);
  w.u16(e.local_date);
  const bool descriptor = e.flags & kDescriptorFlag;
  w.u32(descriptor ? 0 : e.crc);
  w.u32(descriptor ? 0 : e.compressed_size);
  w.u32(descriptor ? 0 : e.uncompressed_size);
  w.u16(e.name.size());
  w.u16(0);
  w.text(e.name);
  return std::move(w.b);
}

Bytes data_descriptor(const Entry& e, bool wide) {
  Writer w;
  w.u32(kDescriptorSig);
  w.u32(e.crc);
  if (wide) {
    w.u64(e.compressed_size);
    w.u64(e.uncompressed_size);
  } else {
    w.u32(e.compressed_size);
    w.u32(e.uncompressed_size);
  }
  return std::move(w.b);
}

Bytes deflate(ByteView data) {
  z_stream z{};
  if (deflateInit2(&z, 8, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::bad_alloc();
  Bytes out(deflateBound(&z, static_cast<uLong>(data.size())));
  z.next_in = const_cast<std::uint8_t*>(data.data());
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = ::deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw FileError("cannot compress a package entry (zlib error)");
  return out;
}

std::uint32_t crc32(ByteView data) {
  uLong c = ::crc32(0L, Z_NULL, 0);
  for (std::size_t at = 0; at < data.size();) {
    const auto n = static_cast<uInt>(std::min<std::size_t>(data.size() - at, 1u << 30));
    c = ::crc32(c, data.data() + at, n);
    at += n;
  }
  return static_cast<std::uint32_t>(c);
}

}  // namespace tsign::formats::zip
