// Windows Installer files (.msi .msp .msm): compound files (cfb.hpp, [MS-CFB]), signed as
// docs/authenticode.md (row MSI) and docs/formats.md ("MSI") describe: the DER PKCS#7 is the
// root storage's stream "\x05DigitalSignature"; the digest covers every other stream's content in
// a fixed order, each storage's CLSID, and with "\x05MsiDigitalSignatureEx" a metadata pre-hash.
//
// The digest works on a Source (a file or a memory buffer) so the unit tests and the fuzz target
// exercise exactly the code the signer runs. Memory: the allocation tables and the directory
// only, never a stream's content (the signature streams excepted).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "formats/cfb.hpp"
#include "formats/format.hpp"

namespace tsign::platform {
class ReadFile;
}

namespace tsign::formats::msi {

using Source = cfb::Source;
using MemorySource = cfb::MemorySource;
using cfb::kEntrySize;
using Entry = cfb::Entry;

// The compound file's structure (its children in digest order), and its signature streams.
struct Layout : cfb::Layout {
  std::optional<std::uint32_t> signature;     // entry id of root's \x05DigitalSignature
  std::optional<std::uint32_t> signature_ex;  // entry id of root's \x05MsiDigitalSignatureEx
};

// Content detection: the compound-file magic D0 CF 11 E0 A1 B1 1A E1. Never throws.
bool detect(Source& src);

// Full validation of the structure (cfb::parse), and a signature stream that is a storage.
// Throws FileError "<name>: <reason>" for anything the signer must refuse.
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

// The same file written in one read of the original (SignableFile::digest_copying): the file is
// copied to `copy` as it stands while its digest is computed from the same sectors (returned),
// and once the signature exists finish_copy makes of the copy, byte for byte, what write_signed
// writes.
Bytes digest_copying(Source& src, const Layout& layout, DigestAlg alg, PatchableOutput& copy,
                     std::string_view name);
void finish_copy(const Layout& layout, ByteView pkcs7_der, PatchableOutput& copy,
                 std::string_view name, DigestAlg alg = DigestAlg::sha256);

// The SpcSipInfo for MSI: version 1, GUID {000C10F1-0000-0000-C000-000000000046}.
SignedContent signed_content();

std::unique_ptr<SignableFile> open(const std::filesystem::path& path);
bool detect(platform::ReadFile& file);

}  // namespace tsign::formats::msi
