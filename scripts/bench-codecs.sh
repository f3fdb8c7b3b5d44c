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
#   - provider/examples/codec_decode (ours) and scripts/codec-decode-wimlib.c
#     (linked to the reference wimlib's libwim: its wimlib_decompress(), the
#     decoders its apply uses) each decode the whole pack to a file; the two
#     files are compared byte for byte, and with the original data;
#   - provider/examples/codec_interleaved loads the same libwim and times
#     both decoders in one process on one thread, interleaved: the pack is
#     cut into slices of about 1 MiB of output, and each slice is decoded
#     ours, wimlib's, wimlib's, ours, BENCH_PASSES passes over the pack
#     (the solid rows, whose one 24 MB chunk is one slice, take 40 passes
#     or BENCH_SOLID_PASSES). A sample is one slice's wimlib time over our
#     time, from decodes milliseconds apart, so the machine's drift, which
#     here reaches a third within minutes, mostly cancels.
# Ratio = the median of the samples: our throughput per CPU second relative
# to wimlib's (≥ 1.0: ours is at least as fast per core), with its 95%
# confidence interval (the sign test's: order statistics, nothing assumed
# about how the samples spread). A goal of "at least 1.0" is shown for a row
# when the whole interval is at or above 1.0. The ratio still moves by
# several percent between runs minutes apart, so pool several runs' --log with
# scripts/bench-pool.py --codecs before calling a goal met. MB/s are each
# side's output over its total time in the interleaved run.
#
# Needs: cc, python3, and wimlib built from source (default prefix
# /opt/wimlib-1.14.5, built from the release tarball with
# `./configure --prefix=/opt/wimlib-1.14.5 && make install`, or
# any wimlib build with headers and libwim).
# Usage: scripts/bench-codecs.sh [--wimlib PREFIX] [--kinds text,x86,mixed]
#                                [--workdir DIR] [--log FILE]
#                                [CODEC:CHUNK_SIZE ...]
#   CODEC is XPRESS, LZX, LZMS or solid (LZMS solid resources; CHUNK_SIZE is
#   then the solid chunk size). Default:
#   XPRESS:32768 LZX:32768 LZX:1048576 LZMS:65536 LZMS:131072 solid:67108864
#   --log FILE appends every sample, one line each: the run's start time,
#   the commit, the row (codec:chunk:kind), the slice, the pass, and our
#   and wimlib's nanoseconds.
#   Environment: BENCH_MB (24), BENCH_PASSES (10), BENCH_SOLID_PASSES (40).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
prefix=/opt/wimlib-1.14.5
kinds=text,x86,mixed
workdir=
log=
configs=()
while [ $# -gt 0 ]; do
    case $1 in
    --wimlib) prefix=${2:?--wimlib needs a prefix}; shift 2 ;;
    --kinds) kinds=${2:?--kinds needs a list}; shift 2 ;;
    --workdir) workdir=${2:?--workdir needs a folder}; shift 2 ;;
    --log) log=${2:?--log needs a file}; shift 2 ;;
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
passes=${BENCH_PASSES:-10}
solid_passes=${BENCH_SOLID_PASSES:-40}
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git -C "$root" rev-parse --short HEAD)
if [ -n "$workdir" ]; then
    mkdir -p "$workdir"
    work=$(cd "$workdir" && pwd)
else
    work=$(mktemp -d /dev/shm/bench-codecs.XXXXXX)
    trap 'rm -rf "$work"' EXIT
fi

(cd "$root" && cargo build --quiet --release -p containerimage-provider \
    --example codec_decode --example codec_interleaved)
ours="$root/target/release/examples/codec_decode"
interleaved="$root/target/release/examples/codec_interleaved"
libwim=$prefix/lib/libwim.so
[ -e "$libwim" ] || { echo "no $libwim: the reference wimlib must be built as a shared library" >&2; exit 1; }
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

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "reference: $("$imagex" --version | head -1); ours: $commit"
echo "interleaved in one process, $passes passes ($solid_passes for solid); MB/s of decoded data per second of decoding"
echo "ratio: median of the samples (wimlib's time over ours per slice), with its 95% interval"
echo
echo "| codec, chunk | data | chunks | in → out MB | ours MB/s | wimlib MB/s | ratio (95% interval) | samples | ≥ 1.00 shown |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
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
        n=$passes
        [ "$codec" = solid ] && n=$solid_passes
        rm -f "$work/samples.txt"
        result=$("$interleaved" "$libwim" "$name" "$pack" --passes "$n" --log "$work/samples.txt")
        if [ -n "$log" ]; then
            sed "s/^/$stamp $commit $codec:$chunk:$kind /" "$work/samples.txt" >>"$log"
        fi
        field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$result"; }
        chunks=$(python3 -c 'import struct,sys
d=open(sys.argv[1],"rb").read(); n=at=0
while at+8<=len(d): n+=1; at+=8+struct.unpack_from("<I",d,at+4)[0]
print(n)' "$pack")
        awk -v c="$codec $chunk" -v k="$kind" -v n="$chunks" -v i="$(stat -c %s "$pack")" -v o="$out_bytes" \
            -v a="$(field ours_mbs)" -v b="$(field wimlib_mbs)" -v r="$(field ratio)" -v l="$(field low)" \
            -v h="$(field high)" -v s="$(field samples)" 'BEGIN {
            shown = (l != "-" && l + 0 >= 1) ? "yes" : "no"
            interval = (l == "-") ? "none" : sprintf("%.3f–%.3f", l, h)
            printf "| %s | %s | %d | %.1f → %.1f | %.0f | %.0f | %.3f (%s) | %d | %s |\n", c, k, n, i / 1e6, o / 1e6, a, b, r, interval, s, shown }'
    done
done
exit "$status"
