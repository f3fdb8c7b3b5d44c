#!/usr/bin/env bash
# Runs one fuzz target of fuzz/ (cargo-fuzz layout) for SECONDS (default 600).
#   scripts/fuzz.sh xpress|lzx|... [SECONDS]
# Needs cargo-fuzz (`cargo install cargo-fuzz`); the stable toolchain works
# with RUSTC_BOOTSTRAP=1. The xpress and lzx corpora are seeded with the real
# wimlib chunks of provider/tests/fixtures/codec, the lzms corpus with those
# of provider/tests/fixtures/lzms (up to 256 KiB, the target's largest
# output). The feed_xml and feed_json corpora are seeded with the example
# feeds of manifests/examples, the pipeline corpus with Find and
# Get-ContainerImage objects as the cmdlets print them. Findings land in
# fuzz/artifacts/TARGET/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${1:?usage: fuzz.sh TARGET [SECONDS]}
seconds=${2:-600}
command -v cargo-fuzz >/dev/null || { echo "install cargo-fuzz: cargo install cargo-fuzz" >&2; exit 1; }
corpus="$root/fuzz/corpus/$target"
mkdir -p "$corpus"
if [ -z "$(ls -A "$corpus")" ]; then
  case "$target" in
  feed_xml) cp "$root"/manifests/examples/*.xml "$corpus"/ ;;
  feed_json) cp "$root"/manifests/examples/*.json "$corpus"/ ;;
  pipeline)
    printf '%s\n' \
      '{"Name":"NanoServer","Version":"10.0.14300.1010","Source":"Local","Description":"Nano Server","Publisher":"CN=Microsoft","Architecture":"amd64","Size":42,"Sha256":"3f1c000000000000000000000000000000000000000000000000000000000a9e","Location":"http://127.0.0.1/n.wim","Locations":["http://127.0.0.1/n.wim","file:///srv/n.wim"]}' \
      '' \
      '{"Name":"WindowsServerCore","Version":"1.0","Source":"Web","Size":null}' >"$corpus/find"
    printf '%s\r\n' '{"FullName":"CN=Microsoft_NanoServer_10.0.14300.1010","Id":"ab","Name":"NanoServer"}' >"$corpus/get" ;;
  *)
    python3 - "$target" "$root/provider/tests/fixtures/codec" "$corpus" <<'PY'
import glob, os, struct, sys
target, fixtures, corpus = sys.argv[1:]
# Window order above 32 KiB for the LZX fixtures, by file name.
orders = {"32k": 0, "64k": 1, "256k": 3, "1m": 5, "2m": 6}
for path in sorted(glob.glob(os.path.join(fixtures, f"{target}-*.bin"))):
    tag = os.path.basename(path)[len(target) + 1:-4]
    data = open(path, "rb").read()
    n = 0
    while data:
        size, packed = struct.unpack_from("<II", data)
        chunk, data = data[28:28 + packed], data[28 + packed:]
        if target == "xpress":
            head = struct.pack("<H", size - 1)
        else:
            head = bytes([orders[tag]]) + (size - 1).to_bytes(3, "little")
        open(os.path.join(corpus, f"{tag}-{n}"), "wb").write(head + chunk)
        n += 1
if target == "lzms":
    # Each fixture chunk, prefixed with its output size (u32, little-endian).
    lzms = os.path.join(os.path.dirname(fixtures), "lzms")
    for line in open(os.path.join(lzms, "chunks.txt")):
        name, size, _ = line.split()
        if int(size) <= 256 * 1024:
            chunk = open(os.path.join(lzms, name), "rb").read()
            open(os.path.join(corpus, name), "wb").write(int(size).to_bytes(4, "little") + chunk)
PY
  ;;
  esac
fi
cd "$root/fuzz"
RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$corpus" -- \
    -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=262144 -print_final_stats=1
