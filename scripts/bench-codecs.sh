#!/usr/bin/env bash
# Decoder throughput of our XPRESS and LZX decompressors against wimlib's,
# one thread each, on the same WIM files.
#
# Data: one file of x86-64 executables (tar of /usr/bin) and C headers (tar
# of /usr/include), BENCH_MB megabytes of each (default 48). For each codec
# and chunk size, wimlib-imagex captures it; then
#   - ours:   examples/codec_bench decodes every compressed chunk of the WIM
#             (cut out by make-codec-fixtures.py), 10 rounds, without
#             and with SHA-1 of each chunk;
#   - wimlib: `wimlib-imagex extract --to-stdout` of the file (decodes on one
#             thread and checks SHA-1), hyperfine runs, minus the
#             same extract from an uncompressed WIM (reading + hashing), which
#             leaves its decode time.
# Both are timed in CPU seconds (user + system; the fairer figure on a busy
# machine) and in wall seconds (best run or round).
# Usage: scripts/bench-codecs.sh [CODEC:CHUNK_SIZE ...]
#        (default: XPRESS:32768 LZX:32768 LZX:1048576)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
for tool in wimlib-imagex hyperfine python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(XPRESS:32768 LZX:32768 LZX:1048576)
mb=${BENCH_MB:-48}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/tree"
# (tar stops early on a closed pipe: that is expected)
{ (tar cf - -C / usr/bin 2>/dev/null || true) | head -c $((mb << 20))
  (tar cf - -C / usr/include 2>/dev/null || true) | head -c $((mb << 20)); } > "$work/tree/data.bin"
size=$(stat -c %s "$work/tree/data.bin")

(cd "$root" && cargo build --quiet --release -p containerimage-provider --example codec_bench)
bench="$root/target/release/examples/codec_bench"

# hyperfine result -> "cpu_seconds wall_seconds": mean user+system, minimum wall
times() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print(r["user"]+r["system"], r["min"])' "$1"; }
extract_times() { # wim -> times of extracting data.bin to /dev/null
    hyperfine --style none --warmup 1 --runs "${BENCH_RUNS:-5}" --export-json "$work/h.json" \
        "wimlib-imagex extract $1 1 /data.bin --to-stdout > /dev/null" >/dev/null
    times "$work/h.json"
}

wimlib-imagex capture "$work/tree" "$work/none.wim" --compress=none --threads=1 >/dev/null
read -r cpu_none wall_none < <(extract_times "$work/none.wim")

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "data: $size bytes (executables + C headers); wimlib $(wimlib-imagex --version | head -1 | awk '{print $2}')"
echo "wimlib extract of the uncompressed WIM (read + SHA-1): cpu ${cpu_none}s, wall ${wall_none}s"
echo "MB/s of uncompressed data; cpu = per CPU second, wall = best wall time"
printf '%-14s %9s %9s %9s %9s %9s %9s %7s %7s\n' codec:chunk ours_cpu ours_wall +sha1_cpu wimlib_cpu wimlib_wall extract_cpu ratio_cpu ratio_wall
for config in "${configs[@]}"; do
    codec=${config%%:*} chunk=${config##*:}
    wim="$work/$codec-$chunk.wim"
    wimlib-imagex capture "$work/tree" "$wim" --compress="$codec" --chunk-size="$chunk" --threads=1 >/dev/null
    python3 "$root/scripts/make-codec-fixtures.py" "$wim" "$chunk" "$work/tree" "$work/chunks.bin" >/dev/null
    line=$("$bench" "$(echo "$codec" | tr 'A-Z' 'a-z')" "$chunk" "$work/chunks.bin" "${BENCH_ROUNDS:-10}")
    field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$line"; }
    read -r cpu wall < <(extract_times "$wim")
    python3 - "$codec:$chunk" "$(field cpu_decode_MBps)" "$(field wall_decode_MBps)" \
        "$(field cpu_decode_sha1_MBps)" "$cpu" "$wall" "$cpu_none" "$wall_none" "$size" <<'PY'
import sys
name = sys.argv[1]
ours_cpu, ours_wall, ours_sha, cpu, wall, cpu_none, wall_none, size = map(float, sys.argv[2:])
w_cpu = size / (cpu - cpu_none) / 1e6 if cpu > cpu_none else float("nan")
w_wall = size / (wall - wall_none) / 1e6 if wall > wall_none else float("nan")
extract = size / cpu / 1e6
print(f"{name:<14} {ours_cpu:9.0f} {ours_wall:9.0f} {ours_sha:9.0f} {w_cpu:9.0f} {w_wall:9.0f} "
      f"{extract:9.0f} {ours_cpu / w_cpu:7.2f} {ours_wall / w_wall:7.2f}")
PY
done
