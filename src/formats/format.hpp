// The file-format interface: everything the signing pipeline needs to know about one kind of
// signable file (docs/formats.md). Each format lives in its own file and names the
// specification it implements; the registry (registry.cpp) picks the format by content, and by
// file name only where content cannot decide. Adding a format is one src/formats/<name>.{hpp,cpp}
// and one registry row: the Authenticode assembly, the engine and the command line do not change.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "formats/source.hpp"

namespace tsign::formats {

// What a signature of a format signs (docs/authenticode.md, "Other formats"). Most formats are
// signed through an SpcIndirectDataContent { data = {spc_type, spc_value}, messageDigest =
// digest(alg) }: the format names its own data member (SpcPeImageData, SpcSipInfo with its SIP's
// GUID, …), built with formats/spc_data.hpp. A catalog instead signs its own content, a
// certificate trust list, unchanged: own_type and own_der are set, and digest(alg) is the hash
// of that content's octets (what the messageDigest attribute holds).
struct SignedContent {
  std::string spc_type;  // dotted OID of SpcAttributeTypeAndOptionalValue.type
  Bytes spc_value;       // DER of its value (empty: absent)
  std::string own_type;  // dotted OID of the file's own content type (catalogs only)
  Bytes own_der;         // DER of that content, [0] EXPLICIT's inner SEQUENCE
  // The messageDigest holds what digest(alg) returns even though it is not one hash of `alg`'s
  // size: an app package's tagged blob of hashes ("APPX" "AXPC" …, formats/appx.hpp).
  bool digest_is_blob = false;
  bool is_own() const { return !own_type.empty(); }
};

// Where write_signed puts the bytes (a ReplaceFile in production, memory in tests).
class SignedOutput {
 public:
  virtual ~SignedOutput() = default;
  virtual void write(ByteView data) = 0;
};

// The signed copy while a format writes it during its digest pass (SignableFile::digest_copying):
// appended in order, then fixed-size fields overwritten in place once the signature exists.
class PatchableOutput : public SignedOutput {
 public:
  virtual void patch(std::uint64_t offset, ByteView data) = 0;
  // write() without the copy, for the chunks of a large file (issue 13: it saves the digest
  // pass a copy of every chunk into the writer's hand-over buffer). The output may go on reading
  // `data` until kLendDepth more chunks have been handed to it (lent or written) or settle() has
  // returned: until then the caller leaves those bytes as they are, and alive (for_each_chunk
  // reads into kLendDepth + 1 buffers in turn). The default copies.
  virtual void lend(ByteView data) { write(data); }
  // Returns once the output reads no chunk lent to it any more. An error writing one is thrown
  // by the next call, or by this one.
  virtual void settle() {}
  // The format will not read the original before `offset` again (it reads in order): what the
  // system caches of that part may go (platform::PageCacheRelease). A hint; the default ignores it.
  virtual void read_past(std::uint64_t offset) { (void)offset; }
};

// How many chunks a PatchableOutput may still be reading when lend() returns: the writer of the
// copy may fall that far behind the reading before the reading waits for it. Writing a chunk
// sometimes takes several times as long as hashing it (the kernel finding new pages for the
// copy), so a writer one chunk behind would often hold the hashing up.
inline constexpr std::size_t kLendDepth = 4;

// Reads [from, to) of `src` in chunks of `chunk` bytes and calls fn(offset, chunk) for each, in
// order; nothing before a chunk is read again (PatchableOutput::read_past, for `lend_to`). With
// `lend_to`, each chunk is lent to it (PatchableOutput::lend) before fn sees it: the
// chunks take kLendDepth + 1 buffers in turn, so a chunk's bytes stay as they are while the
// next kLendDepth are lent, and every buffer lives until `lend_to` has settled, also when fn or
// a read throws. Memory: one buffer of at most `chunk` bytes, kLendDepth + 1 when lending.
template <class Fn>
void for_each_chunk(Source& src, std::uint64_t from, std::uint64_t to, std::size_t chunk,
                    PatchableOutput* lend_to, Fn&& fn) {
  if (from >= to) return;
  const auto cap = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, to - from));
  std::vector<Bytes> bufs(lend_to ? kLendDepth + 1 : 1);
  // Destroyed before the buffers: on a throw, nothing may still be reading them.
  struct Settle {
    PatchableOutput* out;
    ~Settle() {
      if (!out) return;
      try {
        out->settle();
      } catch (...) {  // already unwinding: the first error is the one to report
      }
    }
  } settle{lend_to};
  for (std::uint64_t off = from, i = 0; off < to; ++i) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(cap, to - off));
    Bytes& buf = bufs[i % bufs.size()];
    if (buf.empty()) buf.resize(cap);  // a small file needs no more buffers than chunks
    std::span<std::uint8_t> c(buf.data(), n);
    src.read_at(off, c);
    if (lend_to) lend_to->lend(c);
    fn(off, ByteView(c));
    off += n;
    if (lend_to) lend_to->read_past(off);
  }
  settle.out = nullptr;
  if (lend_to) lend_to->settle();
}

