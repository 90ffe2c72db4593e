// Cabinet files: Microsoft "Cabinet File Format" (MS-CAB) for the structure; the Authenticode
// reserve, what the digest covers and how a reserve is inserted follow osslsigncode's cab.c (the
// judge of our output), as cab.hpp's header describes.
#include "formats/cab.hpp"

#include <algorithm>
#include <array>
#include <cstdio>

#include <openssl/err.h>
#include <openssl/pkcs7.h>

#include "common/error.hpp"
#include "common/ossl.hpp"
#include "formats/spc_data.hpp"
#include "platform/platform.hpp"

namespace tsign::formats::cab {

namespace {

constexpr std::uint64_t kFourGiB = std::uint64_t{1} << 32;
constexpr std::size_t kChunk = std::size_t{1} << 20;  // the streaming buffer: 1 MiB
constexpr std::uint64_t kHeader = 36;                 // CFHEADER without optional fields
constexpr std::uint64_t kReserveHeader = 60;          // with the 4 size bytes and 20 of reserve
constexpr std::uint32_t kShift = 24;                  // what inserting the reserve adds
constexpr std::uint16_t kAuthReserveSize = 20;
constexpr std::uint32_t kAuthReserveMagic = 0x00100000;
constexpr std::uint64_t kFolderSize = 8;
constexpr std::uint64_t kFileFixed = 16;  // CFFILE before szName
constexpr std::uint64_t kMaxName = 256;   // CB_MAX_FILENAME, with its NUL
constexpr std::uint64_t kDataFixed = 8;   // CFDATA before its data
constexpr std::uint32_t kMaxSignature = 64u << 20;
constexpr std::uint16_t kPrevCabinet = 1;
constexpr std::uint16_t kNextCabinet = 2;
constexpr std::uint16_t kReservePresent = 4;
// Header fields.
constexpr std::size_t kOffReserved1 = 4;
constexpr std::size_t kOffCbCabinet = 8;
constexpr std::size_t kOffCoffFiles = 16;
constexpr std::size_t kOffVersionMinor = 24;
constexpr std::size_t kOffVersionMajor = 25;
constexpr std::size_t kOffFolders = 26;
constexpr std::size_t kOffFiles = 28;
constexpr std::size_t kOffFlags = 30;
constexpr std::size_t kOffCbCFHeader = 36;
constexpr std::size_t kOffCbCFFolder = 38;
constexpr std::size_t kOffCbCFData = 39;
constexpr std::size_t kOffMagic = 40;
constexpr std::size_t kOffSigOffset = 44;
constexpr std::size_t kOffSigSize = 48;
// Outside the digest: reserved1, and iCabinet through the reserve's offset and size.
constexpr std::size_t kSkip1Begin = 4, kSkip1End = 8, kSkip2Begin = 34, kSkip2End = 56;

std::uint64_t header_end(const Layout& l) {
  return l.has_reserve ? kReserveHeader : kHeader;
}

// Checks the CFFILE entries: each inside the content, its name terminated within
// CB_MAX_FILENAME, its folder one of the cabinet's. Returns where the table ends.
std::uint64_t check_files(Source& src, const Layout& l, std::string_view name) {
  const std::uint64_t end = l.content_end();
  std::uint64_t at = l.coff_files;
  std::array<std::uint8_t, kFileFixed + kMaxName> entry{};
  for (std::uint32_t i = 0; i < l.files; ++i) {
    const std::uint64_t n = std::min<std::uint64_t>(entry.size(), end - std::min(at, end));
    if (n < kFileFixed + 1)
      fail(name, "CFFILE entry " + std::to_string(i + 1) + " of " + std::to_string(l.files) +
                     " (at " + hex(at) + ") lies outside the cabinet (cFiles too large?)");
    src.read_at(at, std::span<std::uint8_t>(entry.data(), static_cast<std::size_t>(n)));
    const std::uint16_t folder = le16(entry.data() + 8);
    if (folder >= l.folders)
      fail(name, "CFFILE entry " + std::to_string(i + 1) + " names folder " + hex(folder) +
                     ", but the cabinet has " + std::to_string(l.folders) + " folders");
    const auto* b = entry.data() + kFileFixed;
    const auto* e = entry.data() + n;
    const auto* nul = std::find(b, e, std::uint8_t{0});
    if (nul == e)
      fail(name, "the name of CFFILE entry " + std::to_string(i + 1) + " (at " + hex(at) +
                     ") is not terminated within the cabinet or 256 bytes");
    at += kFileFixed + static_cast<std::uint64_t>(nul - b) + 1;
  }
  return at;
}

// The CFHEADER and CFFOLDER table as they are in the signed cabinet: bytes [0, coffFiles) of it,
// with the reserve's offset and size set for a signature of `sig_size` bytes.
Bytes signed_header(Source& src, const Layout& l, std::uint32_t sig_size) {
  Bytes in(l.coff_files);
  src.read_at(0, in);
  Bytes out;
  if (l.has_reserve) {
    out = std::move(in);
  } else {
    out.reserve(in.size() + kShift);
    out.assign(in.begin(), in.begin() + kHeader);
    put_le32(out.data() + kOffCbCabinet, l.cb_cabinet + kShift);
    put_le32(out.data() + kOffCoffFiles, l.coff_files + kShift);
    put_le16(out.data() + kOffFlags, static_cast<std::uint16_t>(l.flags | kReservePresent));
    std::array<std::uint8_t, kShift> reserve{};
    put_le16(reserve.data(), kAuthReserveSize);  // cbCFHeader; cbCFFolder and cbCFData stay 0
    put_le32(reserve.data() + 4, kAuthReserveMagic);
    out.insert(out.end(), reserve.begin(), reserve.end());
    for (std::uint64_t f = 0; f < l.folders; ++f) {
      const std::uint8_t* entry = in.data() + kHeader + f * kFolderSize;
      std::array<std::uint8_t, kFolderSize> moved{};
      std::copy_n(entry, kFolderSize, moved.begin());
      put_le32(moved.data(), le32(entry) + kShift);
      out.insert(out.end(), moved.begin(), moved.end());
    }
  }
  put_le32(out.data() + kOffSigOffset, static_cast<std::uint32_t>(l.signed_content_end()));
  put_le32(out.data() + kOffSigSize, sig_size);
  return out;
}

void hash_header(Hasher& h, ByteView header) {
  h.update(header.subspan(0, kSkip1Begin));
  h.update(header.subspan(kSkip1End, kSkip2Begin - kSkip1End));
  h.update(header.subspan(kSkip2End));
}

}  // namespace

bool detect(Source& src) {
  try {
    if (src.size() < kHeader) return false;
    std::array<std::uint8_t, kHeader> h{};
    src.read_at(0, h);
    return h[0] == 'M' && h[1] == 'S' && h[2] == 'C' && h[3] == 'F' &&
           le32(h.data() + kOffReserved1) == 0 && h[kOffVersionMajor] == 1 &&
           h[kOffVersionMinor] == 3;
  } catch (const Error&) {
    return false;
  }
}

Layout parse(Source& src, std::string_view name) {
  Layout l;
  l.file_size = src.size();
  if (l.file_size < kHeader)
    fail(name,
         "too short to be a cabinet (" + std::to_string(l.file_size) + " bytes; a CFHEADER is 36)");
  if (l.file_size >= kFourGiB)
    fail(name, "the file is 4 GiB or larger; a cabinet cannot be larger than 4 GiB");
  std::array<std::uint8_t, kReserveHeader> h{};
  src.read_at(0, std::span<std::uint8_t>(h.data(), kHeader));
  if (!(h[0] == 'M' && h[1] == 'S' && h[2] == 'C' && h[3] == 'F'))
    fail(name, "not a cabinet (no MSCF signature)");
  if (le32(h.data() + kOffReserved1) != 0)
    fail(name, "the CFHEADER's reserved1 field is not zero: not a valid cabinet");
  if (h[kOffVersionMajor] != 1 || h[kOffVersionMinor] != 3)
    fail(name, "cabinet format version " + std::to_string(h[kOffVersionMajor]) + "." +
                   std::to_string(h[kOffVersionMinor]) + "; tsign signs version 1.3");
  l.cb_cabinet = le32(h.data() + kOffCbCabinet);
  l.coff_files = le32(h.data() + kOffCoffFiles);
  l.folders = le16(h.data() + kOffFolders);
  l.files = le16(h.data() + kOffFiles);
  l.flags = le16(h.data() + kOffFlags);
  if (l.flags & ~(kPrevCabinet | kNextCabinet | kReservePresent))
    fail(name, "the CFHEADER has unknown flags (" + hex(l.flags) +
                   "): not a cabinet tsign can "
                   "sign");
  if (l.flags & (kPrevCabinet | kNextCabinet))
    fail(name, "the cabinet is part of a multi-cabinet set (flags " + hex(l.flags) +
                   "); tsign does not sign those, as how Windows hashes the set's names is not "
                   "documented. Build a single cabinet (e.g. makecab with MaxDiskSize=0)");

  if (l.flags & kReservePresent) {
    if (l.file_size < kReserveHeader) fail(name, "the cabinet ends inside its CFHEADER reserve");
    src.read_at(kHeader, std::span<std::uint8_t>(h.data() + kHeader, kReserveHeader - kHeader));
    const std::uint16_t cb_header = le16(h.data() + kOffCbCFHeader);
    const std::uint8_t cb_folder = h[kOffCbCFFolder];
    const std::uint8_t cb_data = h[kOffCbCFData];
    if (cb_header != kAuthReserveSize || cb_folder != 0 || cb_data != 0 ||
        le32(h.data() + kOffMagic) != kAuthReserveMagic)
      fail(name, "the cabinet's reserve areas hold other data (cbCFHeader " +
                     std::to_string(cb_header) + ", cbCFFolder " + std::to_string(cb_folder) +
                     ", cbCFData " + std::to_string(cb_data) +
                     "), not the 20-byte Authenticode reserve; tsign signs cabinets without "
                     "reserves or with that one (build it without RESERVE options)");
    l.has_reserve = true;
    l.sig_offset = le32(h.data() + kOffSigOffset);
    l.sig_size = le32(h.data() + kOffSigSize);
    if ((l.sig_offset == 0) != (l.sig_size == 0))
      fail(name, "the signature's offset (" + hex(l.sig_offset) + ") and size (" +
                     std::to_string(l.sig_size) + ") in the CFHEADER reserve are inconsistent");
    if (l.sig_size != 0) {
      if (std::uint64_t{l.sig_offset} + l.sig_size != l.file_size)
        fail(name, "the signature (offset " + hex(l.sig_offset) + ", size " +
                       std::to_string(l.sig_size) + ") does not end where the file ends (" +
                       std::to_string(l.file_size) + " bytes)");
      if (l.sig_size > kMaxSignature)
        fail(name, "the signature is " + std::to_string(l.sig_size) +
                       " bytes, too large to be an Authenticode signature");
    }
  }

  const std::uint64_t end = l.content_end();
  const std::uint64_t hdr = header_end(l);
  if (end < hdr) fail(name, "the signature overlaps the CFHEADER");
  if (l.cb_cabinet != end)
    fail(name, "cbCabinet says " + std::to_string(l.cb_cabinet) +
                   " bytes, but the cabinet's "
                   "content is " +
                   std::to_string(end) + " bytes (truncated, or data appended?)");
  const std::uint64_t folders_end = hdr + std::uint64_t{l.folders} * kFolderSize;
  if (folders_end > end)
    fail(name, "the " + std::to_string(l.folders) +
                   " CFFOLDER entries (cFolders) end outside "
                   "the cabinet");
  if (l.coff_files != folders_end)
    fail(name, "coffFiles (" + hex(l.coff_files) + ") does not follow the CFFOLDER entries (" +
                   hex(folders_end) + ")");
  const std::uint64_t files_end = check_files(src, l, name);

  Bytes folders(folders_end - hdr);
  src.read_at(hdr, folders);
  for (std::uint32_t f = 0; f < l.folders; ++f) {
    const std::uint8_t* e = folders.data() + f * kFolderSize;
    const std::uint32_t start = le32(e);
    const std::uint16_t blocks = le16(e + 4);
    if (start < files_end || start > end || std::uint64_t{blocks} * kDataFixed > end - start)
      fail(name, "CFFOLDER " + std::to_string(f + 1) + "'s data (coffCabStart " + hex(start) +
                     ", " + std::to_string(blocks) +
                     " CFDATA blocks) lies outside the cabinet's "
                     "data (" +
                     hex(files_end) + " to " + hex(end) + ")");
  }

  if (l.has_signature()) {
    Bytes sig(l.sig_size);
    src.read_at(l.sig_offset, sig);
    const unsigned char* p = sig.data();
    PKCS7Ptr p7(d2i_PKCS7(nullptr, &p, static_cast<long>(sig.size())));
    if (!p7) {
      ERR_clear_error();
      fail(name, "the existing signature is not a valid PKCS#7 structure");
    }
    const auto der_end = static_cast<std::size_t>(p - sig.data());
    // Only zero padding to 8 bytes may follow the DER: anything else would be data outside the
    // digest riding along with a valid signature.
    if (sig.size() - der_end >= 8 ||
        !std::all_of(sig.begin() + static_cast<std::ptrdiff_t>(der_end), sig.end(),
                     [](std::uint8_t b) { return b == 0; }))
      fail(name, "the signature area holds " + std::to_string(sig.size() - der_end) +
                     " bytes after the PKCS#7 signature beyond its zero padding; remove the "
                     "signature with a trusted tool and sign again");
    sig.resize(der_end);
    l.pkcs7_der = std::move(sig);
  }
  return l;
}

Bytes authenticode_digest(Source& src, const Layout& layout, DigestAlg alg, std::string_view name) {
  if (src.size() != layout.file_size) fail(name, "the file changed since it was opened");
  Hasher h(alg);
  hash_header(h, signed_header(src, layout, 0));
  for_each_chunk(src, layout.coff_files, layout.content_end(), kChunk, nullptr,
                 [&](std::uint64_t, ByteView c) { h.update(c); });
  return h.finish();
}

void check_can_embed(const Layout& layout, std::uint64_t max_signature_bytes,
                     std::string_view name) {
  if (layout.signed_content_end() + round8(max_signature_bytes) >= kFourGiB)
    fail(name, "the cabinet is " + std::to_string(layout.file_size) +
                   " bytes: with a signature (up to " + std::to_string(max_signature_bytes) +
                   " bytes) it would be 4 GiB or larger, beyond what a cabinet's 32-bit fields "
                   "allow; nothing was requested for it");
}

Bytes write_signed(Source& src, const Layout& layout, ByteView pkcs7_der, SignedOutput& out,
                   std::string_view name, DigestAlg alg) {
  if (pkcs7_der.empty()) fail(name, "cannot embed an empty signature");
  if (src.size() != layout.file_size) fail(name, "the file changed while it was being signed");
  // The structure is read again: a cabinet edited since it was opened is not signed.
  if (!(cab::parse(src, name) == layout)) fail(name, "the file changed while it was being signed");
  const std::uint64_t padded = round8(pkcs7_der.size());
  if (layout.signed_content_end() + padded >= kFourGiB)
    fail(name, "the signed cabinet would be 4 GiB or larger, beyond what its fields allow");

  Hasher h(alg);
  const Bytes header = signed_header(src, layout, static_cast<std::uint32_t>(padded));
  out.write(header);
  hash_header(h, header);
  for_each_chunk(src, layout.coff_files, layout.content_end(), kChunk, nullptr,
                 [&](std::uint64_t, ByteView c) {
                   out.write(c);
                   h.update(c);
                 });
  Bytes sig(padded, 0);
  std::copy(pkcs7_der.begin(), pkcs7_der.end(), sig.begin());
  out.write(sig);
  return h.finish();
}

Bytes digest_copying(Source& src, const Layout& layout, DigestAlg alg, PatchableOutput& copy,
                     std::string_view name) {
  if (src.size() != layout.file_size || !(cab::parse(src, name) == layout))
    fail(name, "the file changed while it was being signed");
  Hasher h(alg);
  // The signature's size is not known yet (it is outside the digest): finish_copy fills it in.
  const Bytes header = signed_header(src, layout, 0);
  copy.write(header);
  hash_header(h, header);
  for_each_chunk(src, layout.coff_files, layout.content_end(), kChunk, &copy,
                 [&](std::uint64_t, ByteView c) { h.update(c); });
  return h.finish();
}

void finish_copy(const Layout& layout, ByteView pkcs7_der, PatchableOutput& copy,
                 std::string_view name) {
  if (pkcs7_der.empty()) fail(name, "cannot embed an empty signature");
  const std::uint64_t padded = round8(pkcs7_der.size());
  if (layout.signed_content_end() + padded >= kFourGiB)
    fail(name, "the signed cabinet would be 4 GiB or larger, beyond what its fields allow");
  Bytes sig(padded, 0);
  std::copy(pkcs7_der.begin(), pkcs7_der.end(), sig.begin());
  copy.write(sig);
  std::array<std::uint8_t, 4> size{};
  put_le32(size.data(), static_cast<std::uint32_t>(padded));
  copy.patch(kOffSigSize, size);
}

namespace {

class CabFile final : public SignableFile {
 public:
  CabFile(const std::filesystem::path& p, Layout layout)
      : SignableFile(p), name_(platform::to_utf8(p)), layout_(std::move(layout)) {}

