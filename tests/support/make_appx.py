#!/usr/bin/env python3
"""Builds small Windows app packages (APPX/MSIX) and bundles for the tests, with the Python
standard library only: payload files, AppxManifest.xml (or AppxMetadata/AppxBundleManifest.xml),
AppxBlockMap.xml with the hashes of every 64 KiB block, and [Content_Types].xml, laid out in a
zip the way MakeAppx lays it out (payload first, then the manifest, the block map and the
content types). The zip is written by hand rather than with zipfile so that each variant the
tests need (ZIP64 end records, data descriptors, stored or deflated entries, and broken block
maps) is exactly what is asked for.

    make_appx.py OUT [--bundle] [--publisher DN] [--hash sha256|sha384|sha512] [--zip64]
                     [--descriptors | --descriptors-nosig] [--stored] [--stored-content-types]
                     [--big] [--payload-mib N]
                     [--code-integrity] [--bad-block-map] [--missing-file] [--unlisted-file]
                     [--bad-lfh-size] [--twin] [--mixed-headers]
"""
import argparse
import base64
import hashlib
import random
import struct
import zlib

HASH_URI = {
    "sha256": "http://www.w3.org/2001/04/xmlenc#sha256",
    "sha384": "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "sha512": "http://www.w3.org/2001/04/xmlenc#sha512",
}
BLOCK = 64 * 1024
DOS_TIME, DOS_DATE = 0x6000, 0x5A21  # 12:00:00, 2025-01-01


def xml_attr(s):
    return (s.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
            .replace(">", "&gt;"))


def manifest(publisher, bundle):
    if bundle:
        return ('<?xml version="1.0" encoding="UTF-8"?>\r\n'
                '<Bundle xmlns="http://schemas.microsoft.com/appx/2013/bundle" '
                'SchemaVersion="5.0">\r\n'
                '  <Identity Name="Tsign.Test.Bundle" Publisher="%s" Version="1.0.0.0"/>\r\n'
                '  <Packages>\r\n'
                '    <Package Type="application" Version="1.0.0.0" Architecture="x64" '
                'FileName="inner.appx" Offset="0" Size="0"/>\r\n'
                '  </Packages>\r\n</Bundle>\r\n' % xml_attr(publisher)).encode()
    return ('<?xml version="1.0" encoding="utf-8"?>\r\n'
            '<Package xmlns="http://schemas.microsoft.com/appx/manifest/foundation/windows10">\r\n'
            '  <!-- the identity signtool checks -->\r\n'
            '  <Identity Name="Tsign.Test" Publisher="%s" Version="1.0.0.0" '
            'ProcessorArchitecture="x64"/>\r\n'
            '  <Properties><DisplayName>tsign test</DisplayName>'
            '<PublisherDisplayName>tsign</PublisherDisplayName>'
            '<Logo>Assets\\logo.png</Logo></Properties>\r\n'
            '</Package>\r\n' % xml_attr(publisher)).encode()


def block_map(files, alg, lfh_sizes):
    out = ['<?xml version="1.0" encoding="UTF-8" standalone="no"?>\r\n'
           '<BlockMap xmlns="http://schemas.microsoft.com/appx/2010/blockmap" '
           'HashMethod="%s">' % HASH_URI[alg]]
    for name, data in files:
        out.append('<File Name="%s" Size="%d" LfhSize="%d">'
                   % (xml_attr(name.replace("/", "\\")), len(data), lfh_sizes[name]))
        for at in range(0, len(data), BLOCK):
            digest = hashlib.new(alg, data[at:at + BLOCK]).digest()
            out.append('<Block Hash="%s"/>' % base64.b64encode(digest).decode())
        out.append("</File>")
    out.append("</BlockMap>")
    return "".join(out).encode()


CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="exe" ContentType="application/x-msdownload"/>'
    '<Default Extension="png" ContentType="image/png"/>'
    '<Default Extension="dat" ContentType="application/octet-stream"/>'
    '<Default Extension="appx" ContentType="application/vnd.ms-appx"/>'
    '<Default Extension="cat" ContentType="application/vnd.ms-pki.seccat"/>'
    '<Override PartName="/AppxManifest.xml" ContentType="application/vnd.ms-appx.manifest+xml"/>'
    '<Override PartName="/AppxBlockMap.xml" ContentType="application/vnd.ms-appx.blockmap+xml"/>'
    '</Types>').encode()


