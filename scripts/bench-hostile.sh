#!/usr/bin/env bash
# Benchmark: time and peak memory of `containerimage` on hostile and
# blow-up inputs (DESIGN.md §6: at most 128 MiB for non-solid WIMs whatever
# their metadata or named streams hold; hostile input never balloons or hangs).
#
# Each case is one function `case_<name>` that generates its input in the work
# folder (kept between runs with --workdir) and calls `measure` with the
# command to run; `measure` runs it under `/usr/bin/time -v` with a time limit
# and records wall time, peak RSS and exit status. At the end a Markdown table
# is printed, with the machine, its load and the command line.
#
# Cases:
#   deep-xml        a WIM whose XML data nests 800,000 elements (6.4 MB of XML):
#                   Get-WindowsImage, and Find-ContainerImage on a folder source
#                   holding it
#   huge-metadata   a 1.4 MB LZX WIM whose metadata resource is 1 GiB of zeros
#                   (with their right SHA-1): Expand-WindowsImage
#   named-streams   an uncompressed WIM of 160 files with a 1 MiB named stream
#                   each, plus 20,000 junctions: Expand-WindowsImage -MetadataPath
#   big-metadata    a WIM of 160,000 files with 100-character names (a metadata
#                   resource of about 46 MiB, near the 48 MiB limit):
#                   Expand-WindowsImage -MetadataPath
#   small-entries   a WIM of 420,000 files with names of at most 3 characters
#                   (about the most entries a metadata resource under the limit
#                   can hold): Expand-WindowsImage -MetadataPath
#   big-feed        an XML feed just under the 256 MiB limit, 96,000 images
#                   with 2.5 KB descriptions: Find-ContainerImage on it
#   tiny-feed       an XML feed just under the limit made of 1.15 million
#                   tiny images (over the 100,000-image cap): Find-ContainerImage
#   long-line       a 700 MB line on standard input: Save-ContainerImage
#
# Usage: scripts/bench-hostile.sh [--cases LIST] [--binary PATH] [--timeout S]
#                                 [--workdir DIR]
#   --cases LIST   comma-separated subset of the cases (default: all)
#   --binary PATH  the containerimage binary to measure (default: build the
#                  release binary of this checkout)
#   --timeout S    seconds before a command is stopped and reported as a hang
#                  (default 300)
#   --workdir DIR  keep the generated inputs in DIR and reuse them (default: a
#                  temporary folder in /dev/shm, removed at the end)
# Needs wimlib-imagex (wimtools), python3, /usr/bin/time (time), timeout.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
all_cases=deep-xml,huge-metadata,named-streams,big-metadata,small-entries,big-feed,tiny-feed,long-line
cases=$all_cases
binary=
limit=300
workdir=

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" | sed -n '/^Usage/,$p'; }
die() { echo "bench-hostile: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    --cases) cases=${2:?--cases needs a list}; shift 2 ;;
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --timeout) limit=${2:?--timeout needs seconds}; shift 2 ;;
    --workdir) workdir=${2:?--workdir needs a folder}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ $limit =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds"

need() { # tool, Debian package
  command -v "$1" >/dev/null 2>&1 || die "$1 is missing; install it with: apt-get install -y $2"
}
need wimlib-imagex wimtools
need python3 python3
need timeout coreutils
[ -x /usr/bin/time ] || die "/usr/bin/time is missing; install it with: apt-get install -y time"

if [ -z "$binary" ]; then
  echo "bench-hostile: cargo build --release" >&2
  (cd "$here" && cargo build --release --quiet) || die "cargo build --release failed"
  binary=$here/target/release/containerimage
fi
[ -x "$binary" ] || die "$binary is not an executable"

if [ -n "$workdir" ]; then
  mkdir -p "$workdir"
  work=$(cd "$workdir" && pwd)
  keep=1
else
  work=$(mktemp -d /dev/shm/bench-hostile.XXXXXX)
  keep=0
