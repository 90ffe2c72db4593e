// PE/COFF images: Microsoft "PE Format" (learn.microsoft.com/windows/win32/debug/pe-format),
// "Optional Header Data Directories" and "The Attribute Certificate Table (Image Only)", and
// "Windows Authenticode Portable Executable Signature Format" for the digest. Behaviour on edge
// cases (odd lengths, existing signatures) follows osslsigncode's pe.c, the judge of our output;
// a certificate table of several WIN_CERTIFICATE entries, which osslsigncode 2.9 cannot read, is
// handled as docs/usage.md "What tsign guarantees" describes (the first entry is the primary).
#include "formats/pe.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/pkcs7.h>

#include "common/error.hpp"
#include "common/ossl.hpp"
#include "formats/spc_data.hpp"
#include "platform/platform.hpp"

namespace tsign::formats::pe {

namespace {

void free_sequence_any(ASN1_SEQUENCE_ANY* s) {
  sk_ASN1_TYPE_pop_free(s, ASN1_TYPE_free);
}
using SequenceAnyPtr = OsslPtr<ASN1_SEQUENCE_ANY, free_sequence_any>;

constexpr std::uint64_t kFourGiB = std::uint64_t{1} << 32;
constexpr std::size_t kChunk = std::size_t{1} << 20;  // the streaming buffer: 1 MiB
// An Authenticode signature is kilobytes (a few hundred with many nested signatures); a larger
// table is not a signature we can sensibly hold in memory and re-embed.
constexpr std::uint32_t kMaxCertTable = 64u << 20;
constexpr std::uint16_t kWinCertRevision2 = 0x0200;
constexpr std::uint16_t kWinCertTypePkcsSignedData = 0x0002;
constexpr std::uint16_t kMagicPe32 = 0x10B;
constexpr std::uint16_t kMagicPe32Plus = 0x20B;
constexpr std::size_t kDosHeaderSize = 64;
constexpr std::size_t kSectionHeaderSize = 40;
// Offsets from e_lfanew (see the table in docs/authenticode.md).
constexpr std::uint64_t kOffNumberOfSections = 6;
constexpr std::uint64_t kOffSizeOfOptionalHeader = 20;
constexpr std::uint64_t kOffMagic = 24;
constexpr std::uint64_t kOffCheckSum = 88;
constexpr std::uint64_t kOffSizeOfHeaders = 84;  // optional header + 60, in PE32 and PE32+ alike
constexpr std::uint64_t kOffNumberOfRvaAndSizes32 = 116;
constexpr std::uint64_t kOffCertEntry32 = 152;
constexpr std::uint64_t kPe32PlusShift = 16;  // PE32+ has 16 more bytes before the directories
constexpr std::uint64_t kOptionalHeaderStart = 24;
// In a section header: VirtualSize, VirtualAddress, SizeOfRawData, PointerToRawData.
constexpr std::size_t kOffSizeOfRawData = 16;
constexpr std::size_t kOffPointerToRawData = 20;

// What detection learns; parse() goes on from here.
struct Headers {
  std::uint32_t e_lfanew = 0;
  bool pe32_plus = false;
  Bytes nt;  // bytes from e_lfanew up to the end of the certificate table entry
};

// Shared by detect() and parse(): returns the reason the bytes are not a PE image, or nullopt.
std::optional<std::string> read_headers(Source& src, Headers& h) {
  const std::uint64_t size = src.size();
  std::array<std::uint8_t, kDosHeaderSize> dos{};
  if (size < 2) return "not a PE file: no MZ header";
  src.read_at(0, std::span<std::uint8_t>(dos.data(), 2));
  if (dos[0] != 'M' || dos[1] != 'Z') return "not a PE file: no MZ header";
  if (size < kDosHeaderSize) return "truncated file: shorter than the 64-byte MS-DOS header";
  src.read_at(0, dos);
  h.e_lfanew = le32(&dos[0x3C]);
  if (h.e_lfanew >= size || size - h.e_lfanew < 4)
    return "e_lfanew (" + hex(h.e_lfanew) + ") points outside the file (size " +
           std::to_string(size) + ")";
  std::array<std::uint8_t, 4> sig{};
  src.read_at(h.e_lfanew, sig);
  if (std::memcmp(sig.data(), "PE\0\0", 4) != 0)
    return "not a PE file: no \"PE\\0\\0\" signature at e_lfanew (" + hex(h.e_lfanew) + ")";
  if (size - h.e_lfanew < kOffMagic + 2)
    return "truncated file: the COFF header ends after the end of the file";
  std::array<std::uint8_t, 2> magic{};
  src.read_at(h.e_lfanew + kOffMagic, magic);
  const std::uint16_t m = le16(magic.data());
  if (m != kMagicPe32 && m != kMagicPe32Plus)
    return "not a PE file: unknown optional header magic " + hex(m) + " (expected 0x10B or 0x20B)";
  h.pe32_plus = m == kMagicPe32Plus;
  const std::uint64_t need = kOffCertEntry32 + (h.pe32_plus ? kPe32PlusShift : 0) + 8;
  if (size - h.e_lfanew < need)
    return "truncated file: the optional header ends before its certificate table entry";
  h.nt = Bytes(need);
  src.read_at(h.e_lfanew, h.nt);
  return std::nullopt;
}

// A section's 8-byte name as text for a message (`.text`); bytes that are not printable ASCII
// become '?', so a damaged header cannot put control characters into a log.
std::string section_name(const std::uint8_t* p) {
  std::string n;
  for (std::size_t i = 0; i < 8 && p[i] != 0; ++i)
    n += (p[i] >= 0x20 && p[i] < 0x7F && p[i] != '"') ? static_cast<char>(p[i]) : '?';
  return n;
}

// A truncated image (usually a build that failed while writing it) is refused: the headers and
// every section's raw data must lie inside the file (docs/usage.md, "What tsign guarantees").
// With `cert_table` set, the limit is the certificate table's offset instead of the file's end:
// image data running into the table would be cut off by re-signing (the table is replaced).
void check_not_truncated(Source& src, std::string_view name, const Headers& h,
                         std::uint64_t section_table, std::uint16_t nsec, std::uint64_t file_size,
                         bool cert_table = false) {
  const std::string limit = cert_table ? " but the certificate table starts at " + hex(file_size) +
                                             "; the image and its signature overlap"
                                       : " but the file ends at " + hex(file_size) +
                                             "; a truncated image is usually a failed build: "
                                             "build it again";
  const std::string what = cert_table ? "the image is damaged: " : "the file is truncated: ";
  const std::uint32_t size_of_headers = le32(&h.nt[kOffSizeOfHeaders]);
  if (size_of_headers > file_size)
    fail(name, what + "its headers end at " + hex(size_of_headers) + " (SizeOfHeaders)" + limit);
  Bytes table(std::size_t{nsec} * kSectionHeaderSize);
  src.read_at(section_table, table);
  for (std::size_t i = 0; i < nsec; ++i) {
    const std::uint8_t* sh = &table[i * kSectionHeaderSize];
    const std::uint32_t raw_size = le32(sh + kOffSizeOfRawData);
    const std::uint32_t raw_ptr = le32(sh + kOffPointerToRawData);
    // Uninitialised data (.bss) has no bytes in the file.
    if (raw_size == 0) continue;
    const std::uint64_t end = std::uint64_t{raw_ptr} + raw_size;
    if (end > file_size)
      fail(name, what + "section \"" + section_name(sh) + "\" (number " + std::to_string(i + 1) +
                     ") has its raw data at " + hex(raw_ptr) + ".." + hex(end) +
                     " (PointerToRawData + SizeOfRawData)" + limit);
  }
}

// Calls fn(offset, piece) for the parts of [offset, offset+data.size()) that the Authenticode
// digest covers, i.e. everything except the CheckSum field and the certificate table entry.
template <typename Fn>
void for_each_covered(const Layout& l, std::uint64_t offset, ByteView data, Fn&& fn) {
  const std::array<std::pair<std::uint64_t, std::uint64_t>, 2> skip{{
      {l.checksum_offset, l.checksum_offset + 4},
      {l.cert_entry_offset, l.cert_entry_offset + 8},
  }};
  std::uint64_t pos = offset;
  const std::uint64_t end = offset + data.size();
  for (auto [a, b] : skip) {
    if (b <= pos || a >= end) continue;
    if (a > pos) fn(pos, data.subspan(pos - offset, a - pos));
    pos = std::max(pos, std::min(b, end));
  }
  if (pos < end) fn(pos, data.subspan(pos - offset, end - pos));
}

// Overwrites the parts of the chunk at `offset` that fall inside [field_off, field_off+field.size).
void patch(std::uint64_t offset, std::span<std::uint8_t> chunk, std::uint64_t field_off,
           ByteView field) {
  const std::uint64_t a = std::max(offset, field_off);
  const std::uint64_t b = std::min(offset + chunk.size(), field_off + field.size());
  for (std::uint64_t i = a; i < b; ++i) chunk[i - offset] = field[i - field_off];
}

// Checks the WIN_CERTIFICATE at `at` of the certificate table (the `index`th, from 1) and puts
// its PKCS#7 in `der`; returns where the next entry starts (entries are 8-byte aligned).
std::uint64_t read_entry(std::string_view name, ByteView table, std::uint64_t at, std::size_t index,
                         Bytes& der) {
  const std::uint64_t rest = table.size() - at;
  // The primary keeps the plain wording; later entries say which one they are.
  const std::string what = index == 1 ? std::string("WIN_CERTIFICATE")
                                      : "WIN_CERTIFICATE number " + std::to_string(index) +
                                            " (at " + hex(at) + " in the certificate table)";
  if (rest < 8)
    fail(name, "the certificate table ends with " + std::to_string(rest) +
                   " bytes that are not a WIN_CERTIFICATE");
  const std::uint8_t* e = table.data() + at;
  const std::uint32_t dw_length = le32(e);
  const std::uint16_t revision = le16(e + 4);
  const std::uint16_t type = le16(e + 6);
  if (revision != kWinCertRevision2)
    fail(name, what + " revision is " + hex(revision) + ", expected 0x200");
  if (type != kWinCertTypePkcsSignedData)
    fail(name, what + " type is " + hex(type) + ", expected 0x2 (PKCS_SIGNED_DATA)");
  if (dw_length <= 8 || dw_length > rest)
    fail(name, what + " length " + std::to_string(dw_length) + " does not fit the " +
                   (index == 1 ? "" : "rest of the ") + "certificate table (" +
                   std::to_string(rest) + " bytes)");

  // The DER's own length says where the signature ends; d2i parses exactly one object. Of the
  // primary only the outer SEQUENCE {contentType, [0] content} is read here: decoding the whole
  // SignedData would decode every certificate's public key, which costs more than the rest of
  // opening a small file, and every signed copy is opened again to be checked. Whoever uses its
  // content (verification, nesting) decodes it then and judges it. A further entry is kept as
  // it stands when the file is signed, so it is decoded now and must be a SignedData.
  const unsigned char* p = e + 8;
  const long der_max = static_cast<long>(dw_length - 8);
  bool valid = false;
  if (index == 1) {
    SequenceAnyPtr outer(d2i_ASN1_SEQUENCE_ANY(nullptr, &p, der_max));
    valid = outer && sk_ASN1_TYPE_num(outer.get()) == 2 &&
            sk_ASN1_TYPE_value(outer.get(), 0)->type == V_ASN1_OBJECT &&
            sk_ASN1_TYPE_value(outer.get(), 1)->type == V_ASN1_OTHER;
  } else {
    PKCS7Ptr p7(d2i_PKCS7(nullptr, &p, der_max));
    valid = p7 && PKCS7_type_is_signed(p7.get());
  }
  if (!valid) {
    ERR_clear_error();
    fail(name, index == 1 ? std::string("the existing signature is not a valid PKCS#7 structure")
                          : what + " is not a valid PKCS#7 SignedData");
  }
  const std::uint64_t der_end = static_cast<std::uint64_t>(p - table.data());
  // CVE-2013-3900: data appended inside an entry after its signature survives verification by
  // lax verifiers. Only the zero padding to the next 8-byte boundary may follow the DER.
  const std::uint64_t end = std::min<std::uint64_t>(round8(at + dw_length), table.size());
  const bool only_padding =
      end - der_end < 8 && std::all_of(table.begin() + static_cast<std::ptrdiff_t>(der_end),
                                       table.begin() + static_cast<std::ptrdiff_t>(end),
                                       [](std::uint8_t b) { return b == 0; });
  if (!only_padding)
    fail(name, (index == 1 ? std::string("the certificate table") : what) + " holds " +
                   std::to_string(end - der_end) +
                   " bytes after the PKCS#7 signature beyond its zero padding (the CVE-2013-3900 "
                   "pattern); remove the signature with a trusted tool and sign again");
  der.assign(table.begin() + static_cast<std::ptrdiff_t>(at + 8),
             table.begin() + static_cast<std::ptrdiff_t>(der_end));
  return end;
}

}  // namespace

bool detect(Source& src) {
  try {
    Headers h;
    return !read_headers(src, h).has_value();
  } catch (const Error&) {
    return false;
  }
}

Layout parse(Source& src, std::string_view name) {
  Headers h;
  if (auto why = read_headers(src, h)) fail(name, *why);

  Layout l;
  l.file_size = src.size();
  // The certificate table's offset and size are 32-bit fields.
  if (l.file_size >= kFourGiB)
    fail(name, "the file is 4 GiB or larger; a PE file cannot be signed beyond 4 GiB");
  l.e_lfanew = h.e_lfanew;
  l.pe32_plus = h.pe32_plus;
  const std::uint64_t shift = h.pe32_plus ? kPe32PlusShift : 0;
  l.checksum_offset = h.e_lfanew + kOffCheckSum;
  l.cert_entry_offset = h.e_lfanew + kOffCertEntry32 + shift;
  l.stored_checksum = le32(&h.nt[kOffCheckSum]);

  const std::uint32_t nrva = le32(&h.nt[kOffNumberOfRvaAndSizes32 + shift]);
  if (nrva < 5)
    fail(name, "NumberOfRvaAndSizes is " + std::to_string(nrva) +
                   " (< 5): the image has no certificate table entry");
  const std::uint16_t opt_size = le16(&h.nt[kOffSizeOfOptionalHeader]);
  const std::uint64_t min_opt = kOffCertEntry32 + shift + 8 - kOptionalHeaderStart;
  if (opt_size < min_opt)
    fail(name, "SizeOfOptionalHeader is " + std::to_string(opt_size) +
                   ", too small to hold the certificate table entry");
  const std::uint16_t nsec = le16(&h.nt[kOffNumberOfSections]);
  l.headers_end =
      h.e_lfanew + kOptionalHeaderStart + opt_size + std::uint64_t{nsec} * kSectionHeaderSize;
  if (l.headers_end > l.file_size)
    fail(name, "the section table (" + std::to_string(nsec) + " sections) ends outside the file");
  check_not_truncated(src, name, h, h.e_lfanew + kOptionalHeaderStart + opt_size, nsec,
                      l.file_size);

  const std::uint32_t pos = le32(&h.nt[kOffCertEntry32 + shift]);
  const std::uint32_t len = le32(&h.nt[kOffCertEntry32 + shift + 4]);
  if (pos == 0 && len == 0) return l;  // unsigned
  if (pos == 0 || len == 0)
    fail(name, "the certificate table entry is inconsistent (offset " + hex(pos) + ", size " +
                   std::to_string(len) + ")");
  if (pos >= l.file_size)
    fail(name, "the certificate table starts outside the file (offset " + hex(pos) +
                   ", file size " + std::to_string(l.file_size) + ")");
  if (std::uint64_t{pos} + len > l.file_size)
    fail(name, "the certificate table ends outside the file (offset " + hex(pos) + ", size " +
                   std::to_string(len) + ", file size " + std::to_string(l.file_size) + ")");
  if (std::uint64_t{pos} + len != l.file_size)
    fail(name, "the certificate table is not at the end of the file (" +
                   std::to_string(l.file_size - pos - len) + " bytes follow it)");
  if (pos < l.headers_end) fail(name, "the certificate table overlaps the PE headers");
  check_not_truncated(src, name, h, h.e_lfanew + kOptionalHeaderStart + opt_size, nsec, pos, true);
  // The specification requires quadword alignment; every signer pads the image before the table,
  // and the digest of a signed file (which does not pad) then equals that of the unsigned one.
  if (pos % 8 != 0) fail(name, "the certificate table is not 8-byte aligned (" + hex(pos) + ")");
  if (len < 8) fail(name, "the certificate table is too small for a WIN_CERTIFICATE header");
  if (len > kMaxCertTable)
    fail(name, "the certificate table is " + std::to_string(len) +
                   " bytes, too large to be an Authenticode signature");

  Bytes table = Bytes(len);
  src.read_at(pos, table);
  // Entry by entry: the first is the primary signature, the others are kept (see Layout).
  std::uint64_t at = 0;
  for (std::size_t index = 1; at < len; ++index) {
    Bytes der;
    const std::uint64_t next = read_entry(name, table, at, index, der);
    if (index == 1) {
      l.pkcs7_der = std::move(der);
    } else {
      l.other_pkcs7_der.push_back(std::move(der));
    }
    if (index == 2)
      l.other_entries.assign(table.begin() + static_cast<std::ptrdiff_t>(at), table.end());
    at = next;
  }
  l.other_entries.resize(round8(l.other_entries.size()), 0);
  l.cert_table_offset = pos;
  l.cert_table_size = len;
  return l;
}

void ChecksumSum::add(std::uint64_t offset, ByteView data) {
  std::size_t i = 0;
  // A byte at an odd offset is the high half of its word.
  if (offset % 2 == 1 && !data.empty()) sum_ += std::uint64_t{data[i++]} << 8;
  std::uint64_t s = 0;
  for (; i + 1 < data.size(); i += 2) s += le16(&data[i]);
  if (i < data.size()) s += data[i];
  sum_ += s;
}

std::uint32_t ChecksumSum::finish(std::uint64_t file_length) const {
  // Folding the total equals folding after every addition (end-around carry), in any order.
  std::uint64_t s = sum_;
  while (s >> 16) s = (s & 0xFFFF) + (s >> 16);
  return static_cast<std::uint32_t>(s + file_length);
}

std::uint32_t pe_checksum(ByteView image, std::uint64_t checksum_offset) {
  ChecksumSum sum;
  const std::uint64_t a = std::min<std::uint64_t>(checksum_offset, image.size());
  const std::uint64_t b = std::min<std::uint64_t>(checksum_offset + 4, image.size());
  sum.add(0, image.first(a));
  sum.add(b, image.subspan(b));
  return sum.finish(image.size());
}

ContentScan scan(Source& src, const Layout& layout, DigestAlg alg, PatchableOutput* copy) {
  Hasher hasher(alg);
  ChecksumSum sum;
  const std::uint64_t end = layout.content_end();
  // With a copy, each chunk is lent to it before it is hashed: the same bytes, whatever the file
  // does next.
  for_each_chunk(src, 0, end, kChunk, copy, [&](std::uint64_t off, ByteView chunk) {
    for_each_covered(layout, off, chunk, [&](std::uint64_t piece_off, ByteView piece) {
      hasher.update(piece);
      sum.add(piece_off, piece);
    });
  });
  // An unsigned image is hashed as if already padded to 8 bytes, as it will be once signed.
  static constexpr std::array<std::uint8_t, 8> zeros{};
  hasher.update(ByteView(zeros.data(), round8(end) - end));
  return {hasher.finish(), sum};
}

namespace {

// Passes everything on to `out` and hashes it as the Authenticode digest covers it (scan()'s
// rule, applied to the image being written): the digest of what was written, not of what was
// read before.
class DigestingOutput final : public SignedOutput {
 public:
  DigestingOutput(SignedOutput& out, const Layout& layout, std::uint64_t covered_end, DigestAlg alg)
      : out_(out), layout_(layout), end_(covered_end), hasher_(alg) {}
  void write(ByteView data) override {
    out_.write(data);
    if (pos_ < end_) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), end_ - pos_));
      for_each_covered(layout_, pos_, data.first(n),
                       [&](std::uint64_t, ByteView piece) { hasher_.update(piece); });
    }
    pos_ += data.size();
  }
  Bytes finish() { return hasher_.finish(); }

 private:
  SignedOutput& out_;
  const Layout& layout_;
  const std::uint64_t end_;
  std::uint64_t pos_ = 0;
  Hasher hasher_;
};

}  // namespace