// One opened file. Not thread-safe; a format never starts a thread.
class SignableFile {
 public:
  virtual ~SignableFile() = default;

  virtual std::string_view format_name() const = 0;  // "pe" (as in the JSON report)
  virtual SignedContent signed_content() const = 0;
  const std::filesystem::path& path() const { return path_; }
  virtual std::uint64_t size() const = 0;

  // The format's Authenticode digest of the content, excluding the signature and the fields
  // that change when it is embedded. Streams the file: memory does not grow with its size.
  virtual Bytes digest(DigestAlg alg) = 0;

  // One read of the file for the whole signing (issue 13: a large file costs one pass, not
  // two). A format whose signed file is its content as it is, with fixed-size fields filled in
  // and the signature added at the end (PE), can write the content to `copy` while it digests
  // it (digest_copying), and once the signature exists turn that copy into the signed file
  // (finish_copy): the bytes signed are then the bytes copied, by construction. The caller makes
  // sure nobody wrote the original meanwhile (platform::file_stamp). A cabinet does the same
  // with its header rewritten first; a compound file (MSI) is copied whole, then its header and
  // tables patched and the new sectors appended. Formats that rebuild the file (app packages,
  // catalogs, scripts) say false and are signed with digest and write_signed.
  virtual bool copies_while_digesting() const { return false; }
  // Whether the bytes digest_copying writes are the original's, unchanged, up to where it stops
  // (a PE's: everything before its certificate table), so that the original's plain SHA-256 can
  // be taken from them; a cabinet's header is rewritten, so it says false.
  virtual bool copy_is_verbatim() const { return copies_while_digesting(); }
  virtual Bytes digest_copying(DigestAlg alg, PatchableOutput& copy) {
    (void)alg, (void)copy;
    throw std::logic_error("digest_copying: this format does not copy while digesting");
  }
  // Replaces any existing signature (append-signature uses write_signed_keeping_others).
  virtual void finish_copy(ByteView pkcs7_der, PatchableOutput& copy) {
    (void)pkcs7_der, (void)copy;
    throw std::logic_error("finish_copy: this format does not copy while digesting");
  }

  // The DER PKCS#7 ContentInfo of the existing primary signature, if the file has one.
  virtual std::optional<Bytes> existing_signature() = 0;

  // Throws FileError naming the file if a signature of up to `max_signature_bytes` (DER) could
  // not be embedded in it (a PE must stay under 4 GiB), so that such a file is refused before a
  // signature is requested for it.
  virtual void check_can_embed(std::uint64_t max_signature_bytes) const {
    (void)max_signature_bytes;
  }

  // append-signature: throws FileError naming the file if a signature made with `alg` could not
  // be nested into its existing primary one (an MSI with MsiDigitalSignatureEx holds the
  // pre-hash of one digest algorithm), so that it is refused before a signature is requested.
  virtual void check_can_nest(DigestAlg alg) { (void)alg; }

