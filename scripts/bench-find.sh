#!/usr/bin/env bash
# Benchmark: Find-ContainerImage over a generated 10,000-entry feed, read
# from a local file and over HTTP from a loopback server.
#
# Usage: scripts/bench-find.sh [BINARY]
#   BINARY defaults to target/release/containerimage (built if missing).
# Needs: hyperfine, python3 (the HTTP server), xmllint (libxml2-utils) and
# curl for the reference timings. Prints hyperfine's tables; the figures go
# in docs/BENCHMARKS.md under "## Find-ContainerImage".
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$root/target/release/containerimage}"
entries="${ENTRIES:-10000}"
for tool in hyperfine python3 xmllint curl; do
    command -v "$tool" >/dev/null || { echo "bench-find: needs $tool" >&2; exit 1; }
done
if [ ! -x "$bin" ]; then
    (cd "$root" && cargo build --release)
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# 1,000 image names with 10 versions each.
python3 - "$work/feed/feed.xml" "$entries" <<'PY'
import hashlib, os, sys
path, count = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as f:
    f.write('<?xml version="1.0" encoding="utf-8"?>\n')
    f.write('<ContainerImageFeed xmlns="urn:containerimage:feed:1">\n')
    for i in range(count):
        name = "Image%04d" % (i // 10)
        version = "10.0.%d.%d" % (14300 + i % 10, i)
        sha = hashlib.sha256(str(i).encode()).hexdigest()
        f.write("  <Image>\n")
        f.write("    <Name>%s</Name>\n    <Version>%s</Version>\n" % (name, version))
        f.write("    <Publisher>CN=Microsoft</Publisher>\n")
        f.write("    <Description>Container OS image %s version %s</Description>\n" % (name, version))
        f.write("    <Architecture>amd64</Architecture>\n")
        f.write("    <Size>%d</Size>\n    <Sha256>%s</Sha256>\n" % (260046848 + i, sha))
        f.write("    <Location>%s-%s.wim</Location>\n" % (name, version.replace(".", "-")))
        f.write("    <Location>https://mirror.example.com/%s-%s.wim</Location>\n" % (name, version.replace(".", "-")))
        f.write("  </Image>\n")
    f.write("</ContainerImageFeed>\n")
PY
feed="$work/feed/feed.xml"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
(cd "$work/feed" && exec python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1) &
server_pid=$!
url="http://127.0.0.1:$port/feed.xml"
for _ in $(seq 50); do curl -sf -o /dev/null "$url" && break; sleep 0.1; done

export CONTAINERIMAGE_HOME="$work/home"
"$bin" Register-PackageSource -Name File -Location "$feed" >/dev/null
"$bin" Register-PackageSource -Name Http -Location "$url" >/dev/null

echo "load average:$(cut -d" " -f1-3 /proc/loadavg)"
echo "machine: $(uname -srm), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "feed: $entries entries, $(du -h "$feed" | cut -f1)"
echo "binary: $bin"
for source in File Http; do
    hyperfine -N --warmup 3 --min-runs 30 --style basic --export-markdown "$work/$source.md" \
        -n "$source: Find-ContainerImage (1,000 newest)" "$bin Find-ContainerImage -Source $source" \
        -n "$source: Find-ContainerImage Image0500" "$bin Find-ContainerImage Image0500 -Source $source" \
        -n "$source: Find-ContainerImage -AllVersions (10,000)" "$bin Find-ContainerImage -AllVersions -Source $source"
    cat "$work/$source.md"
done
# References on the same feed: a C XML parser reading the file, curl fetching it.
hyperfine -N --warmup 3 --min-runs 30 --style basic --export-markdown "$work/ref.md" \
    -n "xmllint --noout (file)" "xmllint --noout $feed" \
    -n "curl (HTTP fetch only)" "curl -sf -o /dev/null $url"
cat "$work/ref.md"
