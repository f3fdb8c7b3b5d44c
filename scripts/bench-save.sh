#!/usr/bin/env bash
# Save-ContainerImage throughput against curl on the same file from a loopback
# HTTP server (the test server, built as the `serve-folder` example).
#
#   scripts/bench-save.sh [SIZE_MIB] [ROUNDS]      (defaults: 1024 MiB, 5 rounds)
#
# Each round runs curl and Save-ContainerImage (SHA-256 verified, fsync and
# rename included) once each, alternately, under hyperfine. The served file and
# both outputs live in a temporary folder on tmpfs (/dev/shm) when there is one,
# so the disk is not measured. Set BENCH_DIR to choose another place.
# Prints a Markdown block for docs/BENCHMARKS.md.
set -euo pipefail

size_mib=${1:-1024}
rounds=${2:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
for tool in curl hyperfine jq sha256sum; do
    command -v "$tool" >/dev/null || { echo "bench-save: needs $tool (apt-get install -y $tool)" >&2; exit 1; }
done

cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin containerimage --example serve-folder
bin="$root/target/release/containerimage"
serve="$root/target/release/examples/serve-folder"

base=${BENCH_DIR:-$( [ -d /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}" )}
work=$(mktemp -d "$base/bench-save.XXXXXX")
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/served" "$work/out" "$work/home"

head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/served/image.wim"
size=$(stat -c %s "$work/served/image.wim")
sha=$(sha256sum "$work/served/image.wim" | cut -d' ' -f1)

"$serve" "$work/served" > "$work/addr" &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.1; done
addr=$(head -n1 "$work/addr")
url="http://$addr/image.wim"

jq -cn --arg url "$url" --arg sha "$sha" --argjson size "$size" \
    '{Name:"Bench",Version:"1.0",Source:"Bench",Size:$size,Sha256:$sha,Location:$url}' > "$work/object.json"

curl_cmd="curl -sS --fail -o $work/out/curl.wim $url"
save_cmd="CONTAINERIMAGE_HOME=$work/home $bin Save-ContainerImage -Destination $work/out/save.wim -Force < $work/object.json > /dev/null 2>&1"

# One untimed run of each: checks both work and warms the page cache.
eval "$curl_cmd"
eval "$save_cmd"
cmp -s "$work/out/curl.wim" "$work/served/image.wim" || { echo "bench-save: curl's copy differs" >&2; exit 1; }
cmp -s "$work/out/save.wim" "$work/served/image.wim" || { echo "bench-save: Save's copy differs" >&2; exit 1; }

for r in $(seq "$rounds"); do
    hyperfine --style none --runs 1 --prepare "rm -f $work/out/curl.wim $work/out/save.wim" \
        --export-json "$work/round-$r.json" \
        -n curl "$curl_cmd" -n Save-ContainerImage "$save_cmd" > /dev/null
done

jq -s --argjson size "$size" --arg rounds "$rounds" -r '
  def median: sort | if length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
  [ .[].results[] ] as $all
  | ($all | map(select(.command == "curl") | .mean) ) as $c
  | ($all | map(select(.command == "Save-ContainerImage") | .mean)) as $s
  | ($c | median) as $cm | ($s | median) as $sm
  | "| tool | median s | MiB/s | runs (s) |",
    "|---|---|---|---|",
    "| curl | \($cm * 1000 | round / 1000) | \($size / 1048576 / $cm | round) | \($c | map(. * 1000 | round / 1000) | join(", ")) |",
    "| Save-ContainerImage | \($sm * 1000 | round / 1000) | \($size / 1048576 / $sm | round) | \($s | map(. * 1000 | round / 1000) | join(", ")) |",
    "",
    "Throughput ratio Save / curl (median): \($cm / $sm * 100 | round / 100)"
' "$work"/round-*.json

echo
echo "File: $size bytes; $rounds rounds, curl and Save alternately; output on $(df --output=fstype "$work" | tail -n1)."
echo "Machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(uname -sr); curl $(curl --version | head -n1 | cut -d' ' -f2)."
