// PreparedSignature / assemble / add_timestamp / nest / verify on an in-memory "file", with the
// fixtures' test PKI. The PE end-to-end tests (judged by osslsigncode) are in pe_sign_test.cpp.
#include <catch2/catch.hpp>

#include <openssl/objects.h>
#include <openssl/pkcs7.h>

#include "common/error.hpp"
#include "helpers.hpp"

using namespace tsign;
using namespace tsign::test;
using authenticode::PreparedSignature;
using authenticode::SignOptions;

namespace {

Bytes content_bytes(std::size_t n) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 7 + 3);
  return b;
}

std::unique_ptr<signer::Signer> leaf_signer() {
  return signer::make_local_key_signer(fixture("leaf.key"), fixture("chain.pem"));
}

PKCS7Ptr parse(const Bytes& der) {
  const unsigned char* p = der.data();
  PKCS7Ptr p7(d2i_PKCS7(nullptr, &p, static_cast<long>(der.size())));
  REQUIRE(p7);
  REQUIRE(p == der.data() + der.size());
  return p7;
}

std::string oid_text(const ASN1_OBJECT* o) {
  char buf[128];
  OBJ_obj2txt(buf, sizeof buf, o, 1);
  return buf;
}

}  // namespace

TEST_CASE("assemble builds the SignedData Authenticode expects", "[authenticode]") {
  auto s = leaf_signer();
  for (auto alg : {DigestAlg::sha256, DigestAlg::sha384, DigestAlg::sha512}) {
    CAPTURE(digest_name(alg));
    SignOptions opts;
    opts.alg = alg;
    opts.description = "tsign tëst program";
    opts.description_url = "https://example.com/tsign";
    Bytes file_digest = hash(alg, content_bytes(1000));
    auto prepared = PreparedSignature::prepare(pe_content(), file_digest, opts);
    REQUIRE(prepared.digest_to_sign().size() == digest_size(alg));
    auto result = run_coro(s->sign(prepared.digest_to_sign(), alg));
    // The chain given twice: the SignedData must still carry each certificate once.
    result.chain.push_back(clone(result.chain.front()));
    Bytes der = prepared.assemble(result);

    auto p7 = parse(der);
    REQUIRE(PKCS7_type_is_signed(p7.get()));
    PKCS7* contents = p7->d.sign->contents;
    CHECK(oid_text(contents->type) == "1.3.6.1.4.1.311.2.1.4");
    // [0] EXPLICIT the SEQUENCE itself, not an OCTET STRING.
    REQUIRE(contents->d.other->type == V_ASN1_SEQUENCE);
    CHECK(sk_X509_num(p7->d.sign->cert) == 2);

    auto* si = sk_PKCS7_SIGNER_INFO_value(PKCS7_get_signer_info(p7.get()), 0);
    CHECK(OBJ_obj2nid(si->digest_alg->algorithm) == EVP_MD_get_type(evp_md(alg)));
    CHECK(OBJ_obj2nid(si->digest_enc_alg->algorithm) == NID_rsaEncryption);
    CHECK(PKCS7_get_signed_attribute(si, NID_pkcs9_signingTime) == nullptr);
    CHECK(X509at_get_attr_count(si->auth_attr) == 4);
    CHECK(authenticode::signature_value(der) == result.signature);

    // The SpcIndirectDataContent carries the file digest (SHA-512's content exceeds 127 bytes,
    // so its header is longer than two bytes).
    ASN1_STRING* seq = contents->d.other->value.sequence;
    std::string hay(reinterpret_cast<const char*>(seq->data),
                    static_cast<std::size_t>(seq->length));
    CHECK(contains(hay, to_string(file_digest)));

    MemoryFile f(content_bytes(1000));
    f.signature = der;
    auto roots = store_of({fixture("root.pem")});
    authenticode::VerifyOptions vo;
    vo.roots = roots.get();
    auto v = authenticode::verify(f, vo);
    INFO(v.first_problem());
    REQUIRE(v.ok());
    REQUIRE(v.signatures.size() == 1);
    CHECK(v.signatures[0].alg == alg);
    CHECK(contains(v.signatures[0].subject, "CN=tsign test leaf"));
    CHECK_FALSE(v.signatures[0].timestamped);
  }
}

TEST_CASE("ECDSA leaf: ecdsa-with-SHAxxx and a verifying signature", "[authenticode]") {
  auto s = signer::make_local_key_signer(fixture("leaf-ec.key"), fixture("chain-ec.pem"));
  MemoryFile f(content_bytes(333));
  SignOptions opts;
  opts.alg = DigestAlg::sha384;
  Bytes der = sign_digest(*s, f.digest(opts.alg), opts);
  auto p7 = parse(der);
  auto* si = sk_PKCS7_SIGNER_INFO_value(PKCS7_get_signer_info(p7.get()), 0);
  CHECK(OBJ_obj2nid(si->digest_enc_alg->algorithm) == NID_ecdsa_with_SHA384);
  f.signature = der;
  auto roots = store_of({fixture("root.pem")});
  authenticode::VerifyOptions vo;
  vo.roots = roots.get();
  auto v = authenticode::verify(f, vo);
  INFO(v.first_problem());
  CHECK(v.ok());
}