void check_can_embed(const Layout& layout, std::uint64_t max_signature_bytes,
                     std::string_view name) {
  // The other certificate-table entries count too: append-signature keeps them.
  const std::uint64_t signed_size =
      round8(layout.content_end()) + 8 + round8(max_signature_bytes) + layout.other_entries.size();
  if (signed_size >= kFourGiB)
    fail(name, "the file is " + std::to_string(layout.file_size) +
                   " bytes: with a signature (up to " + std::to_string(max_signature_bytes) +
                   " bytes) it would be 4 GiB or larger, beyond what PE allows; nothing was "
                   "requested for it");
}

SignedParts signed_parts(const Layout& layout, ByteView pkcs7_der, const ChecksumSum& content_sum,
                         std::string_view name) {
  if (pkcs7_der.empty()) fail(name, "cannot embed an empty signature");
  SignedParts parts;
  const std::uint64_t end = layout.content_end();
  parts.table_offset = round8(end);
  const std::uint64_t primary_size = 8 + round8(pkcs7_der.size());
  const std::uint64_t table_size = primary_size + layout.other_entries.size();
  if (parts.table_offset + table_size >= kFourGiB)
    fail(name, "the signed file would be 4 GiB or larger, beyond what PE allows");

  // Everything appended: padding to 8, WIN_CERTIFICATE header, DER, padding to 8, then the
  // other entries as they were.
  parts.tail.assign(parts.table_offset - end + table_size, 0);
  std::uint8_t* hdr = parts.tail.data() + (parts.table_offset - end);
  put_le32(hdr, static_cast<std::uint32_t>(primary_size));
  put_le16(hdr + 4, kWinCertRevision2);
  put_le16(hdr + 6, kWinCertTypePkcsSignedData);
  std::copy(pkcs7_der.begin(), pkcs7_der.end(), hdr + 8);
  std::copy(layout.other_entries.begin(), layout.other_entries.end(), hdr + primary_size);

  put_le32(parts.entry.data(), static_cast<std::uint32_t>(parts.table_offset));
  put_le32(parts.entry.data() + 4, static_cast<std::uint32_t>(table_size));

  // The CheckSum field comes first in the file but covers all of it: the content's sum plus the
  // parts added.
  ChecksumSum total = content_sum;
  total.add(layout.cert_entry_offset, parts.entry);
  total.add(end, parts.tail);
  put_le32(parts.checksum.data(), total.finish(parts.table_offset + table_size));
  return parts;
}