  std::string_view format_name() const override { return "cab"; }
  SignedContent signed_content() const override {
    return {std::string(kSpcCabDataOid), cab_data_der(), {}, {}};
  }
  std::uint64_t size() const override { return layout_.file_size; }

  Bytes digest(DigestAlg alg) override {
    platform::ReadFile f(path());
    FileSource src(f);
    return authenticode_digest(src, layout_, alg, name_);
  }

  std::optional<Bytes> existing_signature() override {
    if (!layout_.has_signature()) return std::nullopt;
    return layout_.pkcs7_der;
  }

  void check_can_embed(std::uint64_t max_signature_bytes) const override {
    cab::check_can_embed(layout_, max_signature_bytes, name_);
  }

  Bytes write_signed(ByteView pkcs7_der, SignedOutput& out, DigestAlg alg) override {
    platform::ReadFile f(path());
    FileSource src(f);
    return cab::write_signed(src, layout_, pkcs7_der, out, name_, alg);
  }

  // One read: the signed header (with the Authenticode reserve, inserted if missing) and the
  // content are written to the copy as they are hashed; the signature's size, outside the
  // digest, is filled in and the signature appended once it exists.
  bool copies_while_digesting() const override { return true; }
  bool copy_is_verbatim() const override { return false; }

  Bytes digest_copying(DigestAlg alg, PatchableOutput& copy) override {
    platform::ReadFile f(path());
    FileSource src(f);
    Bytes d = cab::digest_copying(src, layout_, alg, copy, name_);
    digested_ = true;
    return d;
  }

  void finish_copy(ByteView pkcs7_der, PatchableOutput& copy) override {
    if (!digested_) throw std::logic_error("finish_copy before digest_copying");
    cab::finish_copy(layout_, pkcs7_der, copy, name_);
  }

 private:
  std::string name_;
  Layout layout_;
  bool digested_ = false;  // digest_copying wrote the content to the copy
};

}  // namespace

bool detect(platform::ReadFile& file) {
  FileSource src(file);
  return cab::detect(static_cast<Source&>(src));
}

std::unique_ptr<SignableFile> open(const std::filesystem::path& path) {
  platform::ReadFile f(path);
  FileSource src(f);
  Layout layout = cab::parse(src, platform::to_utf8(path));
  return std::make_unique<CabFile>(path, std::move(layout));
}

}  // namespace tsign::formats::cab