TEST_CASE("assemble refuses a signature that does not verify", "[authenticode]") {
  auto s = leaf_signer();
  SignOptions opts;
  auto prepared = PreparedSignature::prepare(pe_content(), hash(opts.alg, content_bytes(10)), opts);
  auto result = run_coro(s->sign(prepared.digest_to_sign(), opts.alg));
  REQUIRE_NOTHROW(prepared.assemble(result));
  result.signature[result.signature.size() / 2] ^= 0x01;
  REQUIRE(contains(thrown_message<FileError>([&] { prepared.assemble(result); }),
                   "does not verify with its certificate"));

  // The right signature with someone else's certificate is refused too.
  auto good = run_coro(s->sign(prepared.digest_to_sign(), opts.alg));
  good.chain.front() = load_cert(fixture("leaf-ec.pem"));
  REQUIRE_THROWS_AS(prepared.assemble(good), FileError);

  signer::SignResult empty;
  empty.signature = good.signature;
  REQUIRE_THROWS_AS(prepared.assemble(empty), FileError);
}

TEST_CASE("assemble refuses a leaf without the codeSigning EKU", "[authenticode]") {
  auto s = signer::make_local_key_signer(fixture("leaf-noeku.key"), fixture("leaf-noeku.pem"));
  SignOptions opts;
  auto prepared = PreparedSignature::prepare(pe_content(), hash(opts.alg, content_bytes(10)), opts);
  auto result = run_coro(s->sign(prepared.digest_to_sign(), opts.alg));
  REQUIRE(contains(thrown_message<FileError>([&] { prepared.assemble(result); }), "codeSigning"));
}

TEST_CASE("prepare rejects a digest of the wrong size", "[authenticode]") {
  SignOptions opts;
  opts.alg = DigestAlg::sha384;
  Bytes d = hash(DigestAlg::sha256, content_bytes(10));
  REQUIRE_THROWS_AS(PreparedSignature::prepare(pe_content(), d, opts), FileError);
}

TEST_CASE("verify reports each problem", "[authenticode]") {
  auto s = leaf_signer();
  auto roots = store_of({fixture("root.pem")});
  authenticode::VerifyOptions vo;
  vo.roots = roots.get();

  SECTION("no signature") {
    MemoryFile f(content_bytes(64));
    auto v = authenticode::verify(f, vo);
    REQUIRE(v.signatures.size() == 1);
    CHECK_FALSE(v.ok());
    CHECK(v.first_problem() == "no signature");
  }
  SECTION("content changed after signing") {
    MemoryFile f(content_bytes(64));
    f.signature = sign_digest(*s, f.digest(DigestAlg::sha256), {});
    REQUIRE(authenticode::verify(f, vo).ok());
    f.content()[5] ^= 0x40;
    auto v = authenticode::verify(f, vo);
    CHECK_FALSE(v.ok());
    CHECK(contains(v.first_problem(), "digest does not match"));
  }
  SECTION("signature bytes changed") {
    MemoryFile f(content_bytes(64));
    Bytes der = sign_digest(*s, f.digest(DigestAlg::sha256), {});
    Bytes sig = authenticode::signature_value(der);
    auto pos = std::search(der.begin(), der.end(), sig.begin(), sig.end());
    REQUIRE(pos != der.end());
    pos[10] ^= 0x01;
    f.signature = der;
    auto v = authenticode::verify(f, vo);
    CHECK_FALSE(v.ok());
    CHECK(contains(v.first_problem(), "does not verify"));
  }
  SECTION("untrusted root, unless trust is not checked") {
    MemoryFile f(content_bytes(64));
    f.signature = sign_digest(*s, f.digest(DigestAlg::sha256), {});
    auto other = store_of({fixture("selfsigned.pem")});
    authenticode::VerifyOptions untrusted;
    untrusted.roots = other.get();
    auto v = authenticode::verify(f, untrusted);
    CHECK_FALSE(v.ok());
    CHECK(contains(v.first_problem(), "chain is not trusted"));
    untrusted.check_trust = false;
    CHECK(authenticode::verify(f, untrusted).ok());
  }
  SECTION("garbage instead of a PKCS#7") {
    MemoryFile f(content_bytes(64));
    f.signature = Bytes{0x30, 0x03, 0x02, 0x01, 0x01};
    auto v = authenticode::verify(f, vo);
    CHECK_FALSE(v.ok());
    CHECK(contains(v.first_problem(), "PKCS#7"));
  }
}

