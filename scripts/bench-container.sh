#!/usr/bin/env bash
# Benchmark: New-Container (a writable copy of an installed image) against
# `cp -a --reflink=auto` of the same Files/ tree, on tmpfs and, when run as
# root, on ext4, XFS and btrfs file systems made in loop files on tmpfs
# (DESIGN §9: copy-on-write clones where the file system offers them, so
# XFS and btrfs should be near-instant, tmpfs and ext4 a full copy).
#
# The tree comes from scripts/gen-bench-tree.py, captured with wimlib and
# installed into a store on each file system. The two commands run
# alternately, RUNS each after a warm-up, each into a fresh target; the
# trees they make are compared (scripts/compare-trees.py: contents, types,
# link targets, hard-link groups, modes, times). Median wall seconds and
# mean CPU seconds are printed as Markdown.
#
# Usage: scripts/bench-container.sh [--size MB] [--runs N]
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
for tool in wimlib-imagex:wimtools python3:python3 bc:bc /usr/bin/time:time; do
  command -v "${tool%%:*}" >/dev/null || { echo "needs ${tool%%:*}: apt-get install -y ${tool##*:}" >&2; exit 1; }
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "machine: $(nproc) CPUs ($cpu), $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
(cd "$here" && cargo build --release --quiet)
bin=$here/target/release/containerimage

work=$(mktemp -d /dev/shm/bench-container.XXXXXX)
mounts=()
cleanup() {
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
python3 "$here/scripts/gen-bench-tree.py" "$work/tree" "$size" >/dev/null
wimlib-imagex capture "$work/tree" "$work/Bench-1-0.wim" Bench --compress=XPRESS >/dev/null
rm -rf "$work/tree"

# The file systems: tmpfs always; the others need root (mkfs, mount -o loop).
targets=("tmpfs:$work/tmpfs")
mkdir -p "$work/tmpfs"
if [ "$(id -u)" = 0 ]; then
  image_mb=$((size * 4 + 512))
  for fs in ext4 xfs btrfs; do
    mkfs=mkfs.$fs
    command -v "$mkfs" >/dev/null || { echo "skipping $fs: apt-get install -y $( [ $fs = xfs ] && echo xfsprogs || ([ $fs = btrfs ] && echo btrfs-progs || echo e2fsprogs))" >&2; continue; }
    truncate -s "${image_mb}M" "$work/$fs.img"
    case $fs in
      ext4) mkfs.ext4 -q -F "$work/$fs.img" ;;
      xfs) mkfs.xfs -q -f "$work/$fs.img" ;;
      btrfs) mkfs.btrfs -q -f "$work/$fs.img" >/dev/null ;;
    esac
    mkdir -p "$work/$fs"
    mount -o loop "$work/$fs.img" "$work/$fs"
    mounts+=("$work/$fs")
    targets+=("$fs:$work/$fs")
  done
else
  echo "not root: measuring tmpfs only" >&2
fi

echo "| file system | New-Container | cp -a --reflink=auto | ratio | CPU s, ours / cp |"
echo "|---|---|---|---|---|"
for t in "${targets[@]}"; do
  fs=${t%%:*}; dir=${t#*:}
  home=$dir/home
  CONTAINERIMAGE_HOME=$home "$bin" Install-ContainerOSImage "$work/Bench-1-0.wim" >/dev/null
  image=$(ls -d "$home"/images/CN=*)
  sync
  # Alternating runs, each into a fresh target; wall and CPU seconds.
  : >"$work/$fs.ours"; : >"$work/$fs.ref"
  for i in $(seq 0 "$runs"); do
    rm -rf "$home/containers" "$dir/cp"; sync
    /usr/bin/time -f '%e %U %S' -a -o "$work/$fs.ours" \
      env CONTAINERIMAGE_HOME="$home" "$bin" New-Container bench:1.0.0.0 c >/dev/null
    rm -rf "$dir/cp"; sync
    /usr/bin/time -f '%e %U %S' -a -o "$work/$fs.ref" cp -a --reflink=auto "$image/Files" "$dir/cp"
  done
  # The last runs' trees are the same.
  python3 "$here/scripts/compare-trees.py" "$dir/cp" "$home/containers/c/Files" >"$work/$fs.diff" \
    || { echo "$fs: the trees differ:" >&2; head -20 "$work/$fs.diff" >&2; exit 1; }
  # The first run of each is a warm-up.
  median() { tail -n +2 "$1" | awk -v f="$2" '{print $f}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  cpu() { tail -n +2 "$1" | awk '{s+=$2+$3} END {printf "%.2f", s/NR}'; }
  ours=$(median "$work/$fs.ours" 1); ref=$(median "$work/$fs.ref" 1)
  printf '| %s | %.2f s | %.2f s | %.2f | %s / %s |\n' "$fs" "$ours" "$ref" \
    "$(echo "$ours / $ref" | bc -l)" "$(cpu "$work/$fs.ours")" "$(cpu "$work/$fs.ref")"
  # Committing a small change reads almost nothing: one new file, one
  # changed, one touched without change; the bytes read (strace) and the time.
  files=$home/containers/c/Files
  echo "small change" >"$files/added.txt"
  some=$(find "$files" -type f -size +8k 2>/dev/null | head -n 2 || true)
  changed=$(echo "$some" | head -n 1); touched=$(echo "$some" | tail -n 1)
  printf 'x' >>"$changed"
  touch "$touched"
  if command -v strace >/dev/null; then
    /usr/bin/time -f '%e' -o "$work/$fs.commit" strace -f -qq -e trace=read,pread64 -o "$work/$fs.strace" \
      env CONTAINERIMAGE_HOME="$home" "$bin" New-ContainerImage -Container c -Name Small -Publisher Bench -Version 1.0 >/dev/null
    read_bytes=$(sed -n 's/.*= \([0-9][0-9]*\)$/\1/p' "$work/$fs.strace" | awk '{s+=$1} END {print s+0}')
    echo "$fs: commit of a small change to a $(du -sh --apparent-size "$files" | cut -f1) container: $(cat "$work/$fs.commit") s under strace, $((read_bytes / 1024)) KiB read by read/pread" >&2
  fi
  rm -rf "$home" "$dir/cp"
done
