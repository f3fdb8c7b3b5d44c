#!/usr/bin/env python3
"""Cut the LZMS chunks out of a .wim and pair each with its original bytes.

Usage: lzms_chunks.py WIM SOURCE_DIR OUT_DIR PREFIX BUDGET_BYTES
       lzms_chunks.py --pack WIM SOURCE_DIR PACK_FILE

The first form writes OUT_DIR/PREFIX-N.lzms (one compressed chunk each) and
appends "name uncompressed_size sha256_of_original" lines to
OUT_DIR/chunks.txt, keeping at most BUDGET_BYTES of compressed chunks
(a spread of chunks from every resource). The second form writes every
chunk into one file for benchmarks: per chunk u32 uncompressed size,
u32 compressed size, the compressed bytes.

Original bytes come from SOURCE_DIR, matched to blobs by SHA-1 (the WIM
blob table names every blob by the SHA-1 of its contents). Only format
facts from the WIM layout are used: header, blob table, chunk tables,
solid resource headers.
"""
import hashlib
import os
import struct
import sys

HEADER_SIZE = 208
FLAG_COMPRESSED = 0x4
FLAG_SOLID = 0x10
SOLID_RESOURCE_SIZE = 0x1_0000_0000
CODEC_LZMS = 3


def reshdr(buf, at):
    size = int.from_bytes(buf[at:at + 7], "little")
    flags = buf[at + 7]
    offset, usize = struct.unpack_from("<QQ", buf, at + 8)
    return size, flags, offset, usize


def source_blobs(source_dir):
    by_sha1 = {}
    for root, _dirs, files in os.walk(source_dir):
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                continue
            data = open(path, "rb").read()
            by_sha1[hashlib.sha1(data).digest()] = data
    return by_sha1


def chunks_of(wim_path, source_dir):
    """Yields (compressed, original-or-None) for every LZMS chunk."""
    wim = open(wim_path, "rb").read()
    if wim[:8] != b"MSWIM\0\0\0":
        raise SystemExit(f"{wim_path}: not a WIM")
    header_chunk_size = struct.unpack_from("<I", wim, 0x14)[0]
    size, _flags, offset, _usize = reshdr(wim, 0x30)
    table = wim[offset:offset + size]
    blobs = source_blobs(source_dir)

    entries = []
    for at in range(0, len(table) - 49, 50):
        size, flags, offset, usize = reshdr(table, at)
        sha1 = table[at + 30:at + 50]
        entries.append((size, flags, offset, usize, sha1))

    # Non-solid compressed resources: chunk table, then chunks.
    for size, flags, offset, usize, sha1 in entries:
        if flags & FLAG_SOLID or not flags & FLAG_COMPRESSED:
            continue
        original = blobs.get(sha1)
        n = (usize + header_chunk_size - 1) // header_chunk_size
        entry = 8 if usize > 0xFFFFFFFF else 4
        table_len = (n - 1) * entry
        starts = [0] + [int.from_bytes(wim[offset + i * entry:offset + (i + 1) * entry], "little")
                        for i in range(n - 1)]
        data_start = offset + table_len
        ends = starts[1:] + [size - table_len]
        for i in range(n):
            chunk_len = min(header_chunk_size, usize - i * header_chunk_size)
            comp = wim[data_start + starts[i]:data_start + ends[i]]
            if len(comp) == chunk_len:
                continue  # stored raw
            part = None
            if original is not None:
                part = original[i * header_chunk_size:i * header_chunk_size + chunk_len]
            yield comp, chunk_len, part

    # Solid resources: entries of exactly 4 GiB are the resources; the other
    # solid entries are blobs inside the concatenation of the run's resources.
    run_resources = []
    run_blobs = []
    for size, flags, offset, usize, sha1 in entries + [(0, 0, 0, 0, b"")]:
        if flags & FLAG_SOLID:
            if usize == SOLID_RESOURCE_SIZE:
                run_resources.append((size, offset))
            else:
                # A blob inside solid data: its size is in the size field.
                run_blobs.append((offset, size, sha1))
            continue
        if not run_resources:
            continue
        # Rebuild the run's uncompressed data from the source files.
        total = 0
        headers = []
        for rsize, roffset in run_resources:
            r_usize, r_chunk, codec = struct.unpack_from("<QII", wim, roffset)
            headers.append((rsize, roffset, r_usize, r_chunk, codec))
            total += r_usize
        plain = bytearray(total)
        known = bytearray(total)
        for boffset, busize, sha1 in run_blobs:
            data = blobs.get(sha1)
            if data is not None and len(data) == busize:
                plain[boffset:boffset + busize] = data
                known[boffset:boffset + busize] = b"\1" * busize
        base = 0
        for rsize, roffset, r_usize, r_chunk, codec in headers:
            n = (r_usize + r_chunk - 1) // r_chunk
            sizes = struct.unpack_from(f"<{n}I", wim, roffset + 16)
            at = roffset + 16 + 4 * n
            for i, csize in enumerate(sizes):
                chunk_len = min(r_chunk, r_usize - i * r_chunk)
                comp = wim[at:at + csize]
                at += csize
                if codec != CODEC_LZMS or csize == chunk_len:
                    continue
                lo = base + i * r_chunk
                part = bytes(plain[lo:lo + chunk_len]) if all(known[lo:lo + chunk_len]) else None
                yield comp, chunk_len, part
            base += r_usize
        run_resources = []
        run_blobs = []


def main():
    if sys.argv[1] == "--pack":
        _, _, wim, source, pack = sys.argv
        count = 0
        with open(pack, "wb") as out:
            for comp, chunk_len, _part in chunks_of(wim, source):
                out.write(struct.pack("<II", chunk_len, len(comp)))
                out.write(comp)
                count += 1
        print(f"{pack}: {count} chunks")
        return
    _, wim, source, out_dir, prefix, budget = sys.argv
    budget = int(budget)
    found = [c for c in chunks_of(wim, source) if c[2] is not None]
    if not found:
        raise SystemExit(f"{wim}: no LZMS chunks with known contents")
    # Spread the budget: take chunks in an order that visits the start, the
    # end and the middle of the list first.
    order = []
    step = len(found)
    while step >= 1:
        for i in range(0, len(found), step):
            if i not in order:
                order.append(i)
        step //= 2
    if len(found) - 1 not in order[:2]:
        order.insert(1, len(found) - 1)
    kept = []
    used = 0
    for i in order:
        comp = found[i][0]
        if used + len(comp) > budget:
            continue
        kept.append(i)
        used += len(comp)
    with open(os.path.join(out_dir, "chunks.txt"), "a") as manifest:
        for n, i in enumerate(sorted(kept)):
            comp, chunk_len, part = found[i]
            name = f"{prefix}-{n}.lzms"
            open(os.path.join(out_dir, name), "wb").write(comp)
            manifest.write(f"{name} {chunk_len} {hashlib.sha256(part).hexdigest()}\n")
    print(f"{prefix}: kept {len(kept)} of {len(found)} chunks, {used} bytes")


if __name__ == "__main__":
    main()
