// PE/COFF images (.exe .dll .sys ...): Microsoft "PE Format" (learn.microsoft.com/windows/win32/
// debug/pe-format), sections "Optional Header Data Directories" and "The Attribute Certificate
// Table (Image Only)", and "Windows Authenticode Portable Executable Signature Format" (the
// Authenticode digest). The rules tsign follows are summarised in docs/authenticode.md.
//
// The functions here work on a Source (a file or a memory buffer) so the unit tests and the fuzz
// target exercise exactly the code the signer runs.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "formats/format.hpp"
#include "formats/source.hpp"

namespace tsign::platform {
class ReadFile;
}

namespace tsign::formats::pe {

// The parser reads through formats::Source (a file, or memory in tests and fuzz targets).
using Source = formats::Source;
using MemorySource = formats::MemorySource;

// Where the fields the signature changes live, and the existing signature, as parsed.
struct Layout {
  std::uint64_t file_size = 0;
  std::uint32_t e_lfanew = 0;
  bool pe32_plus = false;
  std::uint64_t checksum_offset = 0;    // E+88, 4 bytes
  std::uint64_t cert_entry_offset = 0;  // data directory #4: E+152 (PE32) / E+168 (PE32+), 8 bytes
  std::uint64_t headers_end = 0;        // end of the section table
  std::uint32_t stored_checksum = 0;
  std::uint32_t cert_table_offset = 0;  // 0 when unsigned
  std::uint32_t cert_table_size = 0;
  Bytes pkcs7_der;  // the PKCS#7 of the first WIN_CERTIFICATE (the primary); empty when unsigned
  // The table may hold further WIN_CERTIFICATE entries, each 8-byte aligned (Microsoft's signed
  // shimx64.efi has two). Windows checks only the first; the others are kept as they stand when a
  // signature is appended: their PKCS#7s in table order, and their raw bytes (a multiple of 8).
  std::vector<Bytes> other_pkcs7_der;
  Bytes other_entries;

  bool has_signature() const { return cert_table_size != 0; }
  // Where the content ends: the certificate table's start, or the end of the file.
  std::uint64_t content_end() const { return has_signature() ? cert_table_offset : file_size; }
};

// Content detection only (MZ, e_lfanew inside the file, "PE\0\0", optional-header magic, enough
// of the optional header for the certificate table entry). Never throws.
bool detect(Source& src);

// Full validation. Throws FileError "<name>: <reason>" for anything the signer must refuse.
Layout parse(Source& src, std::string_view name);

// The 16-bit end-around-carry word sum of the PE checksum, accumulated over pieces given in any
// order at their absolute file offsets (the sum is order-independent, so the signer can add the
// parts it is about to write before writing them).
class ChecksumSum {
 public:
  void add(std::uint64_t offset, ByteView data);
  void add(const ChecksumSum& other) { sum_ += other.sum_; }
  // Folded to 16 bits, plus the file length (as the PE specification's algorithm does).
  std::uint32_t finish(std::uint64_t file_length) const;

 private:
  std::uint64_t sum_ = 0;
};

// The PE CheckSum of a complete image held in memory, skipping the 4 bytes at checksum_offset.
// An odd trailing byte counts as a word with a zero high byte (as Windows' CheckSumMappedFile).
std::uint32_t pe_checksum(ByteView image, std::uint64_t checksum_offset);

// The result of one streaming pass over the content: the Authenticode digest and the checksum
// sum of the content with the CheckSum field and the certificate table entry left out.
struct ContentScan {
  Bytes digest;
  ChecksumSum content_sum;
};
// With `copy`, every byte of the content read is also lent to it (PatchableOutput::lend), before
// it is hashed (the signed copy written in the same pass: SignableFile::digest_copying).
ContentScan scan(Source& src, const Layout& layout, DigestAlg alg, PatchableOutput* copy = nullptr);

// What signing changes in an image with this layout and content sum: the CheckSum field, the
// certificate table's directory entry, and what is appended after the content (padding, the
// WIN_CERTIFICATE with `pkcs7_der`, `layout.other_entries`), which starts at `table_offset`
// rounded up from the content's end. Throws FileError "<name>: ..." if the result would reach
// 4 GiB.
struct SignedParts {
  Bytes tail;
  std::array<std::uint8_t, 8> entry{};
  std::array<std::uint8_t, 4> checksum{};
  std::uint64_t table_offset = 0;
};
SignedParts signed_parts(const Layout& layout, ByteView pkcs7_der, const ChecksumSum& content_sum,
                         std::string_view name);

// Authenticode digest of the image (streamed, 1 MiB buffer).
inline Bytes authenticode_digest(Source& src, const Layout& layout, DigestAlg alg) {
  return scan(src, layout, alg).digest;
}

// Throws FileError "<name>: ..." if the image, signed with a signature of up to
// `max_signature_bytes` of DER, would be 4 GiB or larger (the certificate table's offset and size
// are 32-bit fields). Cheap: it needs the layout only, not a pass over the file.
void check_can_embed(const Layout& layout, std::uint64_t max_signature_bytes,
                     std::string_view name);

// Streams the image with `pkcs7_der` as its primary signature, followed by
// `layout.other_entries` (clear them for an image with one signature), to `out`, and returns the
// Authenticode digest (`alg`) of the image as written: the bytes handed to `out`, hashed as they
// go. It equals the digest scan() gave only if the file's content did not change in between; the
// caller compares the two. `content_sum` from an earlier scan() saves a read pass; it is checked
// against the bytes actually copied too (a cheap first line, blind to a swap of two words).
Bytes write_signed(Source& src, const Layout& layout, ByteView pkcs7_der, SignedOutput& out,
                   std::string_view name, std::optional<ChecksumSum> content_sum = std::nullopt,
                   DigestAlg alg = DigestAlg::sha256);

// The SignableFile for a PE image. Reopens the file for each operation rather than holding it
// open, so the caller can replace it (Windows refuses to rename over an open file).
std::unique_ptr<SignableFile> open(const std::filesystem::path& path);
bool detect(platform::ReadFile& file);

}  // namespace tsign::formats::pe
