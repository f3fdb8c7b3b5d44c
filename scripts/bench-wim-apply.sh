#!/usr/bin/env bash
# Benchmarks Expand-WindowsImage against `wimlib-imagex apply` on the same
# ~300 MB tree (programs and libraries from /usr plus generated text), output
# on tmpfs, for each compression; checks that both trees are identical and
# records peak memory. Usage: scripts/bench-wim-apply.sh [SIZE_MB] [RUNS]
# Needs: wimtools, hyperfine, GNU time; builds the release binary.
set -euo pipefail
size_mb="${1:-300}"
runs="${2:-3}"
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/target/release/containerimage"
(cd "$root" && cargo build --release --quiet)
shm="${BENCH_DIR:-/dev/shm}"
work="$(mktemp -d "$shm/bench-wim.XXXXXX")"
trap 'rm -rf "$work"' EXIT
src="$work/src"
mkdir -p "$src"

# The tree: real binaries first, then text, until SIZE_MB.
limit=$((size_mb * 1024 * 1024))
total=0
while IFS= read -r -d '' f; do
  s=$(stat -c %s "$f")
  [ $((total + s)) -gt $((limit * 85 / 100)) ] && break
  rel="${f#/}"
  mkdir -p "$src/$(dirname "$rel")"
  cp "$f" "$src/$rel" 2>/dev/null || continue
  total=$((total + s))
done < <(find /usr/bin /usr/lib -type f -size -20M -print0 2>/dev/null | sort -z)
mkdir -p "$src/text"
i=0
while [ "$total" -lt "$limit" ]; do
  seq "$i" $((i + 200000)) | sed 's/$/ lorem ipsum dolor sit amet/' > "$src/text/t$i.txt"
  total=$((total + $(stat -c %s "$src/text/t$i.txt")))
  i=$((i + 200000))
done
files=$(find "$src" -type f | wc -l)
echo "## tree: $(du -sm "$src" | cut -f1) MB, $files files"

echo "| compression | wimlib apply (s) | containerimage (s) | ratio | CPU s wimlib | CPU s ours | peak RSS wimlib (MiB) | peak RSS ours (MiB) | identical |"
echo "|---|---|---|---|---|---|---|---|---|"
for opts in ${COMPRESSIONS:-"--compress=XPRESS" "--compress=LZX" "--compress=LZMS" "--solid"}; do
  wim="$work/t.wim"
  # shellcheck disable=SC2086
  wimlib-imagex capture "$src" "$wim" $opts >/dev/null
  hyperfine --runs "$runs" --warmup 1 --export-json "$work/h.json" \
    --prepare "rm -rf $work/a $work/b" \
    "wimlib-imagex apply $wim 1 $work/a" \
    "$bin Expand-WindowsImage -ImagePath $wim -Index 1 -ApplyPath $work/b" >/dev/null
  read -r theirs ours < <(python3 -c "
import json; r=json.load(open('$work/h.json'))['results']; print(r[0]['mean'], r[1]['mean'])")
  rm -rf "$work/a" "$work/b"
  # One more run each under GNU time: peak RSS and CPU seconds (user + sys).
  read -r rss_theirs cpu_theirs < <( { /usr/bin/time -f '%M %U %S' wimlib-imagex apply "$wim" 1 "$work/a" >/dev/null; } 2>&1 | tail -1 | awk '{print $1, $2 + $3}')
  read -r rss_ours cpu_ours < <( { /usr/bin/time -f '%M %U %S' "$bin" Expand-WindowsImage -ImagePath "$wim" -Index 1 -ApplyPath "$work/b" >/dev/null; } 2>&1 | tail -1 | awk '{print $1, $2 + $3}')
  same=yes
  diff -r --no-dereference "$work/a" "$work/b" >/dev/null || same=NO
  (cd "$work/a" && find . -printf '%p %y %T@ %l\n' | sed "s#$work/a#ROOT#" | sort) > "$work/la"
  (cd "$work/b" && find . -printf '%p %y %T@ %l\n' | sed "s#$work/b#ROOT#" | sort) > "$work/lb"
  cmp -s "$work/la" "$work/lb" || same=NO
  rm -rf "$work/a" "$work/b"
  python3 -c "print('| $opts | %.3f | %.3f | %.2f | %.2f | %.2f | %.0f | %.0f | $same |' % ($theirs, $ours, $ours/$theirs, $cpu_theirs, $cpu_ours, $rss_theirs/1024, $rss_ours/1024))"
done
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), output on $shm"