Bytes write_signed(Source& src, const Layout& layout, ByteView pkcs7_der, SignedOutput& sink,
                   std::string_view name, std::optional<ChecksumSum> content_sum, DigestAlg alg) {
  if (pkcs7_der.empty()) fail(name, "cannot embed an empty signature");
  if (src.size() != layout.file_size) fail(name, "the file changed size while it was being signed");
  const std::uint64_t end = layout.content_end();
  // The content's checksum sum: known from the digest pass, or from an extra read here.
  if (!content_sum) {
    ChecksumSum s;
    Bytes buf(static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, end)));
    for (std::uint64_t off = 0; off < end;) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, end - off));
      std::span<std::uint8_t> chunk(buf.data(), n);
      src.read_at(off, chunk);
      for_each_covered(layout, off, chunk,
                       [&](std::uint64_t piece_off, ByteView piece) { s.add(piece_off, piece); });
      off += n;
    }
    content_sum = s;
  }
  const SignedParts parts = signed_parts(layout, pkcs7_der, *content_sum, name);
  const auto& [tail, entry, checksum, table_offset] = parts;
  // The written image's digest covers everything before its certificate table.
  DigestingOutput out(sink, layout, table_offset, alg);

  ChecksumSum copied;
  Bytes buf(static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, end)));
  for (std::uint64_t off = 0; off < end;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, end - off));
    std::span<std::uint8_t> chunk(buf.data(), n);
    src.read_at(off, chunk);
    for_each_covered(layout, off, chunk, [&](std::uint64_t piece_off, ByteView piece) {
      copied.add(piece_off, piece);
    });
    patch(off, chunk, layout.checksum_offset, checksum);
    patch(off, chunk, layout.cert_entry_offset, entry);
    out.write(chunk);
    off += n;
  }
  // A mismatch means the bytes changed since they were hashed: the signature would not match.
  if (copied.finish(0) != content_sum->finish(0))
    fail(name, "the file changed while it was being signed");
  out.write(tail);
  return out.finish();
}

