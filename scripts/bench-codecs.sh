#!/usr/bin/env bash
# Decoder throughput of our XPRESS, LZX and LZMS decompressors against
# wimlib's, one thread each, in process, on the same chunks.
#
# Data kinds, BENCH_MB megabytes each (default 24):
#   text  a tar of /usr/include and /usr/share/doc (C headers, documentation);
#   x86   a tar of /usr/bin and the x86-64 shared libraries (E8-heavy code);
#   mixed the two interleaved in 1 MiB pieces.
# For each kind and codec:chunk size, the reference wimlib-imagex captures the
# file; scripts/lzms_chunks.py --pack cuts every compressed chunk out of the
# WIM into a pack. Then
#   - ours:   provider/examples/codec_decode (release build),
#   - theirs: scripts/codec-decode-wimlib.c linked to the reference wimlib's
#             libwim (its wimlib_decompress(), the decoders its apply uses)
# each decode the whole pack once to a file, the two files are compared byte
# for byte (and with the original data), then each decodes the pack ROUNDS
# times and reports the CPU time of those rounds alone, measured in process
# (reading the pack is not counted). The pair is run BENCH_REPEAT times,
# who goes first alternating, and the best CPU time of each side is kept.
# Ratio = our throughput ÷ theirs per CPU second (≥ 1.0: ours is at least as
# fast per core), of the bests, and pair by pair (the median of the pairs'
# ratios, with the lowest and highest: the two runs of a pair are seconds
# apart, so the machine's drift mostly cancels, which it does not between
# the bests).
#
# Needs: cc, python3, and wimlib built from source (default prefix
# /opt/wimlib-1.14.5, built from the release tarball with
# `./configure --prefix=/opt/wimlib-1.14.5 && make install`, or
# any wimlib build with headers and libwim).
# Usage: scripts/bench-codecs.sh [--wimlib PREFIX] [--kinds text,x86,mixed]
#                                [--workdir DIR] [CODEC:CHUNK_SIZE ...]
#   CODEC is XPRESS, LZX, LZMS or solid (LZMS solid resources; CHUNK_SIZE is
#   then the solid chunk size). Default:
#   XPRESS:32768 LZX:32768 LZX:1048576 LZMS:65536 LZMS:131072 solid:67108864
#   Environment: BENCH_MB (24), BENCH_ROUNDS (20), BENCH_REPEAT (3). With 5
#   rounds (0.1-0.3 s a measurement) ratios varied by 2-3% from run to run;
#   20 rounds take four times as long and vary less.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
prefix=/opt/wimlib-1.14.5
kinds=text,x86,mixed
workdir=
configs=()
while [ $# -gt 0 ]; do
    case $1 in
    --wimlib) prefix=${2:?--wimlib needs a prefix}; shift 2 ;;
    --kinds) kinds=${2:?--kinds needs a list}; shift 2 ;;
    --workdir) workdir=${2:?--workdir needs a folder}; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) configs+=("$1"); shift ;;
    esac
done
[ ${#configs[@]} -gt 0 ] ||
    configs=(XPRESS:32768 LZX:32768 LZX:1048576 LZMS:65536 LZMS:131072 solid:67108864)
for tool in cc python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y $tool" >&2; exit 1; }
done
imagex=$prefix/bin/wimlib-imagex
[ -x "$imagex" ] && [ -e "$prefix/include/wimlib.h" ] ||
    { echo "no wimlib build in $prefix (build wimlib 1.14.5 with ./configure --prefix=$prefix && make install, or pass --wimlib PREFIX)" >&2; exit 1; }
mb=${BENCH_MB:-24}
rounds=${BENCH_ROUNDS:-20}
repeat=${BENCH_REPEAT:-3}
if [ -n "$workdir" ]; then
    mkdir -p "$workdir"
    work=$(cd "$workdir" && pwd)
else
    work=$(mktemp -d /dev/shm/bench-codecs.XXXXXX)
    trap 'rm -rf "$work"' EXIT
fi

(cd "$root" && cargo build --quiet --release -p containerimage-provider --example codec_decode)
ours="$root/target/release/examples/codec_decode"
theirs="$work/codec-decode-wimlib"
cc -O2 -I "$prefix/include" -o "$theirs" "$root/scripts/codec-decode-wimlib.c" \
    -L "$prefix/lib" -Wl,-rpath,"$prefix/lib" -lwim

# The data files, one per kind (tar stops early on a closed pipe: expected).
take() { (tar cf - -C / "$@" 2>/dev/null || true) | head -c $((mb << 20)); }
for kind in ${kinds//,/ }; do
    dir="$work/data-$kind"
    [ -s "$dir/data.bin" ] && continue
    mkdir -p "$dir"
    case $kind in
    text) take usr/include usr/share/doc >"$dir/data.bin" ;;
    x86) take usr/bin usr/lib/x86_64-linux-gnu >"$dir/data.bin" ;;
    mixed)
        take usr/include usr/share/doc >"$work/t.bin"
        take usr/bin usr/lib/x86_64-linux-gnu >"$work/x.bin"
        python3 - "$work/t.bin" "$work/x.bin" "$dir/data.bin" <<'PY'
