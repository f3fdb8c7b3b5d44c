#!/usr/bin/env bash
# Benchmark: installing into the image store and verifying it, against the
# same work done with standard tools.
#
#   install:  containerimage Install-ContainerOSImage <wim>
#             (hash the .wim, apply image 1, hash every installed file, publish)
#   versus    sha256sum <wim>; wimlib-imagex apply <wim> 1 <dir>; sha256sum every file
#   test:     containerimage Test-ContainerImage   (re-hash every installed file)
#   versus    sha256sum every file of the applied tree
#
# The tree comes from scripts/gen-bench-tree.py, captured as XPRESS (or with
# the wimlib-imagex capture options given by --capture, e.g. --solid);
# everything lives on tmpfs (/dev/shm). hyperfine runs each command RUNS times
# after a warm-up; medians and the ratio ours/reference are printed as Markdown.
#
# Usage: scripts/bench-install.sh [--size MB] [--runs N] [--capture "OPTIONS"]
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
size=300
runs=5
capture=--compress=XPRESS
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=${2:?--size needs a number}; shift 2 ;;
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --capture) capture=${2:?--capture needs wimlib-imagex capture options}; shift 2 ;;
    *) sed -n 's/^# \{0,1\}//p' "$0" | sed -n '/^Usage/p' >&2; exit 2 ;;
  esac
done
for tool in wimlib-imagex:wimtools hyperfine:hyperfine python3:python3; do
  command -v "${tool%%:*}" >/dev/null || { echo "needs ${tool%%:*}: apt-get install -y ${tool##*:}" >&2; exit 1; }
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "machine: $(nproc) CPUs ($cpu), $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
(cd "$here" && cargo build --release --quiet)
bin=$here/target/release/containerimage

work=$(mktemp -d /dev/shm/bench-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 "$here/scripts/gen-bench-tree.py" "$work/tree" "$size" >/dev/null
# shellcheck disable=SC2086 # the capture options are split on purpose
wimlib-imagex capture "$work/tree" "$work/Bench-1-0.wim" Bench $capture >/dev/null
rm -rf "$work/tree"
wim=$work/Bench-1-0.wim
home=$work/home
ref=$work/ref
hash_tree='find "$1" -type f -print0 | xargs -0 -r sha256sum >/dev/null'

hyperfine --runs "$runs" --warmup 1 --export-json "$work/install.json" \
  --prepare "rm -rf '$home' '$ref'" \
  -n containerimage "CONTAINERIMAGE_HOME='$home' '$bin' Install-ContainerOSImage '$wim' >/dev/null" \
  -n reference "sha256sum '$wim' >/dev/null && wimlib-imagex apply '$wim' 1 '$ref' >/dev/null && sh -c '$hash_tree' sh '$ref'" >&2

rm -rf "$home" "$ref"
CONTAINERIMAGE_HOME=$home "$bin" Install-ContainerOSImage "$wim" >/dev/null
files=$(ls -d "$home"/images/CN=*/Files)
hyperfine --runs "$runs" --warmup 1 --export-json "$work/test.json" \
  -n containerimage "CONTAINERIMAGE_HOME='$home' '$bin' Test-ContainerImage >/dev/null" \
  -n reference "sh -c '$hash_tree' sh '$files'" >&2

python3 - "$work/install.json" "$work/test.json" "$size" "$runs" "$capture" <<'PY'
import json, sys
install, test, size, runs, capture = sys.argv[1:6]
print(f"| operation ({size} MB tree, {capture}, tmpfs, {runs} runs) | containerimage median | reference median | ratio |")
print("|---|---|---|---|")
for label, path, ref in [
    ("Install-ContainerOSImage", install, "sha256sum wim + wimlib-imagex apply + sha256sum files"),
    ("Test-ContainerImage", test, "sha256sum files"),
]:
    results = {r["command"]: r["median"] for r in json.load(open(path))["results"]}
    ours, theirs = results["containerimage"], results["reference"]
    print(f"| {label} vs {ref} | {ours:.2f} s | {theirs:.2f} s | {ours / theirs:.2f} |")
PY
