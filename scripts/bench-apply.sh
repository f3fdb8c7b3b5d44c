#!/usr/bin/env bash
# Benchmark: `containerimage Expand-WindowsImage` against `wimlib-imagex apply`.
#
# Builds the release binary, generates the benchmark tree (scripts/gen-bench-tree.py),
# captures it with wimlib-imagex as XPRESS, LZX, LZMS (non-solid) and LZMS solid,
# then for each WIM applies it with both tools, alternately, RUNS times each (plus one
# warm-up run each), output on tmpfs. Prints a Markdown table: median wall time of
# each tool, the ratio ours/wimlib against the goal, CPU time, peak RSS, and
# whether our tree is identical to wimlib's (scripts/compare-trees.py); then,
# per WIM, the wall and CPU times of the runs taken in pairs (ours against
# wimlib's run beside it): the median ratio, its quartiles, and in how many
# pairs ours was within the goal (wall) or at most wimlib's (CPU).
# The runs are timed here rather than by hyperfine so that the two tools can
# alternate run by run: on a shared machine the load drifts, and alternating
# spreads it over both. Each run is timed by scripts/timed-run.py (wall time
# around the child alone, CPU time from its resource usage, to the microsecond;
# peak RSS by /usr/bin/time). Needs wimlib-imagex (wimtools),
# /usr/bin/time (time), python3, and for --perf, perf (linux-perf).
#
# Usage: scripts/bench-apply.sh [--size MB] [--runs N] [--codecs LIST] [--memory [MB]]
#                               [--perf] [--one-thread] [--reference-only] [--workdir DIR]
#                               [--wimlib PATH] [--log FILE]
#   --size MB         size of the generated tree (default 300)
#   --runs N          timed runs per tool and WIM (default 5), medians reported
#   --codecs LIST     comma-separated subset of XPRESS,LZX,LZMS,solid (default all)
#   --memory [MB]     instead: one file of MB megabytes (default 2048; first half random,
#                     second half a hole) captured non-solid as XPRESS and LZX, to show
#                     that peak RSS stays bounded whatever the file size
#   --perf            afterwards, profile the apply of each WIM by both tools with
#                     `perf record` and print where the samples went
#                     (scripts/perf-categories.py) and the top functions
#   --one-thread      also time our apply on one thread (RAYON_NUM_THREADS=1), in turn
#                     with the two others: what our apply costs per core, beside what
#                     running on every core adds
#   --reference-only  time wimlib-imagex against itself (checks the harness; no cargo build)
#   --workdir DIR     keep the tree and WIMs in DIR and reuse them on the next run
#                     (default: a temporary folder in /dev/shm, removed at the end)
#   --log FILE        also append every timed round to FILE, one line each (time, commit,
#                     WIM, round, then wall and CPU seconds of wimlib, ours, and ours on
#                     one thread or -), for scripts/bench-pool.py to pool rounds across
#                     runs of this script: one run's medians move with the machine's drift
#                     (one file per reference wimlib: the lines do not name it)
#   --wimlib PATH     the reference wimlib-imagex binary (default: the one on PATH,
#                     Debian's); e.g. /opt/wimlib-1.14.5/bin/wimlib-imagex, built from
#                     the release tarball with ./configure --prefix=/opt/wimlib-1.14.5. WIMs missing from the
#                     work folder are captured with it; WIMs already there are reused,
#                     so runs against two wimlib versions can share the same WIMs.
# Exit status: 0 when every apply succeeded and every tree is identical, 1 otherwise.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
size=300
runs=5
codecs=XPRESS,LZX,LZMS,solid
memory=0
memory_mb=2048
perf=0
one_thread=0
reference_only=0
workdir=
imagex=wimlib-imagex
log=

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" | sed -n '/^Usage/,$p'; }
die() { echo "bench-apply: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    --size) size=${2:?--size needs a number}; shift 2 ;;
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --codecs) codecs=${2:?--codecs needs a list}; shift 2 ;;
    --memory)
      memory=1
      if [[ ${2:-} =~ ^[0-9]+$ ]]; then memory_mb=$2; shift; fi
      shift ;;
    --perf) perf=1; shift ;;
    --one-thread) one_thread=1; shift ;;
    --reference-only) reference_only=1; shift ;;
    --workdir) workdir=${2:?--workdir needs a folder}; shift 2 ;;
    --wimlib) imagex=${2:?--wimlib needs the path of a wimlib-imagex binary}; shift 2 ;;
    --log) log=${2:?--log needs a file}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ $size =~ ^[0-9]+$ && $size -ge 4 ]] || die "--size must be a number of MB, at least 4"
