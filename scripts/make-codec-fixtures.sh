#!/usr/bin/env bash
# Regenerates provider/tests/fixtures/codec/*.bin: real XPRESS and LZX chunks
# written by wimlib-imagex, for the codec unit tests.
#
# Content: an x86-64 executable (E8-heavy), generated text, skewed random
# bytes, long runs, and (for large chunk sizes) a file with far repeats.
# Needs wimlib-imagex (Debian: apt-get install wimtools) and python3.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/provider/tests/fixtures/codec"
command -v wimlib-imagex >/dev/null || { echo "install wimtools (wimlib-imagex)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

small="$work/small" big="$work/big"
mkdir -p "$small" "$big"
exe=$(command -v ls)
python3 - "$small" "$big" "$exe" <<'PY'
import random, sys
small, big, exe = sys.argv[1:]
rng = random.Random(20261124)
code = open(exe, "rb").read()
open(f"{small}/a-exe", "wb").write(code)
words = ("image container feed version layer windows server nano core store "
         "download verify install chunk table header resource offset length "
         "the of and to a in is it that for on with as by").split()
lines = []
while sum(map(len, lines)) < 96 * 1024:
    n = rng.randint(3, 14)
    lines.append(" ".join(rng.choice(words) for _ in range(n))
                 + f" {rng.randint(0, 99999)}.\n")
text = "".join(lines).encode()
open(f"{small}/b-text", "wb").write(text)
skew = bytes(min(255, int(rng.expovariate(0.08))) for _ in range(40 * 1024))
open(f"{small}/c-skewed", "wb").write(skew)
runs = bytearray()
while len(runs) < 48 * 1024:
    runs += bytes([rng.randrange(4)]) * rng.choice([1, 2, 3, 7, 300, 5000])
    runs += bytes(rng.randrange(256) for _ in range(rng.randint(1, 20)))
open(f"{small}/d-runs", "wb").write(bytes(runs))
# Far repeats: the executable and the text several times with small edits,
# so matches reach back hundreds of KiB.
far = bytearray()
while len(far) < 1200 * 1024:
    part = bytearray(code if len(far) // 1024 % 2 == 0 else text)
    for _ in range(64):
        part[rng.randrange(len(part))] = rng.randrange(256)
    far += part
open(f"{big}/e-far", "wb").write(bytes(far[:1200 * 1024]))
PY

make() { # codec chunk-size source-dir name max-chunks-per-file
    wimlib-imagex capture "$3" "$work/x.wim" --compress="$1" --chunk-size="$2" >/dev/null
    python3 "$root/scripts/make-codec-fixtures.py" "$work/x.wim" "$2" "$3" "$out/$4.bin" "$5"
    rm -f "$work/x.wim"
}
mkdir -p "$out"
make XPRESS 4096 "$small" xpress-4k 3
make XPRESS 16384 "$small" xpress-16k 2
make XPRESS 65536 "$small" xpress-64k 2
make LZX 32768 "$small" lzx-32k 3
make LZX 65536 "$small" lzx-64k 1
make LZX 262144 "$small" lzx-256k 1
make LZX 1048576 "$big" lzx-1m 2
make LZX 2097152 "$big" lzx-2m 1
ls -l "$out"