TEST_CASE("an RFC 3161 time-stamp is stored and checked", "[authenticode][timestamp]") {
  TempDir dir("ac-tsa");
  LocalTsa tsa(dir.path());
  auto s = leaf_signer();
  MemoryFile f(content_bytes(500));
  Bytes der = sign_digest(*s, f.digest(DigestAlg::sha256), {});
  Bytes imprint = hash(DigestAlg::sha256, authenticode::signature_value(der));
  Bytes stamped = authenticode::add_timestamp(der, tsa.token_for(imprint));
  // The signature itself is untouched by the unsigned attribute.
  CHECK(authenticode::signature_value(stamped) == authenticode::signature_value(der));

  auto roots = store_of({fixture("root.pem")});
  authenticode::VerifyOptions vo;
  vo.roots = roots.get();
  f.signature = stamped;
  auto v = authenticode::verify(f, vo);
  INFO(v.first_problem());
  REQUIRE(v.ok());
  CHECK(v.signatures[0].timestamped);
  CHECK(v.signatures[0].timestamp_time.size() == 20);  // YYYY-MM-DDTHH:MM:SSZ

  SECTION("a token for another signature is refused") {
    Bytes wrong = hash(DigestAlg::sha256, content_bytes(3));
    f.signature = authenticode::add_timestamp(der, tsa.token_for(wrong));
    auto w = authenticode::verify(f, vo);
    CHECK_FALSE(w.ok());
    CHECK(contains(w.first_problem(), "imprint"));
  }
  SECTION("the TSA must chain to the time-stamp roots") {
    auto other = store_of({fixture("selfsigned.pem")});
    vo.tsa_roots = other.get();
    auto w = authenticode::verify(f, vo);
    CHECK_FALSE(w.ok());
    CHECK(contains(w.first_problem(), "time-stamp"));
  }
  SECTION("a second time-stamp replaces the first") {
    Bytes twice = authenticode::add_timestamp(stamped, tsa.token_for(imprint));
    auto p7 = parse(twice);
    auto* si = sk_PKCS7_SIGNER_INFO_value(PKCS7_get_signer_info(p7.get()), 0);
    CHECK(X509at_get_attr_count(si->unauth_attr) == 1);
  }
  SECTION("garbage is not accepted as a token") {
    CHECK_THROWS_AS(authenticode::add_timestamp(der, Bytes{1, 2, 3}), FileError);
  }
}

TEST_CASE("nest adds signatures as values of one attribute", "[authenticode]") {
  auto rsa = leaf_signer();
  auto ec = signer::make_local_key_signer(fixture("leaf-ec.key"), fixture("chain-ec.pem"));
  MemoryFile f(content_bytes(200));
  SignOptions o256, o512;
  o512.alg = DigestAlg::sha512;
  Bytes primary = sign_digest(*rsa, f.digest(DigestAlg::sha256), o256);
  Bytes second = sign_digest(*rsa, f.digest(DigestAlg::sha512), o512);
  Bytes third = sign_digest(*ec, f.digest(DigestAlg::sha256), o256);
  Bytes nested = authenticode::nest(authenticode::nest(primary, second), third);

  auto p7 = parse(nested);
  auto* si = sk_PKCS7_SIGNER_INFO_value(PKCS7_get_signer_info(p7.get()), 0);
  REQUIRE(X509at_get_attr_count(si->unauth_attr) == 1);
  CHECK(X509_ATTRIBUTE_count(X509at_get_attr(si->unauth_attr, 0)) == 2);

  auto roots = store_of({fixture("root.pem")});
  authenticode::VerifyOptions vo;
  vo.roots = roots.get();
  f.signature = nested;
  f.digest_calls = 0;
  auto v = authenticode::verify(f, vo);
  INFO(v.first_problem());
  REQUIRE(v.ok());
  REQUIRE(v.signatures.size() == 3);
  CHECK_FALSE(v.signatures[0].nested);
  CHECK(v.signatures[1].nested);
  CHECK(v.signatures[2].nested);
  CHECK(f.digest_calls == 2);  // one pass per distinct algorithm

  // A broken nested signature fails the whole file.
  Bytes bad = sign_digest(*rsa, hash(DigestAlg::sha256, content_bytes(7)), o256);
  f.signature = authenticode::nest(primary, bad);
  auto w = authenticode::verify(f, vo);
  CHECK_FALSE(w.ok());
  CHECK(contains(w.first_problem(), "nested signature"));
}

TEST_CASE("describe_certificate", "[authenticode]") {
  auto leaf = load_cert(fixture("leaf.pem"));
  auto d = authenticode::describe_certificate(leaf.get());
  CHECK(d.subject == "O=tsign tests,CN=tsign test leaf");
  CHECK(d.issuer == "O=tsign tests,CN=tsign test intermediate CA");
  auto r =
      run_command("openssl x509 -noout -fingerprint -sha256 -in " + quote(fixture("leaf.pem")));
  REQUIRE(r.exit_code == 0);
  std::string fp;
  for (char c : r.output.substr(r.output.find('=') + 1))
    if (std::isxdigit(static_cast<unsigned char>(c))) fp += static_cast<char>(std::tolower(c));
  CHECK(d.sha256_thumbprint == fp);
  CHECK(d.not_before.size() == 20);
  CHECK(d.not_before.back() == 'Z');
  CHECK(d.not_before < d.not_after);
}