  // Whether check_signing_certificate has a rule to check: then the engine learns the signing
  // certificate (for free) and calls it before a signature is requested, and again with the
  // certificate that signed before the signed copy is written.
  virtual bool needs_signing_certificate() const { return false; }
  // Throws FileError naming the file if it must not be signed with this certificate (DER of the
  // leaf). An app package's Publisher must equal the certificate's subject. Most formats accept
  // any code-signing certificate.
  virtual void check_signing_certificate(ByteView leaf_der) const { (void)leaf_der; }

  // Writes the whole file with `pkcs7_der` (a DER ContentInfo) as its only signature, replacing
  // any existing one, to `out` (streamed). The caller makes `out` replace the file atomically.
  // The contract every format keeps:
  //  - everything the digest covers is copied byte for byte; only the signature's own place
  //    (and the fields that describe it: a PE's certificate-table entry and checksum, a
  //    compound file's directory and allocation tables, a cabinet's reserve) may differ, so the
  //    digest of the written file equals the digest of the original;
  //  - the file is re-read, not trusted from an earlier pass: the structure is checked again
  //    while copying, and a file that no longer has the layout it had when it was opened (it was
  //    edited or replaced) throws FileError "changed while it was being signed";
  //  - memory stays bounded (a buffer, a table), never the file's size;
  //  - nothing is written anywhere but `out`; on any throw the caller discards `out`, so the
  //    original stays as it was.
  // Returns the format's digest (`alg`) of the bytes exactly as they were written to `out`: the
  // caller compares it with the digest that was signed, so a file edited while it was being
  // signed is never embedded with a signature over other bytes.
  virtual Bytes write_signed(ByteView pkcs7_der, SignedOutput& out,
                             DigestAlg alg = DigestAlg::sha256) = 0;

  // The DER PKCS#7s of further signatures the file carries beside the primary one, in file order
  // (PE: the certificate table's later WIN_CERTIFICATE entries). Windows checks only the primary.
  virtual std::vector<Bytes> other_signatures() { return {}; }

  // append-signature: as write_signed, but the other signatures stay, unchanged, after the new
  // primary one (replacing drops them: the new signature is then the file's only one). Nesting
  // into the primary signature (1.3.6.1.4.1.311.2.4.1) works for every format and is done by the
  // caller; this is only for formats with a list of signatures.
  virtual Bytes write_signed_keeping_others(ByteView pkcs7_der, SignedOutput& out,
                                            DigestAlg alg = DigestAlg::sha256) {
    return write_signed(pkcs7_der, out, alg);
  }

 protected:
  explicit SignableFile(std::filesystem::path p) : path_(std::move(p)) {}

 private:
  std::filesystem::path path_;
};

// Opens `path` as the first format whose content matches (or, for formats content cannot tell
// apart, whose extensions include that of `name`: by default `path` itself; a signed copy being
// checked under a temporary name passes the name of the file it will replace). Throws FileError
// naming the file and why when no format applies or the file is malformed.
std::unique_ptr<SignableFile> open(const std::filesystem::path& path,
                                   const std::filesystem::path& name = {});

// True if some format recognises the content (for the file selection; never throws for I/O).
bool is_supported(const std::filesystem::path& path);

// The report name ("pe") of the format `open` would pick for `path`, or empty when none would (or
// the file cannot be read). Never throws: it names the format of a file `open` refused as
// malformed, so the summary counts it with its kind.
std::string_view recognised_format(const std::filesystem::path& path);

// For a file no format recognises: what signtool would sign it as, by its extension, when tsign
// does not sign that kind yet ("a PowerShell script"), so a folder scan can list it as skipped
// with a warning instead of leaving it unsigned without a word. Empty for every other file.
std::string_view unsupported_kind(const std::filesystem::path& path);

}  // namespace tsign::formats
