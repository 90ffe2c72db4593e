#!/usr/bin/env python3
"""make_cab.py OUT [options] - writes an uncompressed cabinet (Microsoft "Cabinet File Format").

gcab makes one folder and no reserve; the CAB tests also need cabinets with several folders,
with reserve areas used for something else, and members of multi-cabinet sets, and the bench
needs a large cabinet quickly. Each folder holds one file of --file-size bytes (a deterministic
pattern), stored in uncompressed CFDATA blocks of up to 32 KiB whose checksums are left 0 (the
specification's "not computed"). Streams: memory does not grow with --file-size.

Options:
  --folders N            number of folders (= files), default 1
  --file-size N          bytes per file; a K, M or G suffix multiplies by 1024^1..3
  --reserve H,F,D        cbCFHeader, cbCFFolder, cbCFData reserve sizes (sets RESERVE_PRESENT);
                         the reserve bytes are 0xAA
  --prev / --next        mark the cabinet as a member of a set (writes the set's names)
"""
import struct
import sys

BLOCK = 32768


def size_arg(text):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
    return int(text[:-1] if mult != 1 else text) * mult


def checksum(data, seed=0):
    """MS-CAB's CFDATA checksum: XOR of the little-endian 32-bit words, the tail's 1 to 3 bytes
    packed high byte first."""
    whole = len(data) - len(data) % 4
    x = int.from_bytes(data[:whole], "little")
    bits = 32
    while bits < whole * 8:  # a power of two of words: the zero words added change no XOR
        bits *= 2
    while bits > 32:  # XOR-fold the words pairwise: fast for 32 KiB blocks
        bits //= 2
        x = (x & ((1 << bits) - 1)) ^ (x >> bits)
    tail = 0
    for b in data[whole:]:
        tail = (tail << 8) | b
    return seed ^ x ^ tail


def main(argv):
    out = argv[0]
    folders, file_size, reserve, prev, nxt = 1, 1000, None, False, False
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "--folders":
            folders = int(argv[i + 1]); i += 2
        elif a == "--file-size":
            file_size = size_arg(argv[i + 1]); i += 2
        elif a == "--reserve":
            reserve = tuple(int(x) for x in argv[i + 1].split(",")); i += 2
        elif a == "--prev":
            prev = True; i += 1
        elif a == "--next":
            nxt = True; i += 1
        else:
            sys.exit("make_cab.py: unknown option " + a)

    flags = (1 if prev else 0) | (2 if nxt else 0) | (4 if reserve else 0)
    cb_h, cb_f, cb_d = reserve or (0, 0, 0)
    header = 36 + (4 + cb_h if reserve else 0)
    names = b""
    if prev:
        names += b"prev.cab\0disk0\0"
    if nxt:
        names += b"next.cab\0disk2\0"
    header += len(names)
    file_names = [("file%d.bin" % n).encode() + b"\0" for n in range(folders)]
    coff_files = header + folders * (8 + cb_f)
    data_start = coff_files + sum(16 + len(n) for n in file_names)
    nblocks = max(1, (file_size + BLOCK - 1) // BLOCK)
    folder_bytes = nblocks * (8 + cb_d) + file_size
    total = data_start + folders * folder_bytes
    if total >= 1 << 32:
        sys.exit("make_cab.py: a cabinet must stay under 4 GiB")

    with open(out, "wb") as f:
        f.write(b"MSCF" + struct.pack("<IIIIIBBHHHHH", 0, total, 0, coff_files, 0, 3, 1,
                                      folders, folders, flags, 0x1234, 0))
        if reserve:
            f.write(struct.pack("<HBB", cb_h, cb_f, cb_d) + b"\xaa" * cb_h)
        f.write(names)
        for n in range(folders):
            f.write(struct.pack("<IHH", data_start + n * folder_bytes, nblocks, 0) +
                    b"\xaa" * cb_f)
        for n in range(folders):
            # cbFile, uoffFolderStart, iFolder, date (2024-01-01), time, attribs (archive)
            f.write(struct.pack("<IIHHHH", file_size, 0, n, 0x5821, 0, 0x20) + file_names[n])
        for n in range(folders):
            pattern = bytes((n * 131 + k * 7) & 0xFF for k in range(BLOCK))
            sums = {}
            left = file_size
            for _ in range(nblocks):
                take = min(BLOCK, left)
                if take not in sums:
                    sizes = struct.pack("<HH", take, take) + b"\xaa" * cb_d
                    sums[take] = checksum(sizes, checksum(pattern[:take]))
                f.write(struct.pack("<IHH", sums[take], take, take) + b"\xaa" * cb_d +
                        pattern[:take])
                left -= take
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