namespace {

class PeFile final : public SignableFile {
 public:
  PeFile(const std::filesystem::path& p, Layout layout)
      : SignableFile(p), name_(platform::to_utf8(p)), layout_(std::move(layout)) {}

  std::string_view format_name() const override { return "pe"; }
  SignedContent signed_content() const override {
    return {std::string(kSpcPeImageDataOid), pe_image_data_der(), {}, {}};
  }
  std::uint64_t size() const override { return layout_.file_size; }

  Bytes digest(DigestAlg alg) override {
    platform::ReadFile f(path());
    FileSource src(f);
    check_unchanged(src);
    auto r = scan(src, layout_, alg);
    content_sum_ = r.content_sum;
    return r.digest;
  }

  bool copies_while_digesting() const override { return true; }

  Bytes digest_copying(DigestAlg alg, PatchableOutput& copy) override {
    platform::ReadFile f(path());
    FileSource src(f);
    check_unchanged(src);
    auto r = scan(src, layout_, alg, &copy);
    content_sum_ = r.content_sum;
    return r.digest;
  }

  // The copy holds the content [0, content_end) as it was digested: fill in the CheckSum and the
  // directory entry, append the certificate table with the new signature as its only entry.
  void finish_copy(ByteView pkcs7_der, PatchableOutput& copy) override {
    if (!content_sum_) throw std::logic_error("finish_copy before digest_copying");
    Layout only = layout_;
    only.other_entries.clear();
    only.other_pkcs7_der.clear();
    const SignedParts parts = signed_parts(only, pkcs7_der, *content_sum_, name_);
    copy.write(parts.tail);
    copy.patch(only.checksum_offset, parts.checksum);
    copy.patch(only.cert_entry_offset, parts.entry);
  }

