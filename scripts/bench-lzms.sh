#!/usr/bin/env bash
# LZMS decoder throughput, ours against wimlib's, one thread each, on the
# same chunks: a solid WIM (64 MiB chunks, wimlib's default for --solid) and
# a non-solid LZMS WIM (128 KiB chunks), captured by wimlib-imagex from
# ~70 MB of this machine's files (x86-64 libraries, documentation text,
# locale and table data). Both decoders' output is compared first.
#
# Needs: wimlib-imagex (wimtools), libwim-dev (wimlib.h), cc, hyperfine, python3.
# Usage: scripts/bench-lzms.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wimlib-imagex hyperfine cc python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
[ -e /usr/include/wimlib.h ] || { echo "install libwim-dev (wimlib.h)" >&2; exit 1; }

work=${1:-$(mktemp -d)}
mkdir -p "$work"
src="$work/src"
if [ ! -d "$src" ]; then
    # About 30 MB of shared libraries, 24 MB of text, 12 MB of other data:
    # one full 64 MiB solid chunk and a short one.
    python3 - "$src" <<'PY'
import glob, os, shutil, sys
src = sys.argv[1]
def take(dest, paths, budget):
    os.makedirs(dest, exist_ok=True)
    total = 0
    for i, path in enumerate(sorted(paths)):
        if total >= budget or not os.path.isfile(path) or os.path.islink(path):
            continue
        size = os.path.getsize(path)
        if total + size > budget * 1.1:
            continue
        shutil.copy(path, os.path.join(dest, f"{i}-{os.path.basename(path)}"))
        total += size
take(os.path.join(src, "lib"), glob.glob("/usr/lib/x86_64-linux-gnu/*.so*"), 30_000_000)
take(os.path.join(src, "doc"), glob.glob("/usr/share/doc/**/*", recursive=True)
     + glob.glob("/usr/share/man/**/*", recursive=True), 24_000_000)
take(os.path.join(src, "share"), glob.glob("/usr/share/i18n/**/*", recursive=True)
     + glob.glob("/usr/share/zoneinfo/**/*", recursive=True)
     + glob.glob("/usr/share/mime/**/*", recursive=True), 12_000_000)
PY
fi
echo "data: $(du -sb "$src" | cut -f1) bytes in $(find "$src" -type f | wc -l) files"

[ -e "$work/solid.wim" ] || wimlib-imagex capture "$src" "$work/solid.wim" --solid >/dev/null
[ -e "$work/chunked.wim" ] || wimlib-imagex capture "$src" "$work/chunked.wim" --compress=LZMS >/dev/null
python3 scripts/lzms_chunks.py --pack "$work/solid.wim" "$src" "$work/solid.pack"
python3 scripts/lzms_chunks.py --pack "$work/chunked.wim" "$src" "$work/chunked.pack"

cargo build --release -p containerimage-provider --example codec_decode 2>&1 | tail -1
ours=target/release/examples/codec_decode
theirs="$work/lzms-decode-wimlib"
cc -O2 -o "$theirs" scripts/lzms-decode-wimlib.c -lwim

for pack in solid chunked; do
    "$ours" lzms "$work/$pack.pack" 0 "$work/$pack.ours" >/dev/null
    "$theirs" "$work/$pack.pack" "$work/$pack.wimlib"
    cmp "$work/$pack.ours" "$work/$pack.wimlib"
    bytes=$(stat -c %s "$work/$pack.ours")
    echo "$pack: both decoders agree on $bytes bytes ($(stat -c %s "$work/$pack.pack") compressed)"
    rm -f "$work/$pack.ours" "$work/$pack.wimlib"
    hyperfine --warmup 1 --runs "${RUNS:-5}" --export-json "$work/$pack.json" \
        -n ours "$ours lzms $work/$pack.pack 1" -n wimlib "$theirs $work/$pack.pack"
    python3 - "$work/$pack.json" "$bytes" "$pack" <<'PY'
import json, sys
# CPU time (user + system) is reported besides wall time: on a shared,
# busy machine wall time mostly measures waiting for a core.
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
size, pack = int(sys.argv[2]), sys.argv[3]
cpu = {}
for name, r in results.items():
    cpu[name] = r["user"] + r["system"]
    print(f"{pack}: {name}: wall {r['mean']:.3f} s ± {r['stddev'] or 0:.3f}, "
          f"cpu {cpu[name]:.3f} s, {size / cpu[name] / 1e6:.0f} MB/s per core")
print(f"{pack}: ours / wimlib throughput (cpu time) = {cpu['wimlib'] / cpu['ours']:.2f}")
PY
done
