#!/usr/bin/env python3
"""Sum a perf profile's self samples into the parts of a WIM decode or apply.

Usage: perf report -i perf.data --stdio --no-children --sort dso,symbol \\
           | scripts/perf-categories.py

Prints one line per part, largest first: the decoders' main loops (which
include the inlined match copies and bit reading), Huffman table builds
(with the reading of LZX's code lengths),
the x86 filters, SHA-1 (one chain, or eight blobs at a time in lanes), the
C library's copies, fills and allocator, the kernel (file-system calls,
page faults, scheduling) and the rest.
"""
import re
import sys

PARTS = [
    ("Huffman table builds", re.compile(
        r"DecodeTable.*::build|AdaptiveCode.*::(rebuild|build|reset)|fill_table|read_lens"
        r"|lzx::decode_lens|lzx_read_codeword_lens"
        r"|make_huffman_decode_table|make_canonical_huffman_code|sort_symbols"
        r"|lzms_build_huffman_code|lzms_dilute|lzms_init_huffman|lzms_rebuild"
        r"|canonical_order")),
    ("x86 filter", re.compile(
        r"X86Filter|undo_e8|lzms_x86_filter|lzx_postprocess|lzx_e8_filter|undo_e8_preprocessing")),
    ("SHA-1", re.compile(r"sha1|sha1_blocks|sha1_update|sha1_final|blob_hash", re.I)),
    ("decoder main loops (incl. match copies)", re.compile(
        r"Decompressor.*::decompress|xpress_decompress|lzx_decompress|lzms_decompress"
        r"|lzx_decompress_block|decode_items|decode_part|delta_match|decode_block|xpress::decode_fast"
        r"|copy_words"
        r"|lzms::copy_")),
    ("libc copies, fills, allocator", re.compile(
        r"memmove|memcpy|memset|malloc|free|calloc|realloc|sysmalloc|_int_")),
]

totals = {}
line = re.compile(r"^\s+([0-9.]+)%\s+(\S+)\s+\[([.k])\]\s+(.*?)\s*$")
for raw in sys.stdin:
    m = line.match(raw)
    if not m:
        continue
    share, dso, kind, symbol = float(m.group(1)), m.group(2), m.group(3), m.group(4)
    if kind == "k" or dso.startswith("[kernel"):
        part = "kernel (file-system calls, page faults, scheduling)"
    else:
        part = next((name for name, rx in PARTS if rx.search(symbol)), "other")
    totals[part] = totals.get(part, 0.0) + share
for part, share in sorted(totals.items(), key=lambda kv: -kv[1]):
    print(f"{share:6.1f}%  {part}")
