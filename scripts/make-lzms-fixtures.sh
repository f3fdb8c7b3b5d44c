#!/usr/bin/env bash
# Regenerates provider/tests/fixtures/lzms/: LZMS chunks cut out of WIM files
# that wimlib-imagex writes, with the SHA-256 and size of each chunk's
# original bytes (chunks.txt). Needs wimlib-imagex (Debian: wimtools) and python3.
#
# Usage: scripts/make-lzms-fixtures.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wimlib-imagex >/dev/null || { echo "install wimtools (wimlib-imagex)" >&2; exit 1; }

out=provider/tests/fixtures/lzms
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src="$work/src"
mkdir -p "$src/bin" "$src/text" "$src/data"

# x86-64 machine code (exercises the x86 filter).
cp /usr/bin/ls "$src/bin/ls"
head -c 400000 "$(ldd /usr/bin/ls | awk '/libc.so/ {print $3}')" > "$src/bin/libc-part"

python3 - "$src" <<'PY'
import os, random, struct, sys
src = sys.argv[1]
rng = random.Random(20261124)
words = ["image", "container", "layer", "windows", "servercore", "nanoserver",
         "feed", "manifest", "version", "digest", "chunk", "resource", "the",
         "a", "of", "and", "to", "in", "is", "for"]
# Text.
lines = []
for i in range(6000):
    lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 14))) + f" {i}\n")
open(os.path.join(src, "text", "words.txt"), "w").write("".join(lines))
# Tables of 32-bit and 16-bit integers (delta matches).
ints = b"".join(struct.pack("<I", 1000 + 7 * i) for i in range(40000))
open(os.path.join(src, "data", "ints32.bin"), "wb").write(ints)
rows = b"".join(struct.pack("<HHHH", i, 2 * i, 3 * i + 1, 40000 - i) for i in range(20000))
open(os.path.join(src, "data", "records.bin"), "wb").write(rows)
# A gradient "image": bytes changing linearly along rows.
img = bytes((x * 3 + y * 5) & 0xFF for y in range(256) for x in range(512))
open(os.path.join(src, "data", "gradient.raw"), "wb").write(img)
# Random data, alone and repeated far apart (long offsets, repeat offsets).
blk = rng.randbytes(20000)
open(os.path.join(src, "data", "random.bin"), "wb").write(rng.randbytes(70000))
open(os.path.join(src, "data", "repeats.bin"), "wb").write(
    blk + rng.randbytes(3000) + blk + b"\0" * 5000 + blk[::2] + blk)
# Small and tiny files (short last chunks).
open(os.path.join(src, "text", "small.txt"), "w").write("hello LZMS " * 20)
open(os.path.join(src, "text", "tiny.txt"), "w").write("tiny\n")
PY

rm -f "$out"/*.lzms "$out"/chunks.txt
mkdir -p "$out"
for cs in 32768 65536 131072 1048576; do
    wimlib-imagex capture "$src" "$work/c$cs.wim" --compress=LZMS --chunk-size=$cs >/dev/null
    python3 scripts/lzms_chunks.py "$work/c$cs.wim" "$src" "$out" "chunk$((cs / 1024))k" 100000
done
wimlib-imagex capture "$src" "$work/solid.wim" --solid --solid-compress=LZMS \
    --solid-chunk-size=262144 >/dev/null
python3 scripts/lzms_chunks.py "$work/solid.wim" "$src" "$out" solid256k 200000
du -sh "$out"