[[ $runs =~ ^[0-9]+$ && $runs -ge 1 ]] || die "--runs must be at least 1"
[[ $memory_mb =~ ^[0-9]+$ && $memory_mb -ge 2 ]] || die "--memory must be a number of MB, at least 2"
# DESIGN.md §6: at most 0.55 of wimlib's wall time (the two-core limit
# against wimlib 1.14.5, which decodes on one core) and no more CPU time.
goal=0.55
if [ "$memory" = 1 ] && [ "$codecs" = XPRESS,LZX,LZMS,solid ]; then codecs=XPRESS,LZX; fi
IFS=, read -r -a codec_list <<<"$codecs"
for c in "${codec_list[@]}"; do
  case $c in
    XPRESS | LZX | LZMS | solid) ;;
    *) die "unknown codec '$c' (choose from XPRESS,LZX,LZMS,solid)" ;;
  esac
done

need() { # tool, Debian package
  command -v "$1" >/dev/null 2>&1 || die "$1 is missing; install it with: apt-get install -y $2"
}
if [ "$imagex" = wimlib-imagex ]; then
  need wimlib-imagex wimtools
else
  [ -x "$imagex" ] || die "--wimlib $imagex is not an executable file"
fi
need python3 python3
[ -x /usr/bin/time ] || die "/usr/bin/time is missing; install it with: apt-get install -y time"
if [ "$perf" = 1 ]; then need perf linux-perf; fi

# When this run started: every round it logs carries it (--log).
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# Machine and load, for the record.
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
echo "machine: $(nproc) CPUs ($cpu), $mem RAM, $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "wimlib: $("$imagex" --version | head -n 1) ($(command -v "$imagex"))" >&2

ours=$here/target/release/containerimage
if [ "$reference_only" = 0 ]; then
  echo "bench-apply: cargo build --release" >&2
  (cd "$here" && cargo build --release --quiet) || die "cargo build --release failed"
  [ -x "$ours" ] || die "$ours was not built"
fi

# Work folder on tmpfs.
if [ -n "$workdir" ]; then
  mkdir -p "$workdir"
  work=$(cd "$workdir" && pwd)
  keep=1
else
  [ -d /dev/shm ] && [ -w /dev/shm ] || die "/dev/shm is not a writable folder (the outputs must be on tmpfs)"
  work=$(mktemp -d /dev/shm/bench-apply.XXXXXX)
  keep=0
fi
cleanup() {
  if [ "$keep" = 1 ]; then
    rm -rf "$work/out-wimlib" "$work/out-ours" "$work/perf.data"
  else
    rm -rf "$work"
  fi
}
rm -f "$work/perf.txt"
trap cleanup EXIT
trap 'exit 130' INT TERM

# The source tree.
if [ "$memory" = 1 ]; then
  tree=$work/tree-memory-$memory_mb
  if [ ! -d "$tree" ]; then
    echo "bench-apply: generating one ${memory_mb} MB file in $tree" >&2
    mkdir -p "$tree.tmp"
    python3 - "$tree.tmp/big.bin" "$memory_mb" <<'EOF'
