// Windows Installer signatures on compound files (cfb.hpp): the MSI signing rules of
// docs/authenticode.md (row MSI), checked against osslsigncode's msi.c, the judge of our output:
// the digest order (raw UTF-16LE names compared with memcmp over the shorter length, the longer
// first on a tie), the CLSID after each storage's children, the MsiDigitalSignatureEx pre-hash,
// and the SIP GUID's byte order.
#include "formats/msi.hpp"

#include <algorithm>
#include <string>

#include <openssl/objects.h>
#include <openssl/pkcs7.h>

#include "common/error.hpp"
#include "formats/spc_data.hpp"
#include "platform/platform.hpp"

namespace tsign::formats::msi {

namespace {

using cfb::kRoot;
using cfb::kStream;

// An Authenticode signature is kilobytes; a larger stream is not one we can hold and re-embed.
constexpr std::uint64_t kMaxSignature = 64u << 20;

// "\x05DigitalSignature" and "\x05MsiDigitalSignatureEx" as stored: UTF-16LE with the NUL.
Bytes utf16z(std::u16string_view s) {
  Bytes b;
  for (char16_t c : s) {
    b.push_back(static_cast<std::uint8_t>(c));
    b.push_back(static_cast<std::uint8_t>(c >> 8));
  }
  b.push_back(0);
  b.push_back(0);
  return b;
}
const Bytes& ds_name() {
  static const Bytes n = utf16z(
      u"\x05"
      u"DigitalSignature");
  return n;
}
const Bytes& dse_name() {
  static const Bytes n = utf16z(
      u"\x05"
      u"MsiDigitalSignatureEx");
  return n;
}

[[noreturn]] void fail(std::string_view name, const std::string& reason) {
  throw FileError(std::string(name) + ": " + reason);
}

}  // namespace

bool detect(Source& src) {
  return cfb::detect(src);
}

Layout parse(Source& src, std::string_view name) {
  Layout l;
  static_cast<cfb::Layout&>(l) = cfb::parse(src, name);
  for (std::uint32_t id : l.children[0]) {
    const Entry& e = l.entries[id];
    const bool is_ds =
        std::equal(e.name().begin(), e.name().end(), ds_name().begin(), ds_name().end());
    const bool is_dse =
        std::equal(e.name().begin(), e.name().end(), dse_name().begin(), dse_name().end());
    if ((is_ds || is_dse) && e.type != kStream)
      fail(name, cfb::entry_label(e, id) + " is a storage; a signature must be a stream");
    if (is_ds) l.signature = id;
    if (is_dse) l.signature_ex = id;
  }
  return l;
}

namespace {

bool is_signature_entry(const Layout& l, std::uint32_t id) {
  return id == l.signature || id == l.signature_ex;
}

// Visits the tree in digest order, which is the order cfb::parse sorts each storage's children in
// (osslsigncode's dirent_cmp_hash, cfb.hpp): on_stream(id) for each stream, on_storage_end(id)
// after a storage's (and finally the root's) children. The root's signature streams are left out.
template <typename OnStream, typename OnStart, typename OnEnd>
void walk(const Layout& l, OnStream&& on_stream, OnStart&& on_storage_start,
          OnEnd&& on_storage_end) {
  std::vector<std::pair<std::uint32_t, std::size_t>> stack{{0, 0}};
  on_storage_start(0);
  while (!stack.empty()) {
    auto& [id, at] = stack.back();
    const auto& c = l.children[id];
    if (at == c.size()) {
      on_storage_end(id);
      stack.pop_back();
      continue;
    }
    const std::uint32_t child = c[at++];
    if (id == 0 && is_signature_entry(l, child)) continue;
    if (l.entries[child].type == kStream) {
      on_stream(child);
    } else {
      on_storage_start(child);
      stack.emplace_back(child, 0);
    }
  }
}

Bytes prehash_of(const Layout& l, DigestAlg alg) {
  Hasher h(alg);
  auto meta = [&](std::uint32_t id) {
    const Entry& e = l.entries[id];
    const std::uint8_t* p = e.raw.data();
    if (e.type != kRoot) h.update(ByteView(p, e.name_len - 2u));
    if (e.type != kStream) {
      h.update(ByteView(p + 0x50, 16));  // CLSID
    } else {
      h.update(ByteView(p + 0x78, 4));  // size, low half
    }
    h.update(ByteView(p + 0x60, 4));                        // state bits
    if (e.type != kRoot) h.update(ByteView(p + 0x64, 16));  // creation and modification times
  };
  walk(l, meta, meta, [](std::uint32_t) {});
  return h.finish();
}

// The digest, reading the streams through `reader` (cfb::write's fingerprinting one when signing:
// the tables it changes, sizes and the tree, are not hashed, so the digest is the written file's).
Bytes digest_with(cfb::StreamReader& reader, const Layout& l, DigestAlg alg) {
  Hasher h(alg);
  if (l.signature_ex) h.update(prehash_of(l, alg));
  walk(
      l, [&](std::uint32_t id) { reader.read(l.entries[id], [&](ByteView b) { h.update(b); }); },
      [](std::uint32_t) {},
      [&](std::uint32_t id) { h.update(ByteView(l.entries[id].raw.data() + 0x50, 16)); });
  return h.finish();
}

Bytes read_stream(Source& src, const Layout& l, std::uint32_t id, std::string_view name) {
  const Entry& e = l.entries[id];
  if (e.size > kMaxSignature)
    fail(name, cfb::entry_label(e, id) + " is " + std::to_string(e.size) +
                   " bytes, too large to be a signature");
  Bytes out;
  cfb::StreamReader reader(src, l, name);
  reader.read(e, [&](ByteView b) { out.insert(out.end(), b.begin(), b.end()); });
  return out;
}

}  // namespace

Bytes prehash(const Layout& layout, DigestAlg alg) {
  return prehash_of(layout, alg);
}

Bytes digest(Source& src, const Layout& layout, DigestAlg alg, std::string_view name) {
  cfb::StreamReader reader(src, layout, name);
  return digest_with(reader, layout, alg);
}

std::optional<Bytes> signature(Source& src, const Layout& layout, std::string_view name) {
  if (!layout.signature) return std::nullopt;
  Bytes b = read_stream(src, layout, *layout.signature, name);
  if (b.empty()) return std::nullopt;
  return b;
}

namespace {

// The digest algorithm (NID) of the primary SignerInfo of a DER PKCS#7, or NID_undef.
int primary_digest_nid(ByteView der) {
  const unsigned char* p = der.data();
  std::unique_ptr<PKCS7, decltype(&PKCS7_free)> p7(
      d2i_PKCS7(nullptr, &p, static_cast<long>(der.size())), &PKCS7_free);
  if (!p7 || !PKCS7_type_is_signed(p7.get())) return NID_undef;
  STACK_OF(PKCS7_SIGNER_INFO)* infos = PKCS7_get_signer_info(p7.get());
  if (!infos || sk_PKCS7_SIGNER_INFO_num(infos) < 1) return NID_undef;
  const PKCS7_SIGNER_INFO* si = sk_PKCS7_SIGNER_INFO_value(infos, 0);
  return si->digest_alg ? OBJ_obj2nid(si->digest_alg->algorithm) : NID_undef;
}

}  // namespace

// MsiDigitalSignatureEx holds one pre-hash, of the primary signature's algorithm: a signature of
// another algorithm nested into `primary_der` could not verify beside it (osslsigncode refuses
// it too). Checked before a signature is requested (check_can_nest) and again when writing.
void check_nest_digest(ByteView primary_der, DigestAlg alg, std::string_view name) {
  const int nid = primary_digest_nid(primary_der);
  if (nid != NID_undef && nid != EVP_MD_type(evp_md(alg)))
    fail(name,
         "the file has an MsiDigitalSignatureEx stream, which fits one digest algorithm: "
         "a nested " +
             std::string(digest_name(alg)) + " signature would break the " + OBJ_nid2sn(nid) +
             " one; nest with the same file-digest or replace the signature");
}

namespace {

// MsiDigitalSignatureEx keeps its entry with the pre-hash for `alg` (the entries it covers do
// not change); the signature replaces the old one or becomes a new stream of the root.
std::vector<cfb::StreamUpdate> signature_streams(const Layout& layout, ByteView pkcs7_der,
                                                 DigestAlg alg) {
  std::vector<cfb::StreamUpdate> streams;
  if (layout.signature_ex) streams.push_back({layout.signature_ex, {}, prehash_of(layout, alg)});
  streams.push_back({layout.signature, layout.signature ? Bytes{} : ds_name(),
                     Bytes(pkcs7_der.begin(), pkcs7_der.end())});
  return streams;
}

}  // namespace

Bytes write_signed(Source& src, const Layout& layout, ByteView pkcs7_der, SignedOutput& out,
                   std::string_view name, DigestAlg alg) {
  if (pkcs7_der.empty()) fail(name, "cannot embed an empty signature");
  if (src.size() != layout.file_size) cfb::changed(name);
  // The structure is read again, not trusted from when the file was opened.
  if (!cfb::same_structure(msi::parse(src, name), layout)) cfb::changed(name);
  if (layout.signature_ex) check_nest_digest(pkcs7_der, alg, name);
  Bytes result;
  cfb::write(
      src, layout, signature_streams(layout, pkcs7_der, alg),
      [&](cfb::StreamReader& r) { result = digest_with(r, layout, alg); }, out, name);
  return result;
}

Bytes digest_copying(Source& src, const Layout& layout, DigestAlg alg, PatchableOutput& copy,
                     std::string_view name) {
  Bytes result;
  cfb::copy_while_reading(
      src, layout, [&](cfb::StreamReader& r) { result = digest_with(r, layout, alg); }, copy, name);
  return result;
}

void finish_copy(const Layout& layout, ByteView pkcs7_der, PatchableOutput& copy,
                 std::string_view name, DigestAlg alg) {
  if (pkcs7_der.empty()) fail(name, "cannot embed an empty signature");
  if (layout.signature_ex) check_nest_digest(pkcs7_der, alg, name);
  cfb::finish_copy(layout, signature_streams(layout, pkcs7_der, alg), copy, name);
}

SignedContent signed_content() {
  // osslsigncode writes the GUID {000C10F1-0000-0000-C000-000000000046} in Windows' memory
  // layout (the first three fields little-endian): F1 10 0C 00 00 00 00 00 C0 00 … 46.
  static constexpr SipGuid kMsiSip{0xF1, 0x10, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46};
  return {std::string(kSpcSipInfoOid), sip_info_der(1, kMsiSip), {}, {}};
}

namespace {

class FileSource final : public Source {
 public:
  explicit FileSource(platform::ReadFile& f) : f_(f) {}
  std::uint64_t size() const override { return f_.size(); }
  void read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    f_.read_at(offset, out);
  }

