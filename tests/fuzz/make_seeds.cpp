// Writes the fuzz targets' starting seeds (tests/fuzz/seeds/<target>.hex, one input a line in hex)
// from the test fixtures, the emulator's PKI and time-stamp authority, and the answer shapes of
// docs/protocol.md. Run by hand when a target or an answer shape changes (docs/fuzzing.md):
//   cmake --build --preset dev --target fuzz_make_seeds && build/dev/tests/fuzz/fuzz_make_seeds DIR
// The committed files are these seeds minimized with libFuzzer's -merge=1 after a long run.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include <openssl/pkcs7.h>

#include "authenticode/authenticode.hpp"
#include "authenticode/timestamp.hpp"
#include "common/error.hpp"
#include "emulator/pki.hpp"
#include "emulator/tsa.hpp"
#include "formats/pe.hpp"
#include "formats/script.hpp"
#include "fuzz_timestamp.hpp"
#include "support/catalog.hpp"
#include "support/cfb.hpp"
#include "support/fixtures.hpp"

using namespace tsign;

namespace {

Bytes text(std::string_view s) {
  return Bytes(s.begin(), s.end());
}

Bytes pe_signature(const char* fixture) {
  Bytes file = test::read_all(test::fixture(fixture));
  formats::pe::MemorySource src(file, fixture);
  auto layout = formats::pe::parse(src, fixture);
  return layout.pkcs7_der;
}

// The fixed request of fuzz_timestamp: a real request whose random nonce is replaced by the
// fixed one (same length, high bit clear, so the DER keeps its shape).
Bytes fixed_timestamp_query() {
  const auto fixed = fuzz::timestamp_request();
  for (;;) {
    auto req =
        authenticode::make_timestamp_request(fuzz::timestamp_signature_value(), DigestAlg::sha256);
    if (req.nonce.size() != fixed.nonce.size() || req.nonce[0] >= 0x80) continue;
    auto it = std::search(req.der.begin(), req.der.end(), req.nonce.begin(), req.nonce.end());
    if (it == req.der.end()) continue;
    std::copy(fixed.nonce.begin(), fixed.nonce.end(), it);
    return req.der;
  }
}

Bytes certs_only_pkcs7(const std::vector<X509*>& certs) {
  PKCS7Ptr p7(PKCS7_new());
  if (!p7 || !PKCS7_set_type(p7.get(), NID_pkcs7_signed) ||
      !PKCS7_content_new(p7.get(), NID_pkcs7_data))
    throw std::runtime_error("PKCS7_new");
  for (X509* c : certs) PKCS7_add_certificate(p7.get(), c);
  int n = i2d_PKCS7(p7.get(), nullptr);
  Bytes der(static_cast<std::size_t>(n));
  unsigned char* p = der.data();
  i2d_PKCS7(p7.get(), &p);
  return der;
}

void write(const std::filesystem::path& dir, const std::string& target,
           const std::vector<Bytes>& seeds) {
  std::ofstream out(dir / (target + ".hex"), std::ios::trunc);
  for (const auto& s : seeds) out << to_hex(s) << "\n";
  if (!out) throw std::runtime_error("cannot write " + target + ".hex");
  std::cout << target << ": " << seeds.size() << " seeds\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_make_seeds DIR\n";
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  test::TempDir tmp("fuzz-seeds");
  auto pki = emulator::load_or_create_pki({tmp.path(), "fuzzaccount", "fuzzprofile"});

  write(dir, "pe",
        {test::read_all(test::fixture("pe64.dll")), test::read_all(test::fixture("pe32.dll")),
         test::read_all(test::fixture("pe64-signed.exe"))});

  // MSI: msitools' package signed with MsiDigitalSignatureEx (512-byte sectors), and a compound
  // file with 4096-byte sectors and streams on both sides of the mini-stream cutoff.
  write(dir, "msi",
        {test::read_all(test::fixture("msi-dse.msi")),
         test::make_cfb(4, {{"S", Bytes(70, 1)}, {"Big", Bytes(4100, 2)}, {"Z", {}}}).bytes});
  // Catalogs as MakeCat writes them: unsigned, with one SignerInfo, and with other members.
  test::CatalogOptions one;
  one.dummy_signers = 1;
  test::CatalogOptions three = one;
  three.members = {{"a.sys", {1, 2, 3}}, {"b.inf", {'[', ']'}}, {"c.dll", {'M', 'Z'}}};
  write(dir, "cat", {test::make_catalog(), test::make_catalog(one), test::make_catalog(three)});

  // Authenticode: a self-signed signature, one with a chain, that one time-stamped, and a
  // nested pair.
  Bytes self = pe_signature("pe64-signed.exe");
  Bytes chained = pe_signature("pe64-signed-leaf.exe");
  Bytes sigval = authenticode::signature_value(chained);
  auto req = authenticode::make_timestamp_request(sigval, DigestAlg::sha256);
  Bytes token = authenticode::check_timestamp_response(
      emulator::timestamp_reply(req.der, pki.tsa.get(), pki.tsa_key.get(), 1), req, sigval,
      DigestAlg::sha256);
  Bytes stamped = authenticode::add_timestamp(chained, token);
  write(dir, "authenticode", {self, chained, stamped, authenticode::nest(self, stamped)});

  // RFC 3161: a granted reply to fuzz_timestamp's request, and a rejection.
  write(dir, "timestamp",
        {emulator::timestamp_reply(fixed_timestamp_query(), pki.tsa.get(), pki.tsa_key.get(), 7),
         emulator::timestamp_reply(text("not a request"), pki.tsa.get(), pki.tsa_key.get(), 8)});

  write(dir, "entra",
        {text(R"({"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,)"
              R"("access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e30.c2ln"})"),
         text(R"({"access_token":"eyJ0eXAi.e30.c2ln","expires_in":"3599","token_type":"bearer"})"),
         text(R"({"access_token":"eyJ0eXAi.e30.c2ln","expires_on":"1767229200",)"
              R"("resource":"https://codesigning.azure.net","token_type":"Bearer"})"),
         text(R"({"access_token":"t","expires_in":3599.5,"token_type":"pop"})"),
         text(R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client )"
              R"(secret provided.","error_codes":[7000215],"timestamp":"2026-01-01 00:00:00Z"})"),
         text(R"({"error":"invalid_request","error_description":"Identity not found",)"
              R"("message":"No managed identity"})")});

  write(dir, "github_oidc",
        {text(R"({"count":1823,"value":"eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhcGk6Ly9BenVyZSJ9.c2ln"})"),
         text(R"({"value":""})"), text(R"({"message":"Not Found"})"),
         // A bare token, for the claims hint: iss, sub and aud in the payload.
         text("eyJhbGciOiJSUzI1NiJ9."
              "eyJpc3MiOiJodHRwczovL3Rva2VuLmFjdGlvbnMuZ2l0aHVidXNlcmNvbnRlbnQuY29tIiwic3ViIjoicmVw"
              "bzpvY3RvL2FwcDpyZWY6cmVmcy9oZWFkcy9tYWluIiwiYXVkIjoiYXBpOi8vQXp1cmVBRFRva2VuRXhjaGFu"
              "Z2UifQ.c2lnbmF0dXJlLW5ldmVyLXNob3du")});

  write(dir, "azure_cli",
        {text(R"({"accessToken":"eyJ0eXAi.e30.c2ln","expiresOn":"2026-01-01 01:00:00.000000",)"
              R"("expires_on":1767229200,"subscription":"0000","tenant":"1111",)"
              R"("tokenType":"Bearer"})"),
         text(R"({"accessToken":"eyJ0eXAi.e30.c2ln","expiresOn":"2026-01-01 01:00:00.000000"})"),
         text(R"({"accessToken":"eyJ0eXAi.e30.c2ln","expires_on":"1767229200"})")});

  write(dir, "sign_status",
        {text(R"({"operationId":"op-1","status":"Succeeded","signature":"c2ln",)"
              R"("signingCertificate":"Y2VydA=="})"),
         text(R"({"operationId":"op-1","status":"InProgress"})"),
         text(R"({"operationId":"op-1","status":"Failed","errorDetail":{"code":"BadRequest",)"
              R"("message":"digest length","target":"digest"}})"),
         text(R"({"id":"op-2","status":"Succeeded","result":{"signature":"c2ln",)"
              R"("signingCertificate":"Y2VydA=="}})"),
         text(R"({"id":"op-2","status":"Failed","error":{"code":"SigningFailed",)"
              R"("message":"the key is disabled"}})"),
         text(R"({"status":"Running","result":{"operationId":"op-3"},)"
              R"("errorResponse":{"errorDetail":{"code":"c","message":"m"}}})")});

  std::vector<X509*> chain = {pki.leaf.get(), pki.cs_ca.get(), pki.cs_root.get()};
  Bytes p7 = certs_only_pkcs7(chain);
  Bytes concatenated;
  for (X509* c : chain) {
    Bytes d = emulator::to_der(c);
    concatenated.insert(concatenated.end(), d.begin(), d.end());
  }
  // Scripts: the family's index in script::kStyles, then the script; each family unsigned, in
  // UTF-8, UTF-8 with BOM and UTF-16LE, and a few signed with an empty certs-only PKCS#7.
  {
    namespace script = formats::script;
    auto utf16 = [](const std::string& ascii) {
      Bytes b{0xFF, 0xFE};
      for (char c : ascii) b.insert(b.end(), {static_cast<std::uint8_t>(c), 0});
      return b;
    };
    const std::pair<script::Family, std::string> texts[] = {
        {script::Family::powershell, "Write-Host 1\r\n# a comment  \n"},
        {script::Family::powershell_xml, "<Types>\r\n</Types>"},
        {script::Family::mof, "class A {};\r\n"},
        {script::Family::js, "WScript.Echo(1);\n"},
        {script::Family::vbs, "WScript.Echo 1\r\n"},
        {script::Family::wsf, "<job>\r\n<script>x</script>\r\n</job>\r\n"}};
    std::vector<Bytes> seeds;
    for (const auto& [family, t] : texts) {
      const Bytes plain = text(t);
      Bytes bom{0xEF, 0xBB, 0xBF};
      bom.insert(bom.end(), plain.begin(), plain.end());
      const Bytes variants[] = {plain, bom, utf16(t)};
      for (std::size_t k = 0; k < 3; ++k) {
        const Bytes& b = variants[k];
        Bytes seed{static_cast<std::uint8_t>(family)};
        seed.insert(seed.end(), b.begin(), b.end());
        seeds.push_back(seed);
        if (k == 0 || family == script::Family::vbs) {
          const script::Layout l = script::parse(b, family, "seed");
          const Bytes signed_script = script::with_signature(b, l, certs_only_pkcs7({}));
          Bytes s2{static_cast<std::uint8_t>(family)};
          s2.insert(s2.end(), signed_script.begin(), signed_script.end());
          seeds.push_back(s2);
        }
      }
    }
    write(dir, "script", seeds);
  }

  write(dir, "cert_chain",
        {text(base64_encode(as_bytes(base64_encode(p7)))),
         text(emulator::to_pem(pki.leaf.get()) + emulator::to_pem(pki.cs_ca.get())),
         text(base64_encode(concatenated)), p7});
  return 0;
}