import random, sys
path, mb = sys.argv[1], int(sys.argv[2])
total = mb * 1_000_000
rng = random.Random(2048)
with open(path, "wb") as f:
    left = total // 2
    while left:
        n = min(left, 64 << 20)
        f.write(rng.randbytes(n))
        left -= n
    f.truncate(total)  # the second half is a hole: zeros
EOF
    touch -d '2024-01-02 03:04:05.123456789Z' "$tree.tmp/big.bin"
    mv "$tree.tmp" "$tree"
  fi
else
  tree=$work/tree-$size
  # Generated in place (absolute symbolic links point into it); .done marks a complete tree.
  if [ ! -f "$tree.done" ]; then
    echo "bench-apply: generating the ${size} MB tree in $tree" >&2
    rm -rf "$tree" "$tree"-*.wim
    "$here/scripts/gen-bench-tree.py" "$tree" "$size"
    touch "$tree.done"
  fi
fi
tree_bytes=$(du -sb --apparent-size "$tree" | cut -f1)
tree_entries=$(find "$tree" | wc -l)

capture_args() {
  case $1 in
    XPRESS) echo --compress=XPRESS ;;
    LZX) echo --compress=LZX ;;
    LZMS) echo --compress=LZMS ;;
    solid) echo --solid ;;
  esac
}

# One timed run: wall seconds, peak RSS (KiB), user+system CPU seconds into $run_result.
timed() { # name, output folder, NAME=VALUE settings for its environment..., --, command...
  local name=$1 out=$2
  shift 2
  rm -rf "$out"
  if ! "$here/scripts/timed-run.py" "$work/time.txt" "$work/stderr-$name.txt" "$@"; then
    echo "bench-apply: $name failed: $*" >&2
    tail -n 5 "$work/stderr-$name.txt" | sed 's/^/  /' >&2
    return 1
  fi
  run_result=$(cat "$work/time.txt")
}

# The median, lower and upper quartile of numbers on standard input.
quartiles() {
  sort -g | awk '{ v[NR] = $1 }
    function at(q,   i, f) { i = 1 + q * (NR - 1); f = int(i); return v[f] + (i - f) * (v[f + 1 < NR ? f + 1 : NR] - v[f]) }
    END { if (NR == 0) print "nan nan nan"; else printf "%.3f %.3f %.3f\n", at(0.5), at(0.25), at(0.75) }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) printf "%.4f\n", v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