 private:
  platform::ReadFile& f_;
};

class MsiFile final : public SignableFile {
 public:
  MsiFile(const std::filesystem::path& p, Layout layout)
      : SignableFile(p), name_(platform::to_utf8(p)), layout_(std::move(layout)) {}

  std::string_view format_name() const override { return "msi"; }
  SignedContent signed_content() const override { return msi::signed_content(); }
  std::uint64_t size() const override { return layout_.file_size; }

  Bytes digest(DigestAlg alg) override {
    platform::ReadFile f(path());
    FileSource src(f);
    if (src.size() != layout_.file_size) fail(name_, "the file changed since it was opened");
    return msi::digest(src, layout_, alg, name_);
  }

  std::optional<Bytes> existing_signature() override {
    platform::ReadFile f(path());
    FileSource src(f);
    if (src.size() != layout_.file_size) fail(name_, "the file changed since it was opened");
    return msi::signature(src, layout_, name_);
  }

  void check_can_nest(DigestAlg alg) override {
    if (!layout_.signature_ex) return;
    if (auto primary = existing_signature()) check_nest_digest(*primary, alg, name_);
  }

  Bytes write_signed(ByteView pkcs7_der, SignedOutput& out, DigestAlg alg) override {
    platform::ReadFile f(path());
    FileSource src(f);
    return msi::write_signed(src, layout_, pkcs7_der, out, name_, alg);
  }

  // One read of the original (issue 13): the compound file is copied as it stands, its streams
  // digested from the same sectors; the signature and the tables are filled in afterwards.
  bool copies_while_digesting() const override { return true; }
  Bytes digest_copying(DigestAlg alg, PatchableOutput& copy) override {
    platform::ReadFile f(path());
    FileSource src(f);
    copy_alg_ = alg;
    return msi::digest_copying(src, layout_, alg, copy, name_);
  }
  void finish_copy(ByteView pkcs7_der, PatchableOutput& copy) override {
    msi::finish_copy(layout_, pkcs7_der, copy, name_, copy_alg_);
  }

 private:
  std::string name_;
  Layout layout_;
  DigestAlg copy_alg_ = DigestAlg::sha256;  // digest_copying's, for the pre-hash finish_copy writes
};

}  // namespace

bool detect(platform::ReadFile& file) {
  FileSource src(file);
  return msi::detect(static_cast<Source&>(src));
}

std::unique_ptr<SignableFile> open(const std::filesystem::path& path) {
  platform::ReadFile f(path);
  FileSource src(f);
  Layout layout = msi::parse(src, platform::to_utf8(path));
  return std::make_unique<MsiFile>(path, std::move(layout));
}

}  // namespace tsign::formats::msi