  std::optional<Bytes> existing_signature() override {
    if (!layout_.has_signature()) return std::nullopt;
    return layout_.pkcs7_der;
  }

  void check_can_embed(std::uint64_t max_signature_bytes) const override {
    pe::check_can_embed(layout_, max_signature_bytes, name_);
  }

  std::vector<Bytes> other_signatures() override { return layout_.other_pkcs7_der; }

  // Replacing makes the new signature the only entry of the certificate table (as osslsigncode
  // does): the entries left behind would be signatures the user asked to replace.
  Bytes write_signed(ByteView pkcs7_der, SignedOutput& out, DigestAlg alg) override {
    Layout only = layout_;
    only.other_entries.clear();
    only.other_pkcs7_der.clear();
    return write(pkcs7_der, out, only, alg);
  }

  // Appending nests into the primary and keeps the other entries byte for byte: they sign the
  // same content (the table is outside the digest), and firmware may trust only one of them.
  Bytes write_signed_keeping_others(ByteView pkcs7_der, SignedOutput& out, DigestAlg alg) override {
    return write(pkcs7_der, out, layout_, alg);
  }

 private:
  Bytes write(ByteView pkcs7_der, SignedOutput& out, const Layout& layout, DigestAlg alg) {
    platform::ReadFile f(path());
    FileSource src(f);
    check_unchanged(src);
    return pe::write_signed(src, layout, pkcs7_der, out, name_, content_sum_, alg);
  }

  void check_unchanged(const Source& src) const {
    if (src.size() != layout_.file_size) fail(name_, "the file changed since it was opened");
  }

  std::string name_;
  Layout layout_;
  std::optional<ChecksumSum> content_sum_;  // from the last digest pass, saves a read
};

}  // namespace

bool detect(platform::ReadFile& file) {
  FileSource src(file);
  return detect(static_cast<Source&>(src));
}

std::unique_ptr<SignableFile> open(const std::filesystem::path& path) {
  platform::ReadFile f(path);
  FileSource src(f);
  Layout layout = parse(src, platform::to_utf8(path));
  return std::make_unique<PeFile>(path, std::move(layout));
}

}  // namespace tsign::formats::pe