import sys
a, b = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
step, out = 1 << 20, bytearray()
for i in range(0, max(len(a), len(b)), step):
    out += a[i:i + step] + b[i:i + step]
n = (len(a) + len(b)) // 2  # the same size as the other kinds
open(sys.argv[3], "wb").write(out[:n])
PY
        rm -f "$work/t.bin" "$work/x.bin" ;;
    *) echo "unknown data kind $kind (text, x86, mixed)" >&2; exit 1 ;;
    esac
done

cpu_of() { sed -n 's/.*cpu_seconds=\([0-9.]*\).*/\1/p' "$1"; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "reference: $("$imagex" --version | head -1); ours: $(git -C "$root" rev-parse --short HEAD)"
echo "$rounds rounds per measurement, best of $repeat alternating runs; MB/s of decoded data per CPU second"
echo "ratio: of the bests; pair by pair: wimlib's CPU time over ours in each pair of runs, median (lowest–highest)"
echo
echo "| codec, chunk | data | chunks | in → out MB | ours MB/s | wimlib MB/s | ratio | pair by pair |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
status=0
for config in "${configs[@]}"; do
    codec=${config%%:*} chunk=${config##*:}
    case $codec in
    XPRESS) args=(--compress=XPRESS --chunk-size="$chunk") name=xpress ;;
    LZX) args=(--compress=LZX --chunk-size="$chunk") name=lzx ;;
    LZMS) args=(--compress=LZMS --chunk-size="$chunk") name=lzms ;;
    solid) args=(--solid --solid-chunk-size="$chunk") name=lzms ;;
    *) echo "unknown codec $codec (XPRESS, LZX, LZMS, solid)" >&2; exit 1 ;;
    esac
    for kind in ${kinds//,/ }; do
        dir="$work/data-$kind"
        wim="$work/$kind-$codec-$chunk.wim"
        pack="$work/$kind-$codec-$chunk.pack"
        if [ ! -s "$pack" ]; then
            "$imagex" capture "$dir" "$wim" "${args[@]}" --threads=1 >/dev/null
            python3 "$root/scripts/lzms_chunks.py" --pack "$wim" "$dir" "$pack" >/dev/null
            rm -f "$wim"
        fi
        "$ours" "$name" "$pack" 0 "$work/out-ours" >/dev/null
        "$theirs" "$name" "$pack" 0 "$work/out-theirs" >/dev/null
        if ! cmp -s "$work/out-ours" "$work/out-theirs"; then
            echo "$config $kind: OUTPUTS DIFFER" >&2
            status=1
        fi
        out_bytes=$(stat -c %s "$work/out-ours")
        # The pack holds compressed chunks only; compare with the data when
        # no chunk was stored raw (the usual case for these kinds).
        if [ "$out_bytes" = "$(stat -c %s "$dir/data.bin")" ] && ! cmp -s "$work/out-ours" "$dir/data.bin"; then
            echo "$config $kind: output differs from the original data" >&2
            status=1
        fi
        rm -f "$work/out-ours" "$work/out-theirs"
        best_ours=9e9 best_theirs=9e9
        pairs=()
        for ((i = 0; i < repeat; i++)); do
            # Who goes first alternates, so that neither always runs on a
            # cooler machine.
            if ((i % 2 == 0)); then
                "$ours" "$name" "$pack" "$rounds" >"$work/o.txt"
                "$theirs" "$name" "$pack" "$rounds" >"$work/t.txt"
            else
                "$theirs" "$name" "$pack" "$rounds" >"$work/t.txt"
                "$ours" "$name" "$pack" "$rounds" >"$work/o.txt"
            fi
            o_cpu=$(cpu_of "$work/o.txt") t_cpu=$(cpu_of "$work/t.txt")
            best_ours=$(awk -v a="$best_ours" -v b="$o_cpu" 'BEGIN { print (b < a ? b : a) }')
            best_theirs=$(awk -v a="$best_theirs" -v b="$t_cpu" 'BEGIN { print (b < a ? b : a) }')
            pairs+=("$(awk -v o="$o_cpu" -v t="$t_cpu" 'BEGIN { print t / o }')")
        done
        # The ratio pair by pair (the two runs of a pair are seconds apart,
        # so the machine's drift mostly cancels): median, lowest, highest.
        pair_ratio=$(printf '%s\n' "${pairs[@]}" | sort -g | awk '{ v[NR] = $1 }
            END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                  printf "%.3f (%.3f–%.3f)", m, v[1], v[NR] }')
        chunks=$(python3 -c 'import struct,sys
d=open(sys.argv[1],"rb").read(); n=at=0
while at+8<=len(d): n+=1; at+=8+struct.unpack_from("<I",d,at+4)[0]
print(n)' "$pack")
        awk -v c="$codec $chunk" -v k="$kind" -v n="$chunks" -v i="$(stat -c %s "$pack")" -v o="$out_bytes" \
            -v r="$rounds" -v a="$best_ours" -v b="$best_theirs" -v p="$pair_ratio" 'BEGIN {
            mo = o * r / a / 1e6; mt = o * r / b / 1e6
            printf "| %s | %s | %d | %.1f → %.1f | %.0f | %.0f | %.2f | %s |\n", c, k, n, i / 1e6, o / 1e6, mo, mt, mo / mt, p }'
    done
done
exit "$status"