fi
cleanup() {
  rm -rf "$work/out" "$work/home" "$work/meta.json"
  if [ "$keep" = 0 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rows=()

# fresh_home — an empty CONTAINERIMAGE_HOME and output folder for the next command.
fresh_home() {
  rm -rf "$work/out" "$work/home" "$work/meta.json"
  mkdir -p "$work/home"
}

# measure CASE INPUT COMMAND... — runs COMMAND under /usr/bin/time -v with the
# time limit, in the current home (see fresh_home), and records one table row.
measure() {
  local name=$1 input=$2
  shift 2
  local log=$work/time.log status=0
  CONTAINERIMAGE_HOME=$work/home timeout --signal=KILL "$limit" \
    /usr/bin/time -v -o "$log" "$@" >"$work/stdout.log" 2>"$work/stderr.log" || status=$?
  local wall rss
  wall=$(sed -n 's/^[[:space:]]*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$log" 2>/dev/null || true)
  rss=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$log" 2>/dev/null || true)
  if [ "$status" = 137 ] || [ -z "$wall" ]; then
    wall="> ${limit} s (stopped)"
    rss="?"
  else
    wall=$(awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f s", s }' <<<"$wall")
    rss=$(awk '{ printf "%.0f MiB", $1 / 1024 }' <<<"$rss")
  fi
  local shown=("$@")
  shown[0]=containerimage
  local why
  why=$(grep -v -e '^WARNING' -e "^Run 'containerimage Get-Help" "$work/stderr.log" | tail -n 1 | sed 's/^ *caused by: //' | cut -c1-110 || true)
  rows+=("| $name | $input | \`${shown[*]//$work/…}\` | $status | $wall | $rss | ${why//|/\\|} |")
  echo "bench-hostile: $name: exit $status, $wall, $rss" >&2
}

# A small uncompressed WIM made by wimlib, as a base to patch.
base_wim() {
  local wim=$work/base.wim
  if [ ! -f "$wim" ]; then
    rm -rf "$work/base-src"
    mkdir -p "$work/base-src/dir"
    echo hello >"$work/base-src/dir/file.txt"
    wimlib-imagex capture "$work/base-src" "$wim" --compress=none >/dev/null
  fi
  echo "$wim"
}

case_deep_xml() {
  local wim=$work/deep-xml/Deep-1-0-0-0.wim
  if [ ! -f "$wim" ]; then
    mkdir -p "$work/deep-xml"
    python3 - "$(base_wim)" "$wim" <<'EOF'
import struct, sys
src, dst = sys.argv[1], sys.argv[2]
b = bytearray(open(src, "rb").read())
depth = 800_000
xml = '<WIM><IMAGE INDEX="1"><NAME>deep</NAME>' + "<A>x" * depth + "</A>" * depth + "</IMAGE></WIM>"
data = b"\xff\xfe" + xml.encode("utf-16-le")
at = len(b)
b += data
flags = b[0x48 + 7]
struct.pack_into("<QQQ", b, 0x48, len(data) | (flags << 56), at, len(data))
open(dst, "wb").write(b)
EOF
  fi
  fresh_home
  measure deep-xml "$(du -k "$wim" | cut -f1) KiB WIM, 800,000 levels" \
    "$binary" Get-WindowsImage -ImagePath "$wim"
  fresh_home
  CONTAINERIMAGE_HOME=$work/home "$binary" Register-PackageSource -Name deep \
    -Location "$work/deep-xml" >/dev/null
  measure deep-xml "the same file in a folder source" "$binary" Find-ContainerImage
}

case_huge_metadata() {
  local wim=$work/huge-metadata.wim
  if [ ! -f "$wim" ]; then
    rm -rf "$work/zeros-src"
    mkdir -p "$work/zeros-src"
    truncate -s 1G "$work/zeros-src/zeros"
    wimlib-imagex capture "$work/zeros-src" "$wim.tmp" --compress=LZX >/dev/null
    rm -rf "$work/zeros-src"
    python3 - "$wim.tmp" <<'EOF'
import struct, sys
path = sys.argv[1]
b = bytearray(open(path, "rb").read())
size = struct.unpack_from("<Q", b, 0x30)[0] & 0x00FFFFFFFFFFFFFF
table = struct.unpack_from("<Q", b, 0x38)[0]
entries = [table + i for i in range(0, size, 50)]
meta = next(e for e in entries if b[e + 7] & 2)
zeros = next(e for e in entries if struct.unpack_from("<Q", b, e + 16)[0] == 1 << 30)
b[meta:meta + 50] = b[zeros:zeros + 50]
b[meta + 7] |= 2
open(path, "wb").write(b)
EOF
    mv "$wim.tmp" "$wim"
  fi
  fresh_home
  measure huge-metadata "$(du -k "$wim" | cut -f1) KiB WIM, metadata declares 1 GiB" \
    "$binary" Expand-WindowsImage -ImagePath "$wim" -Index 1 -ApplyPath "$work/out"
}

# An uncompressed WIM written here: FILES files with a named stream of
# STREAM bytes each (distinct contents) and JUNCTIONS junctions.
write_streams_wim() {
  python3 - "$@" <<'EOF'
import hashlib, os, struct, sys
path, files, stream, junctions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def u16(s): return s.encode("utf-16-le")
def a8(n): return (n + 7) & ~7
blobs, order = {}, []
def blob(data):
    if not data: return b"\0" * 20
    h = hashlib.sha1(data).digest()
    if h not in blobs:
        blobs[h] = [data, 0]; order.append(h)
    blobs[h][1] += 1
    return h
FT = 132224642450000000
def dentry(name, attrs, data=b"", streams=(), reparse=None):
    n = u16(name)
    length = a8(102 + (len(n) + 2 if n else 0))
    d = bytearray(length)
    struct.pack_into("<QII", d, 0, length, attrs, 0xFFFFFFFF)
    struct.pack_into("<QQQ", d, 40, FT, FT, FT)
    unnamed = reparse[1] if reparse else data
    extra = []
    if streams:
        extra.append((b"", blob(unnamed)))
        extra += [(u16(sn), blob(sd)) for sn, sd in streams]
    else:
        d[64:84] = blob(unnamed)
    if reparse:
        struct.pack_into("<I", d, 88, reparse[0])
    struct.pack_into("<HHH", d, 96, len(extra), 0, len(n))
    d[102:102 + len(n)] = n
    for sn, h in extra:
        el = a8(38 + (len(sn) + 2 if sn else 0))
        e = bytearray(el)
        struct.pack_into("<Q", e, 0, el)
        e[16:36] = h
        struct.pack_into("<H", e, 36, len(sn))
        e[38:38 + len(sn)] = sn
        d += e
    return d
def junction_data(target):
    t = u16(target)
    return struct.pack("<HHHH", 0, len(t), len(t) + 2, len(t)) + t + b"\0\0" + t + b"\0\0"
meta = bytearray(struct.pack("<II", 8, 0))
root = len(meta)
meta += dentry("", 0x10) + b"\0" * 8
struct.pack_into("<Q", meta, root + 16, len(meta))
for i in range(files):
    meta += dentry(f"f{i:05}", 0x20, b"file %d\n" % i,
                   streams=[("ads", hashlib.shake_256(b"%d" % i).digest(stream))])
for i in range(junctions):
    meta += dentry(f"j{i:05}", 0x410, reparse=(0xA0000003, junction_data(f"\\??\\C:\\target\\{i:05}")))
meta += b"\0" * 8
out = bytearray(208)
table = bytearray()
def reshdr(stored, flags, off, size): return struct.pack("<QQQ", stored | (flags << 56), off, size)
for h in order:
    data, refs = blobs[h]
    table += reshdr(len(data), 0, len(out), len(data)) + struct.pack("<HI", 1, refs) + h
    out += data
table += reshdr(len(meta), 2, len(out), len(meta)) + struct.pack("<HI", 1, 1) + hashlib.sha1(meta).digest()
out += meta
table_at = len(out)
out += table
xml = b"\xff\xfe" + u16('<WIM><IMAGE INDEX="1"><NAME>streams</NAME></IMAGE></WIM>')
xml_at = len(out)
out += xml
h = b"MSWIM\0\0\0" + struct.pack("<III I", 208, 0x10D00, 0, 0) + os.urandom(16) + struct.pack("<HHI", 1, 1, 1)
h += reshdr(len(table), 2, table_at, len(table)) + reshdr(len(xml), 2, xml_at, len(xml))
out[:len(h)] = h
open(path, "wb").write(out)
EOF
}

case_named_streams() {
  local wim=$work/named-streams.wim
  [ -f "$wim" ] || write_streams_wim "$wim" 160 $((1 << 20)) 20000
  fresh_home
  measure named-streams "$(du -m "$wim" | cut -f1) MB WIM, 160 MiB of named streams, 20,000 junctions" \
    "$binary" Expand-WindowsImage -ImagePath "$wim" -Index 1 -ApplyPath "$work/out" \
    -MetadataPath "$work/meta.json"
}

# many_files_wim WIM FOLDERS FILES NAME_LENGTH — FOLDERS folders of FILES empty
# files each, named with NAME_LENGTH characters, captured by wimlib (LZX).
many_files_wim() {
  local wim=$1
  [ -f "$wim" ] && return 0
  rm -rf "$work/many-src"
  python3 - "$work/many-src" "$2" "$3" "$4" <<'EOF'
import os, string, sys
root, folders, files, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
alphabet = string.ascii_letters + string.digits
def short(n):
    s = ""
    while True:
        s = alphabet[n % len(alphabet)] + s
        n //= len(alphabet)
        if n == 0:
            return s
for d in range(folders):
    folder = os.path.join(root, short(d))
    os.makedirs(folder)
    for f in range(files):
        name = short(f) if length <= 3 else (f"{d:03}-{f:04}-" + "long-file-name-" * 8)[:length]
        open(os.path.join(folder, name), "wb").close()
EOF
  wimlib-imagex capture "$work/many-src" "$wim.tmp" --compress=LZX >/dev/null
  rm -rf "$work/many-src"
  mv "$wim.tmp" "$wim"
}

# metadata_mib WIM — the uncompressed size of image 1's metadata resource, in MiB.
metadata_mib() {
  python3 - "$1" <<'EOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
size = struct.unpack_from("<Q", b, 0x30)[0] & 0x00FFFFFFFFFFFFFF
table = struct.unpack_from("<Q", b, 0x38)[0]
for e in range(table, table + size, 50):
    if b[e + 7] & 2:
        print(f"{struct.unpack_from('<Q', b, e + 16)[0] / 1048576:.1f}")
        break
EOF
}

case_big_metadata() {
  local wim=$work/big-metadata-160k.wim
  many_files_wim "$wim" 160 1000 100
  fresh_home
  measure big-metadata "160,000 files with 100-character names (metadata $(metadata_mib "$wim") MiB)" \
    "$binary" Expand-WindowsImage -ImagePath "$wim" -Index 1 -ApplyPath "$work/out" \
    -MetadataPath "$work/meta.json"
}

case_small_entries() {
  local wim=$work/small-entries.wim
  many_files_wim "$wim" 1000 420 3
  fresh_home
  measure small-entries "420,000 files with names of 1-3 characters (metadata $(metadata_mib "$wim") MiB)" \
    "$binary" Expand-WindowsImage -ImagePath "$wim" -Index 1 -ApplyPath "$work/out" \
    -MetadataPath "$work/meta.json"
}

# write_feed FILE IMAGES DESCRIPTION_BYTES — an XML feed of IMAGES entries.
write_feed() {
  [ -f "$1" ] && return 0
  python3 - "$1" "$2" "$3" <<'PY'
import sys
path, n, desc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sha = "ab" * 32
with open(path, "w") as f:
    f.write('<?xml version="1.0" encoding="utf-8"?>\n<ContainerImageFeed xmlns="urn:containerimage:feed:1">\n')
    text = "d" * desc
    for i in range(n):
        f.write(f"<Image><Name>Image{i}</Name><Version>1.0.{i}</Version><Description>{text}</Description>"
                f"<Size>1</Size><Sha256>{sha}</Sha256><Location>Image{i}.wim</Location></Image>\n")
    f.write("</ContainerImageFeed>\n")
PY
}

case_big_feed() {
  local feed=$work/big-feed.xml
  write_feed "$feed" 96000 2500
  fresh_home
  measure big-feed "XML feed of $(du -m "$feed" | cut -f1) MB, 96,000 images" \
    "$binary" Find-ContainerImage 'zz*' -Source "$feed"
}

case_tiny_feed() {
  local feed=$work/tiny-feed.xml
  write_feed "$feed" 1150000 0
  fresh_home
  measure tiny-feed "XML feed of $(du -m "$feed" | cut -f1) MB, 1.15 million images" \
    "$binary" Find-ContainerImage 'zz*' -Source "$feed"
}

case_long_line() {
  local line=$work/long-line.txt
  [ -f "$line" ] || { head -c 700000000 /dev/zero | tr '\0' 'x' >"$line"; echo >>"$line"; }
  fresh_home
  mkdir -p "$work/out"
  measure long-line "a 700 MB line on standard input" \
    sh -c 'exec "$0" Save-ContainerImage -Path "$1" <"$2"' "$binary" "$work/out" "$line"
}

IFS=, read -r -a case_list <<<"$cases"
for c in "${case_list[@]}"; do
  fn=case_${c//-/_}
  declare -F "$fn" >/dev/null || die "unknown case '$c' (choose from $all_cases)"
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for c in "${case_list[@]}"; do
  "case_${c//-/_}"
done

echo
echo "Machine: $(nproc) CPUs ($cpu), $mem RAM, $(uname -sr); load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after."
echo "Binary: $("$binary" --version 2>/dev/null | head -n 1 || echo "$binary"); each command stopped after $limit s."
echo
echo "| case | input | command | exit | wall | peak RSS | the error's last cause |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
