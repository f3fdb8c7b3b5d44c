#!/usr/bin/env python3
"""Cut compressed chunks out of WIM files written by wimlib-imagex.

Usage: make-codec-fixtures.py WIM CHUNK_SIZE SOURCE_DIR OUT.bin [MAX_CHUNKS_PER_FILE]

Every file of SOURCE_DIR is looked up in the WIM's blob table by its SHA-1;
the compressed chunks of its resource are written to OUT.bin as records:

    u32 uncompressed size | u32 compressed size | 20-byte SHA-1 of the
    uncompressed chunk | compressed bytes

Chunks stored raw (compressed size == uncompressed size) are skipped: they
carry no codec data. All integers are little-endian.
"""
import hashlib
import os
import struct
import sys


def reshdr(raw):
    size = int.from_bytes(raw[0:7], "little")
    flags = raw[7]
    offset, orig = struct.unpack_from("<QQ", raw, 8)
    return size, flags, offset, orig


def main():
    wim_path, chunk_size, src, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    max_chunks = int(sys.argv[5]) if len(sys.argv) > 5 else 1 << 30
    with open(wim_path, "rb") as f:
        wim = f.read()
    if wim[:8] != b"MSWIM\0\0\0":
        sys.exit("not a WIM file")
    if struct.unpack_from("<I", wim, 0x14)[0] != chunk_size:
        sys.exit("unexpected chunk size in the header")
    size, _flags, offset, _orig = reshdr(wim[0x30:0x48])
    table = wim[offset:offset + size]
    blobs = {}
    for pos in range(0, len(table) - 49, 50):
        entry = table[pos:pos + 50]
        blobs[entry[30:50]] = reshdr(entry[0:24])

    records = []
    for name in sorted(os.listdir(src)):
        with open(os.path.join(src, name), "rb") as f:
            data = f.read()
        digest = hashlib.sha1(data).digest()
        if digest not in blobs:
            sys.exit(f"{name}: not found in the blob table")
        size, flags, offset, orig = blobs[digest]
        if orig != len(data) or not flags & 0x4:
            sys.exit(f"{name}: resource is not compressed")
        count = (orig + chunk_size - 1) // chunk_size
        entry_size = 4 if orig <= 0xFFFFFFFF else 8
        table_size = (count - 1) * entry_size
        fmt = "<I" if entry_size == 4 else "<Q"
        starts = [0] + [struct.unpack_from(fmt, wim, offset + i * entry_size)[0]
                        for i in range(count - 1)]
        ends = starts[1:] + [size - table_size]
        taken = 0
        for i in range(count):
            plain = data[i * chunk_size:(i + 1) * chunk_size]
            packed = wim[offset + table_size + starts[i]:offset + table_size + ends[i]]
            if len(packed) == len(plain):
                continue
            records.append(struct.pack("<II", len(plain), len(packed))
                           + hashlib.sha1(plain).digest() + packed)
            taken += 1
            if taken >= max_chunks:
                break
    with open(out, "wb") as f:
        f.write(b"".join(records))
    print(f"{out}: {len(records)} chunks, {sum(map(len, records))} bytes")


main()
