#!/bin/sh
# debian_efi.sh OUTDIR — real-world signed PE images for the tests, fetched at test time (nothing
# binary is committed): Debian's shim-signed (shimx64.efi, signed by Microsoft; its certificate
# table holds two WIN_CERTIFICATE entries) and grub-efi-amd64-signed (grubx64.efi, signed by
# Debian). Writes OUTDIR/shimx64.efi.signed and OUTDIR/grubx64.efi.signed.
#
# Uses `apt-get download` with the package lists already on the machine (it never runs
# apt-get update). Exits 3 when the packages cannot be had; the tests then skip with a warning.
# Idempotent (OUTDIR/.done) and serialised by an flock, like make_fixtures.sh.
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
OUT=$1
[ -f "$OUT/.done" ] && exit 0
mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9
[ -f "$OUT/.done" ] && exit 0

cd "$OUT"
rm -rf work
mkdir work
cd work
for p in shim-signed grub-efi-amd64-signed; do
  if ! timeout 120 apt-get download "$p" >download.log 2>&1; then
    echo "debian_efi.sh: apt-get download $p failed:" >&2
    cat download.log >&2
    exit 3
  fi
done
for d in *.deb; do dpkg-deb -x "$d" x; done
# Debian names the file shimx64.efi.signed; Ubuntu ships shimx64.efi.signed.latest / .previous.
shim=$(find x -name 'shimx64.efi.signed*' | sort | head -n 1)
grub=$(find x -name 'grubx64.efi.signed' | sort | head -n 1)
if [ -z "$shim" ] || [ -z "$grub" ]; then
  echo "debian_efi.sh: shimx64.efi.signed or grubx64.efi.signed not found in the packages" >&2
  exit 3
fi
cp "$shim" ../shimx64.efi.signed
cp "$grub" ../grubx64.efi.signed
cd ..
rm -rf work
touch .done
