#!/usr/bin/env bash
# Benchmark: Export-ContainerImage of an installed image to a gzip OCI
# archive, against `tar --format=pax -cf - Files | pigz -p <cores>` on the
# same installed tree (DESIGN §6: at most that time, both digests included,
# memory bounded by a constant).
#
# The tree comes from scripts/gen-bench-tree.py, captured with wimlib and
# installed into a store on tmpfs (/dev/shm). The two commands run
# alternately (hyperfine, RUNS each after a warm-up); medians, the ratio
# ours/reference, both CPU times and our peak RSS are printed as Markdown.
# The reference's output is hashed too (sha256sum of the compressed stream),
# as ours hashes the tar and the compressed layer.
#
# Import-ContainerImage of that archive is measured against `tar -xzf` of
# its layer (DESIGN §6: at most 1.1 times, verification included).
#
# Usage: scripts/bench-export.sh [--size MB] [--runs N]
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
size=300
runs=5
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=${2:?--size needs a number}; shift 2 ;;
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    *) sed -n 's/^# \{0,1\}//p' "$0" | sed -n '/^Usage/p' >&2; exit 2 ;;
  esac
done
for tool in wimlib-imagex:wimtools hyperfine:hyperfine python3:python3 pigz:pigz jq:jq bc:bc /usr/bin/time:time; do
  command -v "${tool%%:*}" >/dev/null || { echo "needs ${tool%%:*}: apt-get install -y ${tool##*:}" >&2; exit 1; }
done

cores=$(nproc)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "machine: $cores CPUs ($cpu), $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
(cd "$here" && cargo build --release --quiet)
bin=$here/target/release/containerimage

work=$(mktemp -d /dev/shm/bench-export.XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 "$here/scripts/gen-bench-tree.py" "$work/tree" "$size" >/dev/null
wimlib-imagex capture "$work/tree" "$work/Bench-1-0.wim" Bench --compress=XPRESS >/dev/null
rm -rf "$work/tree"
home=$work/home
CONTAINERIMAGE_HOME=$home "$bin" Install-ContainerOSImage "$work/Bench-1-0.wim" >/dev/null
rm -f "$work/Bench-1-0.wim"
image=$(ls -d "$home"/images/CN=*)
echo "installed tree: $(du -sh --apparent-size "$image/Files" | cut -f1)" >&2

hyperfine --runs "$runs" --warmup 1 --export-json "$work/export.json" \
  --prepare "rm -f '$work/out.tar' '$work/ref.tar.gz'" \
  -n containerimage "CONTAINERIMAGE_HOME='$home' '$bin' Export-ContainerImage bench:1.0.0.0 -Path '$work/out.tar' >/dev/null" \
  -n reference "cd '$image' && tar --format=pax -cf - Files | pigz -p $cores | tee '$work/ref.tar.gz' | sha256sum >/dev/null" >&2

# Our peak memory, from a run of its own; that run's archive is then
# compared with the reference's: both hold the same files.
rss=$( { /usr/bin/time -f '%M' env CONTAINERIMAGE_HOME="$home" "$bin" Export-ContainerImage bench:1.0.0.0 -Path "$work/out.tar" >/dev/null; } 2>&1 | tail -n 1)
mkdir "$work/x"
tar -xf "$work/out.tar" -C "$work/x"
layer=$(jq -r '.[0].Layers[0]' "$work/x/manifest.json")
ours=$(tar -tzf "$work/x/$layer" 2>/dev/null | grep -v ':' | sort | md5sum)
theirs=$(cd "$image" && tar --format=pax -cf - Files | tar -tf - | sed 's,/$,,' | sort | md5sum)
[ "$ours" = "$theirs" ] && same=yes || same=NO

# Import of the archive against tar -xzf of its layer.
hyperfine --runs "$runs" --warmup 1 --export-json "$work/import.json" \
  --prepare "rm -rf '$work/home2' '$work/xt' && mkdir '$work/xt'" \
  -n containerimage "CONTAINERIMAGE_HOME='$work/home2' '$bin' Import-ContainerImage '$work/out.tar' >/dev/null" \
  -n reference "tar -xzf '$work/x/$layer' -C '$work/xt' --warning=no-unknown-keyword" >&2
rss_import=$( { rm -rf "$work/home2"; /usr/bin/time -f '%M' env CONTAINERIMAGE_HOME="$work/home2" "$bin" Import-ContainerImage "$work/out.tar" >/dev/null; } 2>&1 | tail -n 1)

median() { jq -r ".results[] | select(.command == \"$2\") | .median" "$1"; }
cpu_s() { jq -r ".results[] | select(.command == \"$2\") | (.user + .system)" "$1"; }
ours_t=$(median "$work/export.json" containerimage)
ref_t=$(median "$work/export.json" reference)
echo
echo "| what | ours (s) | reference (s) | ours ÷ reference | CPU ours / reference (s) | peak RSS ours | same files |"
echo "|---|---|---|---|---|---|---|"
printf '| Export, gzip, %s MB tree | %.3f | %.3f | %.2f | %.2f / %.2f | %s MiB | %s |\n' \
  "$size" "$ours_t" "$ref_t" "$(echo "$ours_t / $ref_t" | bc -l)" \
  "$(cpu_s "$work/export.json" containerimage)" "$(cpu_s "$work/export.json" reference)" \
  "$((rss / 1024))" "$same"
ours_i=$(median "$work/import.json" containerimage)
ref_i=$(median "$work/import.json" reference)
printf '| Import of that archive (tar -xzf of its layer) | %.3f | %.3f | %.2f | %.2f / %.2f | %s MiB | - |\n' \
  "$ours_i" "$ref_i" "$(echo "$ours_i / $ref_i" | bc -l)" \
  "$(cpu_s "$work/import.json" containerimage)" "$(cpu_s "$work/import.json" reference)" \
  "$((rss_import / 1024))"
