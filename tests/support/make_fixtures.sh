#!/bin/sh
# make_fixtures.sh OUTDIR — generates every test input tsign's tests use. Nothing binary is
# committed; this script is the only source of these files. Other areas rely on the names below:
# keep them stable.
#
# Idempotent: does nothing if OUTDIR/.done exists. Safe to run concurrently (ctest -j, several
# test executables): runs under an flock on OUTDIR/.lock, and .done is written last.
#
# Needs: openssl (3.x), x86_64-w64-mingw32-gcc, i686-w64-mingw32-gcc, osslsigncode (>= 2.5),
# msitools (msibuild).
#
# Test PKI (all PEM; every key unencrypted; validity 10 years from generation):
#   root.pem, root.key                 self-signed root CA (RSA 2048)
#   intermediate.pem, intermediate.key intermediate CA, issued by root (RSA 2048)
#   leaf.pem, leaf.key                 code-signing leaf, issued by intermediate, RSA 3072,
#                                      EKU codeSigning, CN "tsign test leaf"
#   leaf-ec.pem, leaf-ec.key           code-signing leaf, issued by intermediate, ECDSA P-256,
#                                      EKU codeSigning
#   leaf-noeku.pem, leaf-noeku.key     leaf issued by intermediate WITHOUT codeSigning
#                                      (EKU serverAuth only), RSA 2048
#   unrelated.key                      an RSA 3072 key matching no certificate (mismatch tests)
#   chain.pem                          leaf.pem + intermediate.pem (leaf first)
#   chain-ec.pem                       leaf-ec.pem + intermediate.pem
#   leaf.p12                           PKCS#12: leaf.key + leaf.pem + intermediate.pem,
#                                      password "test-pass"
#   selfsigned.pem, selfsigned.key     throw-away self-signed code-signing cert (RSA 2048)
#
# PE files (small MinGW programs):
#   pe64.exe      PE32+ console program (x86_64)
#   pe64.dll      PE32+ DLL (x86_64)
#   pe32.exe      PE32 console program (i686)
#   pe32.dll      PE32 DLL (i686)
#   pe64-overlay.exe  pe64.exe + 12345 bytes of overlay (odd length, not a multiple of 8)
#   pe64-signed.exe   pe64.exe signed by osslsigncode (SHA-256) with selfsigned.pem
#   pe64-signed-leaf.exe  pe64.exe signed by osslsigncode (SHA-256) with leaf.key + chain.pem
#                     (verifies with `osslsigncode verify -CAfile root.pem`)
#
# Cabinets (gcab, and tests/support/make_cab.py for what gcab cannot make):
#   cab-plain.cab     gcab -c: one folder, stored, no reserve (files a.txt, b.bin)
#   cab-zip.cab       gcab -c -z: the same, MSZIP-compressed
#   cab-multi.cab     three folders, one 40001-byte file each, no reserve
#   cab-signed.cab    cab-zip.cab signed by osslsigncode (SHA-256) with leaf.key + chain.pem
#                     (the 20-byte Authenticode reserve, a signature at the end)
#   cab-reserve-other.cab  a reserve used for other data (cbCFHeader 16, cbCFFolder 4, cbCFData 2)
#   cab-next.cab      a member of a multi-cabinet set (cfhdrNEXT_CABINET)
# Windows Installer files (msitools' msibuild; compound files with 512-byte sectors):
#   msi.msi           a database with a table, a 10000-byte stream "Big" (regular sectors) and a
#                     100-byte stream "Small" (mini stream)
#   msi-signed.msi    msi.msi signed by osslsigncode (SHA-256) with leaf.key + chain.pem
#   msi-dse.msi       msi.msi signed by osslsigncode -add-msi-dse (has \x05MsiDigitalSignatureEx)
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
OUT=$1
[ -f "$OUT/.done" ] && exit 0
mkdir -p "$OUT"

# Serialise concurrent runs; the loser finds .done and leaves.
exec 9>"$OUT/.lock"
flock 9
[ -f "$OUT/.done" ] && exit 0

HERE=$(cd "$(dirname "$0")" && pwd)  # this script's folder (make_cab.py), before the cd
cd "$OUT"
# Quiet unless something fails: the log is printed then.
LOG=make_fixtures.log
: >"$LOG"
fail() {
  echo "make_fixtures.sh: $1 failed; log follows:" >&2
  cat "$LOG" >&2
  exit 1
}
run() { "$@" >>"$LOG" 2>&1 || fail "$*"; }

# ---------------------------------------------------------------- PKI
cat >ext.cnf <<'EOF'
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[codesign]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[noeku]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[selfsigned]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
EOF

run openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out root.key
run openssl req -new -x509 -key root.key -subj "/CN=tsign test root CA/O=tsign tests" \
  -days 3650 -sha256 -config ext.cnf -extensions ca -out root.pem

run openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out intermediate.key
run openssl req -new -key intermediate.key -subj "/CN=tsign test intermediate CA/O=tsign tests" \
  -out intermediate.csr
