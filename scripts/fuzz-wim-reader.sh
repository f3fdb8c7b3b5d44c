#!/usr/bin/env bash
# Fuzzes the WIM reader (fuzz target `wim_reader`) for SECONDS (default 600),
# seeded with small WIM files made by wimlib-imagex in every compression, one
# with 16 MiB solid chunks, and two with files of several 256 KiB groups.
# Needs: cargo-fuzz (cargo install cargo-fuzz) and wimtools; runs on the stable
# toolchain through RUSTC_BOOTSTRAP=1, like scripts/fuzz.sh.
set -euo pipefail
seconds="${1:-600}"
root="$(cd "$(dirname "$0")/.." && pwd)"
corpus="$root/fuzz/corpus/wim_reader"
mkdir -p "$corpus"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
src="$work/src"
mkdir -p "$src/dir/sub"
printf 'hello world\n' > "$src/a.txt"
head -c 3000 /dev/urandom > "$src/dir/r.bin"
printf 'hello world\n' > "$src/dir/copy.txt"
: > "$src/empty"
ln "$src/a.txt" "$src/dir/sub/hard"
ln -s ../a.txt "$src/dir/rel"
ln -s "$src/dir" "$src/abs"
for opts in "--compress=none" "--compress=XPRESS" "--compress=LZX" "--compress=LZMS" \
            "--solid" "--compress=none --check"; do
  name="seed-$(echo "$opts" | tr -c 'a-zA-Z0-9' '_').wim"
  # shellcheck disable=SC2086
  wimlib-imagex capture "$src" "$corpus/$name" $opts >/dev/null
done
# Solid chunks of 16 MiB, large enough to be decoded and written by one
# thread per core, with a file running across them: 29 MB of zeros and a
# little text, under 2 KB as a WIM.
big="$work/big"
mkdir -p "$big/dir"
head -c 20000000 /dev/zero > "$big/zeros.bin"
head -c 9000000 /dev/zero > "$big/dir/zeros2.bin"
seq 1 200 > "$big/dir/n.txt"
printf 'hello world\n' > "$big/a.txt"
wimlib-imagex capture "$big" "$corpus/seed-solid-16M.wim" --solid --solid-chunk-size=16M >/dev/null
# Without solid resources, files of 256 KiB or more are taken by the cores
# one at a time and written 256 KiB at a time while other files are left:
# 1.9 MB of zeros (one file with a copy) and a little text, under 64 KB as
# a WIM.
groups="$work/groups"
mkdir -p "$groups/dir"
head -c 1000000 /dev/zero > "$groups/zeros.bin"
head -c 300000 /dev/zero > "$groups/dir/a.bin"
head -c 310000 /dev/zero > "$groups/dir/b.bin"
cp "$groups/dir/a.bin" "$groups/a copy.bin"
seq 1 300 > "$groups/dir/n.txt"
printf 'hello world\n' > "$groups/a.txt"
for codec in XPRESS LZX; do
  wimlib-imagex capture "$groups" "$corpus/seed-groups-$codec.wim" --compress="$codec" >/dev/null
done
cd "$root/fuzz"
RUSTC_BOOTSTRAP=1 cargo fuzz run wim_reader "$corpus" -- -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048