status=0
rows=()
pair_rows=()
for codec in "${codec_list[@]}"; do
  wim=$work/$(basename "$tree")-$codec.wim
  if [ ! -f "$wim" ]; then
    echo "bench-apply: capturing $codec" >&2
    # shellcheck disable=SC2046
    "$imagex" capture "$tree" "$wim.tmp" "bench" $(capture_args "$codec") >"$work/capture.log" 2>&1 ||
      { tail -n 5 "$work/capture.log" >&2; die "wimlib-imagex capture failed for $codec"; }
    mv "$wim.tmp" "$wim"
  fi
  wim_bytes=$(stat -c %s "$wim")

  wimlib_cmd=("$imagex" apply "$wim" 1 "$work/out-wimlib")
  if [ "$reference_only" = 1 ]; then
    ours_cmd=("$imagex" apply "$wim" 1 "$work/out-ours")
  else
    ours_cmd=("$ours" Expand-WindowsImage -ImagePath "$wim" -Index 1 -ApplyPath "$work/out-ours")
  fi

  echo "bench-apply: $codec ($((wim_bytes / 1000000)) MB WIM): 1 warm-up + $runs runs each, alternating" >&2
  : >"$work/wimlib.runs"
  : >"$work/ours.runs"
  : >"$work/ours1.runs"
  ours_ok=1
  for ((i = 0; i <= runs; i++)); do
    # Alternate who goes first, so that neither always runs on a cooler machine.
    if ((i % 2 == 0)); then order="wimlib ours"; else order="ours wimlib"; fi
    if [ "$one_thread" = 1 ]; then order="$order ours1"; fi
    for who in $order; do
      if [ "$who" = wimlib ]; then
        timed wimlib "$work/out-wimlib" -- "${wimlib_cmd[@]}" || die "wimlib-imagex apply failed on $wim"
        ((i > 0)) && echo "$run_result" >>"$work/wimlib.runs"
      elif [ "$ours_ok" = 1 ]; then
        settings=()
        if [ "$who" = ours1 ]; then settings=(RAYON_NUM_THREADS=1); fi
        if timed "$who" "$work/out-ours" "${settings[@]}" -- "${ours_cmd[@]}"; then
          ((i > 0)) && echo "$run_result" >>"$work/$who.runs"
        else
          ours_ok=0
        fi
      fi
    done
  done

  if [ -n "$log" ] && [ "$ours_ok" = 1 ]; then
    [ -s "$log" ] || echo "# time commit wim round wimlib_wall wimlib_cpu ours_wall ours_cpu ours1_wall ours1_cpu" >"$log"
    if [ "$one_thread" = 1 ]; then ones=$work/ours1.runs; else ones=/dev/null; fi
    commit=$(git -C "$here" describe --always --dirty 2>/dev/null || echo unknown)
    paste -d' ' "$work/wimlib.runs" "$work/ours.runs" "$ones" |
      awk -v t="$stamp" -v c="$commit" -v w="$codec" '{
        one = (NF >= 9) ? $7 " " $9 : "- -"
        print t, c, w, NR, $1, $3, $4, $6, one }' >>"$log"
  fi
  w_time=$(cut -d' ' -f1 "$work/wimlib.runs" | median)
  w_rss=$(cut -d' ' -f2 "$work/wimlib.runs" | sort -n | tail -n 1)
  w_cpu=$(cut -d' ' -f3 "$work/wimlib.runs" | median)
  if [ "$ours_ok" = 1 ]; then
    o_time=$(cut -d' ' -f1 "$work/ours.runs" | median)
    o_rss=$(cut -d' ' -f2 "$work/ours.runs" | sort -n | tail -n 1)
    o_cpu=$(cut -d' ' -f3 "$work/ours.runs" | median)
    # Each of our runs beside the wimlib run of the same round.
    read -r p_med p_low p_high < <(paste -d' ' "$work/ours.runs" "$work/wimlib.runs" |
      awk '{ print $3 / $6 }' | quartiles)
    p_under=$(paste -d' ' "$work/ours.runs" "$work/wimlib.runs" | awk '$3 <= $6 { n++ } END { print n + 0 }')
    # The same for wall time, and the rounds within the goal.
    read -r q_med q_low q_high < <(paste -d' ' "$work/ours.runs" "$work/wimlib.runs" |
      awk '{ print $1 / $4 }' | quartiles)
    q_under=$(paste -d' ' "$work/ours.runs" "$work/wimlib.runs" |
      awk -v g="$goal" '$1 <= g * $4 { n++ } END { print n + 0 }')
    one=-
    if [ "$one_thread" = 1 ]; then
      one=$(cut -d' ' -f3 "$work/ours1.runs" | median)
      one=$(awk -v o="$one" -v w="$w_cpu" 'BEGIN { printf "%.3f s (%.3f)", o, o / w }')
    fi
    pair_rows+=("$(printf '| %s | %s (%s–%s) | %s of %s | %s (%s–%s) | %s of %s | %s |' "$codec" \
      "$q_med" "$q_low" "$q_high" "$q_under" "$runs" "$p_med" "$p_low" "$p_high" "$p_under" "$runs" "$one")")
    ratio=$(awk -v o="$o_time" -v w="$w_time" 'BEGIN { printf "%.2f", o / w }')
    if "$here/scripts/compare-trees.py" "$work/out-wimlib" "$work/out-ours" >"$work/compare.txt"; then
      same=yes
    else
      same=NO
      status=1
      sed 's/^/  /' "$work/compare.txt" >&2
    fi
  else
    o_time=failed o_rss=- o_cpu=- ratio=- same=-
    status=1
  fi

  verdict=$(awk -v r="$ratio" -v g="$goal" -v rss="$o_rss" -v c="$codec" -v oc="$o_cpu" -v wc="$w_cpu" 'BEGIN {
    if (r == "-") { print "-"; exit }
    ok = (r + 0 <= g + 0) && (oc + 0 <= wc + 0)
    if (c != "solid" && rss + 0 > 128 * 1024) ok = 0
    print (ok ? "met" : "MISSED") }')
  rows+=("$(printf '| %s | %s | %s s | %s s | %s (≤ %s) | %s / %s s | %s | %s | %s | %s |' \
    "$codec" "$((wim_bytes / 1000000)) MB" "$w_time" "$o_time" "$ratio" "$goal" "$w_cpu" "$o_cpu" \
    "$(awk -v k="$w_rss" 'BEGIN { printf "%.0f MiB", k / 1024 }')" \
    "$(awk -v k="$o_rss" 'BEGIN { if (k == "-") print "-"; else printf "%.0f MiB", k / 1024 }')" \
    "$same" "$verdict")")
  rm -rf "$work/out-wimlib" "$work/out-ours"

  if [ "$perf" = 1 ] && [ "$ours_ok" = 1 ]; then
    for who in ours wimlib; do
      echo "bench-apply: profiling the apply of $codec by $who" >&2
      rm -rf "$work/out-$who"
      if [ "$who" = ours ]; then cmd=("${ours_cmd[@]}"); else cmd=("${wimlib_cmd[@]}"); fi
      perf record -q -F 2000 -o "$work/perf.data" -- "${cmd[@]}" >/dev/null 2>"$work/perf.log" ||
        { tail -n 5 "$work/perf.log" >&2; die "perf record failed"; }
      perf report -i "$work/perf.data" --stdio --no-children --sort dso,symbol 2>"$work/perf.log" >"$work/perf-report.txt"
      awk '/^ +[0-9.]+%/ && n++ < 12' "$work/perf-report.txt" >"$work/perf-top.txt"
      [ -s "$work/perf-top.txt" ] || { tail -n 5 "$work/perf.log" >&2; die "perf report printed no samples"; }
      {
        echo "### perf: the apply of $codec by $who (self samples, $(awk '/^# Samples/ { print $3; exit }' "$work/perf-report.txt") samples)"
        echo
        echo '```'
        "$here/scripts/perf-categories.py" <"$work/perf-report.txt"
        echo
        cat "$work/perf-top.txt"
        echo '```'
        echo
      } >>"$work/perf.txt"
      rm -rf "$work/out-$who" "$work/perf.data"
    done
  fi