run openssl x509 -req -in intermediate.csr -CA root.pem -CAkey root.key -set_serial 0x1001 \
  -days 3650 -sha256 -extfile ext.cnf -extensions ca -out intermediate.pem

# issue NAME KEYSPEC SUBJECT EXTENSION
issue() {
  run openssl genpkey $2 -out "$1.key"
  run openssl req -new -key "$1.key" -subj "$3" -out "$1.csr"
  run openssl x509 -req -in "$1.csr" -CA intermediate.pem -CAkey intermediate.key \
    -set_serial "0x$(openssl rand -hex 8)" -days 3650 -sha256 -extfile ext.cnf -extensions "$4" \
    -out "$1.pem"
}
issue leaf "-algorithm RSA -pkeyopt rsa_keygen_bits:3072" "/CN=tsign test leaf/O=tsign tests" codesign
issue leaf-ec "-algorithm EC -pkeyopt ec_paramgen_curve:P-256" "/CN=tsign test leaf EC/O=tsign tests" codesign
issue leaf-noeku "-algorithm RSA -pkeyopt rsa_keygen_bits:2048" "/CN=tsign test leaf no EKU/O=tsign tests" noeku
run openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out unrelated.key

cat leaf.pem intermediate.pem >chain.pem
cat leaf-ec.pem intermediate.pem >chain-ec.pem
run openssl pkcs12 -export -inkey leaf.key -in leaf.pem -certfile intermediate.pem \
  -name "tsign test leaf" -passout pass:test-pass -out leaf.p12

run openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out selfsigned.key
run openssl req -new -x509 -key selfsigned.key -subj "/CN=tsign throw-away self-signed" \
  -days 3650 -sha256 -config ext.cnf -extensions selfsigned -out selfsigned.pem
rm -f ./*.csr

# ---------------------------------------------------------------- PE files
cat >prog.c <<'EOF'
#include <stdio.h>
int main(void) { puts("tsign test program"); return 0; }
EOF
cat >lib.c <<'EOF'
__declspec(dllexport) int tsign_answer(void) { return 42; }
EOF
run x86_64-w64-mingw32-gcc -O1 -s -o pe64.exe prog.c
run x86_64-w64-mingw32-gcc -O1 -s -shared -o pe64.dll lib.c
run i686-w64-mingw32-gcc -O1 -s -o pe32.exe prog.c
run i686-w64-mingw32-gcc -O1 -s -shared -o pe32.dll lib.c
rm -f prog.c lib.c

# Deterministic pseudo-random overlay (AES-CTR keystream over zeros), odd length on purpose.
cp pe64.exe pe64-overlay.exe
head -c 12345 /dev/zero |
  openssl enc -aes-128-ctr -K 00112233445566778899aabbccddeeff -iv 00000000000000000000000000000000 -nosalt >>pe64-overlay.exe

run osslsigncode sign -certs selfsigned.pem -key selfsigned.key -h sha256 \
  -in pe64.exe -out pe64-signed.exe
run osslsigncode sign -certs chain.pem -key leaf.key -h sha256 \
  -in pe64.exe -out pe64-signed-leaf.exe

# ---------------------------------------------------------------- cabinets
MAKE_CAB="python3 $HERE/make_cab.py"
mkdir cab-src
printf 'tsign cabinet test\n' >cab-src/a.txt
head -c 70001 /dev/zero |
  openssl enc -aes-128-ctr -K 00112233445566778899aabbccddeeff -iv 00000000000000000000000000000001 -nosalt >cab-src/b.bin
(cd cab-src && run gcab -c -n ../cab-plain.cab a.txt b.bin && run gcab -c -n -z ../cab-zip.cab a.txt b.bin)
rm -r cab-src
run $MAKE_CAB cab-multi.cab --folders 3 --file-size 40001
run $MAKE_CAB cab-reserve-other.cab --reserve 16,4,2 --file-size 100
run $MAKE_CAB cab-next.cab --next --file-size 100
run osslsigncode sign -certs chain.pem -key leaf.key -h sha256 -in cab-zip.cab -out cab-signed.cab
# ---------------------------------------------------------------- MSI files
head -c 10000 /dev/zero |
  openssl enc -aes-128-ctr -K 00112233445566778899aabbccddeeff -iv 00000000000000000000000000000001 -nosalt >msi-big.bin
head -c 100 /dev/zero |
  openssl enc -aes-128-ctr -K 00112233445566778899aabbccddeeff -iv 00000000000000000000000000000002 -nosalt >msi-small.bin
run msibuild msi.msi -s "tsign test"
run msibuild msi.msi -q "CREATE TABLE \`Foo\` (\`A\` CHAR(72) NOT NULL PRIMARY KEY \`A\`)"
run msibuild msi.msi -a Big msi-big.bin
run msibuild msi.msi -a Small msi-small.bin
rm -f msi-big.bin msi-small.bin
run osslsigncode sign -certs chain.pem -key leaf.key -h sha256 -in msi.msi -out msi-signed.msi
run osslsigncode sign -certs chain.pem -key leaf.key -h sha256 -add-msi-dse \
  -in msi.msi -out msi-dse.msi

rm -f ext.cnf
: >.done
