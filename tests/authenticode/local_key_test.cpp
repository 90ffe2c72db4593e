// The local-key Signer: PEM key + chain, PKCS#12, and the errors a user can act on.
#include <catch2/catch.hpp>

#include <openssl/rsa.h>

#include "common/error.hpp"
#include "helpers.hpp"

using namespace tsign;
using namespace tsign::test;

namespace {

// RSA PKCS#1 v1.5 / ECDSA check of `sig` over the pre-hashed `digest`, with `cert`'s key.
bool verifies(X509* cert, const Bytes& digest, DigestAlg alg, const Bytes& sig) {
  OsslPtr<EVP_PKEY_CTX, EVP_PKEY_CTX_free> ctx(EVP_PKEY_CTX_new(X509_get0_pubkey(cert), nullptr));
  if (!ctx || EVP_PKEY_verify_init(ctx.get()) != 1) return false;
  if (EVP_PKEY_is_a(X509_get0_pubkey(cert), "RSA"))
    EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING);
  EVP_PKEY_CTX_set_signature_md(ctx.get(), evp_md(alg));
  return EVP_PKEY_verify(ctx.get(), sig.data(), sig.size(), digest.data(), digest.size()) == 1;
}

}  // namespace

TEST_CASE("PEM key and chain: signs each digest algorithm", "[signer]") {
  auto leaf = load_cert(fixture("leaf.pem"));
  auto s = signer::make_local_key_signer(fixture("leaf.key"), fixture("chain.pem"));
  CHECK(contains(s->describe(), "leaf.key"));
  for (auto alg : {DigestAlg::sha256, DigestAlg::sha384, DigestAlg::sha512}) {
    Bytes d = hash(alg, as_bytes("attributes"));
    auto r = run_coro(s->sign(d, alg));
    CHECK(r.signature.size() == 384);  // RSA-3072
    REQUIRE(r.chain.size() == 2);
    CHECK(X509_cmp(r.chain[0].get(), leaf.get()) == 0);
    CHECK(verifies(leaf.get(), d, alg, r.signature));
    // Bound to the algorithm: the same digest under another DigestInfo does not verify.
    if (alg == DigestAlg::sha256)
      CHECK_FALSE(verifies(leaf.get(), d, DigestAlg::sha384, r.signature));
  }
  CHECK_THROWS_AS(run_coro(s->sign(Bytes(20, 1), DigestAlg::sha256)), FileError);
}

TEST_CASE("the certificate of the key goes first whatever the file order", "[signer]") {
  TempDir dir("ac-order");
  auto pem = read_all(fixture("intermediate.pem"));
  auto leaf_pem = read_all(fixture("leaf.pem"));
  pem.insert(pem.end(), leaf_pem.begin(), leaf_pem.end());
  write_all(dir / "chain.pem", pem);
  auto s = signer::make_local_key_signer(fixture("leaf.key"), dir / "chain.pem");
  auto r = run_coro(s->sign(hash(DigestAlg::sha256, as_bytes("x")), DigestAlg::sha256));
  REQUIRE(r.chain.size() == 2);
  CHECK(X509_cmp(r.chain[0].get(), load_cert(fixture("leaf.pem")).get()) == 0);
}

TEST_CASE("ECDSA key", "[signer]") {
  auto s = signer::make_local_key_signer(fixture("leaf-ec.key"), fixture("chain-ec.pem"));
  Bytes d = hash(DigestAlg::sha256, as_bytes("attributes"));
  auto r = run_coro(s->sign(d, DigestAlg::sha256));
  CHECK(verifies(r.chain[0].get(), d, DigestAlg::sha256, r.signature));
}

TEST_CASE("a key that does not match the certificate is an input error", "[signer]") {
  auto key = fixture("unrelated.key");
  auto certs = fixture("chain.pem");
  REQUIRE(contains(thrown_message<InputError>([&] { signer::make_local_key_signer(key, certs); }),
                   key.string() + " does not match the certificate " + certs.string()));
}

TEST_CASE("unreadable key material is an input error naming the file", "[signer]") {
  TempDir dir("ac-bad");
  CHECK(contains(thrown_message<InputError>([&] {
                   signer::make_local_key_signer(dir / "missing.key", fixture("chain.pem"));
                 }),
                 "missing.key"));
  write_all(dir / "junk.pem", Bytes{'n', 'o', 'p', 'e'});
  CHECK(contains(thrown_message<InputError>([&] {
                   signer::make_local_key_signer(dir / "junk.pem", fixture("chain.pem"));
                 }),
                 "junk.pem"));
  CHECK(contains(thrown_message<InputError>(
                     [&] { signer::make_local_key_signer(fixture("leaf.key"), dir / "junk.pem"); }),
                 "no PEM certificate"));
  CHECK_THROWS_AS(signer::make_pfx_signer(dir / "junk.pem", Secret("x")), InputError);
}

TEST_CASE("PKCS#12 file", "[signer]") {
  auto s = signer::make_pfx_signer(fixture("leaf.p12"), Secret("test-pass"));
  Bytes d = hash(DigestAlg::sha384, as_bytes("attributes"));
  auto r = run_coro(s->sign(d, DigestAlg::sha384));
  REQUIRE(r.chain.size() == 2);
  CHECK(X509_cmp(r.chain[0].get(), load_cert(fixture("leaf.pem")).get()) == 0);
  CHECK(verifies(r.chain[0].get(), d, DigestAlg::sha384, r.signature));

  try {
    signer::make_pfx_signer(fixture("leaf.p12"), Secret("wrong-pass"));
    FAIL("a wrong password was accepted");
  } catch (const InputError& e) {
    std::string m = e.what();
    CHECK(contains(m, "wrong password"));
    CHECK(contains(m, "leaf.p12"));
    CHECK_FALSE(contains(m, "wrong-pass"));  // the secret never reaches a message
  }
}