def deflate(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def write_zip(path, entries, args):
    """entries: [(name, data)]; returns nothing. Local records, central directory, end records."""
    out = bytearray()
    central = bytearray()
    descriptors = args.descriptors or args.descriptors_nosig
    # Local headers may say another version and time than the central records do.
    local_version = 45 if args.mixed_headers else 20
    local_time = DOS_TIME + 1 if args.mixed_headers else DOS_TIME
    for name, data in entries:
        stored = name.endswith(".png") or (
            args.stored_content_types if name == "[Content_Types].xml" else args.stored)
        body = data if stored else deflate(data)
        method = 0 if stored else 8
        crc = zlib.crc32(data)
        flags = 0x08 if descriptors else 0
        offset = len(out)
        raw_name = name.encode()
        if descriptors:
            out += struct.pack("<IHHHHHIIIHH", 0x04034B50, local_version, flags, method,
                               local_time, DOS_DATE, 0, 0, 0, len(raw_name), 0)
        else:
            out += struct.pack("<IHHHHHIIIHH", 0x04034B50, local_version, flags, method,
                               local_time, DOS_DATE, crc, len(body), len(data), len(raw_name), 0)
        out += raw_name + body
        if descriptors:
            if not args.descriptors_nosig:
                out += struct.pack("<I", 0x08074B50)
            if args.zip64:
                out += struct.pack("<IQQ", crc, len(body), len(data))
            else:
                out += struct.pack("<III", crc, len(body), len(data))
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 20, flags, method, DOS_TIME,
                               DOS_DATE, crc, len(body), len(data), len(raw_name), 0, 0, 0, 0, 0,
                               offset)
        central += raw_name
    cd_offset = len(out)
    out += central
    count = len(entries)
    if args.zip64:
        z64_at = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count,
                           len(central), cd_offset)
        out += struct.pack("<IIQI", 0x07064B50, 0, z64_at, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                           0xFFFFFFFF, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), cd_offset, 0)
    with open(path, "wb") as f:
        f.write(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--bundle", action="store_true")
    p.add_argument("--publisher", default="O=tsign tests, CN=tsign test leaf")
    p.add_argument("--hash", default="sha256", choices=sorted(HASH_URI))
    p.add_argument("--zip64", action="store_true")
    p.add_argument("--descriptors", action="store_true")
    p.add_argument("--descriptors-nosig", action="store_true")
    p.add_argument("--stored", action="store_true", help="every entry but the content types")
    p.add_argument("--stored-content-types", action="store_true")
    p.add_argument("--big", action="store_true", help="a 200 KiB payload (several blocks)")
    p.add_argument("--payload-mib", type=int, default=0,
                   help="add a payload of this many MiB (half random, half zeros), for benchmarks")
    p.add_argument("--code-integrity", action="store_true")
    p.add_argument("--bad-block-map", action="store_true", help="a payload changed after")
    p.add_argument("--missing-file", action="store_true", help="block map names a ghost")
    p.add_argument("--unlisted-file", action="store_true", help="a file not in the block map")
    p.add_argument("--bad-lfh-size", action="store_true")
    p.add_argument("--mixed-headers", action="store_true",
                   help="local headers with another version and time than the central records")
    p.add_argument("--twin", action="store_true",
                   help="app%%2Eexe beside app.exe: another item naming the same part")
    args = p.parse_args()

    if args.bundle:
        payload = [("inner.appx", b"PK\x03\x04 an inner package, not re-signed\r\n" * 50)]
    else:
        payload = [("app.exe", b"MZ" + bytes(range(256)) * 8),
                   ("Assets/logo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)]
    if args.big:
        payload.append(("data/big.dat", bytes((i * 7 + i // 251) & 0xFF for i in range(200 * 1024))))
    if args.payload_mib:
        half = args.payload_mib * 1024 * 1024 // 2
        payload.append(("data/payload.bin", random.Random(11).randbytes(half) + bytes(half)))
    man_name = "AppxMetadata/AppxBundleManifest.xml" if args.bundle else "AppxManifest.xml"
    files = payload + [(man_name, manifest(args.publisher, args.bundle))]
    listed = list(files)
    if args.missing_file:
        listed.append(("ghost.dll", b"not in the package"))
    lfh = {name: 30 + len(name.encode()) for name, _ in listed}
    if args.bad_lfh_size:
        lfh[files[0][0]] += 1
    bm = block_map(listed, args.hash, lfh)
    if args.bad_block_map:
        name, data = files[0]
        files[0] = (name, data[:-1] + bytes([data[-1] ^ 1]))
    entries = list(files)
    if args.twin:
        entries.append(("app%2Eexe", b"MZ another program under the same part name"))
    if args.unlisted_file:
        entries.append(("extra.txt", b"smuggled in after the block map was made"))
    if args.code_integrity:
        entries.append(("AppxMetadata/CodeIntegrity.cat", b"0\x03\x02\x01\x00 not a real catalog"))
    entries += [("AppxBlockMap.xml", bm), ("[Content_Types].xml", CONTENT_TYPES)]
    write_zip(args.out, entries, args)


if __name__ == "__main__":
    main()