done

ours_name="containerimage Expand-WindowsImage"
[ "$reference_only" = 1 ] && ours_name="wimlib-imagex apply (reference-only run)"
echo
echo "Tree: $tree_entries entries, $((tree_bytes / 1000000)) MB; $runs timed runs per tool after one warm-up, medians; output on tmpfs."
echo "Ours: $ours_name. Peak RSS is the largest of the runs. CPU is user + system (median)."
echo
echo "Goal: ratio at most $goal and CPU time at most wimlib's; peak RSS at most 128 MiB except solid."
echo
echo "| WIM | size | wimlib | ours | ratio (goal) | CPU wimlib / ours | RSS wimlib | RSS ours | identical | goal |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
if [ "${#pair_rows[@]}" -gt 0 ]; then
  echo
  echo "Run by run: each of our runs against the wimlib run of the same round (the machine's speed drifts; a round's two runs are seconds apart)."
  echo
  echo "| WIM | wall ours / wimlib: median (quartiles) | rounds within $goal | CPU ours / wimlib: median (quartiles) | rounds with ours at most wimlib's | ours on one thread: median CPU (against wimlib's) |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${pair_rows[@]}"
fi
if [ -f "$work/perf.txt" ]; then
  echo
  cat "$work/perf.txt"
fi
exit "$status"
