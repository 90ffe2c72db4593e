// Windows Installer files (.msi .msp .msm): compound files, [MS-CFB] "Compound File Binary File
// Format" (header, FAT, DIFAT, mini FAT, mini stream, directory red-black tree), signed as
// docs/authenticode.md (row MSI) and docs/formats.md ("MSI") describe: the DER PKCS#7 is the
// root storage's stream "\x05DigitalSignature"; the digest covers every other stream's content in
// a fixed order, each storage's CLSID, and with "\x05MsiDigitalSignatureEx" a metadata pre-hash.
//
// The parser and digest work on a Source (a file or a memory buffer) so the unit tests and the
// fuzz target exercise exactly the code the signer runs. Memory: the allocation tables and the
// directory only, never a stream's content (the signature streams excepted).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "formats/format.hpp"
#include "formats/pe.hpp"

namespace tsign::platform {
class ReadFile;
}

namespace tsign::formats::msi {

using Source = pe::Source;
using MemorySource = pe::MemorySource;

inline constexpr std::size_t kEntrySize = 128;

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
  // For each storage (and the root) the ids of its children in digest order; empty otherwise.
  std::vector<std::vector<std::uint32_t>> children;
  std::optional<std::uint32_t> signature;     // entry id of root's \x05DigitalSignature
  std::optional<std::uint32_t> signature_ex;  // entry id of root's \x05MsiDigitalSignatureEx
};

// Content detection: the compound-file magic D0 CF 11 E0 A1 B1 1A E1. Never throws.
bool detect(Source& src);

// Full validation of the structure. Throws FileError "<name>: <reason>" for anything the signer
// must refuse: loops, sectors past the end of the file, directory cycles, streams larger than
// their chains, mini sectors beyond the mini stream.
Layout parse(Source& src, std::string_view name);

// The MsiDigitalSignatureEx pre-hash: the entries' metadata (names, sizes, state bits, times,
// CLSIDs) in digest order.
Bytes prehash(const Layout& layout, DigestAlg alg);

// The digest a signature of the file signs: [pre-hash when the file has MsiDigitalSignatureEx]
// then every stream's bytes and every storage's CLSID, in the order osslsigncode and Windows use.
Bytes digest(Source& src, const Layout& layout, DigestAlg alg, std::string_view name);

// The bytes of the \x05DigitalSignature stream, if the file has one.
std::optional<Bytes> signature(Source& src, const Layout& layout, std::string_view name);

// Streams the file with `pkcs7_der` as its \x05DigitalSignature (and, if the file has one, a
// fresh \x05MsiDigitalSignatureEx for `alg`) to `out`. Every other sector is copied as it
// stands; the old signature's sectors are marked free; the new streams, and any table that must
// grow, are appended. Returns the digest (`alg`) of the file as written. Throws FileError "changed
// while it was being signed" if the file no longer matches `layout`.
Bytes write_signed(Source& src, const Layout& layout, ByteView pkcs7_der, SignedOutput& out,
                   std::string_view name, DigestAlg alg = DigestAlg::sha256);

// The SpcSipInfo for MSI: version 1, GUID {000C10F1-0000-0000-C000-000000000046}.
SignedContent signed_content();

std::unique_ptr<SignableFile> open(const std::filesystem::path& path);
bool detect(platform::ReadFile& file);

}  // namespace tsign::formats::msi
