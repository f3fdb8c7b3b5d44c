#!/usr/bin/env bash
# Benchmark: Submit-ContainerImage (push) and Request-ContainerImage (pull)
# of an installed ~300 MB image against a loopback docker-registry, against
# skopeo doing the same work (DESIGN §6: at most 0.8 times skopeo's time):
#
# - push: ours exports (gzip, all cores) and uploads; the reference is
#   `skopeo copy --dest-compress` from an uncompressed OCI layout of the
#   image (compress and upload, what `docker push` does);
# - pull: ours downloads, verifies and installs into a fresh store; the
#   reference is `skopeo copy` to an OCI layout plus `tar -xzf` of the layer.
#
# The registry's storage is emptied before every push, so nothing is
# skipped or mounted. The two commands run alternately (hyperfine, RUNS
# each after a warm-up); medians and the ratio are printed as Markdown.
#
# Usage: scripts/bench-registry.sh [--size MB] [--runs N]
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
size=300
runs=3
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=${2:?--size needs a number}; shift 2 ;;
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    *) sed -n 's/^# \{0,1\}//p' "$0" | sed -n '/^Usage/p' >&2; exit 2 ;;
  esac
done
for tool in wimlib-imagex:wimtools hyperfine:hyperfine python3:python3 jq:jq bc:bc skopeo:skopeo docker-registry:docker-registry; do
  command -v "${tool%%:*}" >/dev/null || { echo "needs ${tool%%:*}: apt-get install -y ${tool##*:}" >&2; exit 1; }
done

cores=$(nproc)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "machine: $cores CPUs ($cpu), $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
(cd "$here" && cargo build --release --quiet)
bin=$here/target/release/containerimage

work=$(mktemp -d /dev/shm/bench-registry.XXXXXX)
registry_pid=
cleanup() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

python3 "$here/scripts/gen-bench-tree.py" "$work/tree" "$size" >/dev/null
wimlib-imagex capture "$work/tree" "$work/Bench-1-0.wim" Bench --compress=XPRESS >/dev/null
rm -rf "$work/tree"
home=$work/home
CONTAINERIMAGE_HOME=$home "$bin" Install-ContainerOSImage "$work/Bench-1-0.wim" >/dev/null
rm -f "$work/Bench-1-0.wim"
# The reference's input: the image as an uncompressed OCI layout.
CONTAINERIMAGE_HOME=$home "$bin" Export-ContainerImage bench:1.0.0.0 -Path "$work/plain" -Format OciDirectory -Compression None >/dev/null

cat > "$work/registry.yml" <<YAML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $work/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:0
  secret: bench
YAML
docker-registry serve "$work/registry.yml" >/dev/null 2> "$work/registry.log" &
registry_pid=$!
for _ in $(seq 100); do
  addr=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$work/registry.log" | head -n 1)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { echo "docker-registry did not start:" >&2; cat "$work/registry.log" >&2; exit 1; }
echo "registry: $addr" >&2

hyperfine --runs "$runs" --warmup 1 --export-json "$work/push.json" \
  --prepare "rm -rf '$work/data'" \
  -n containerimage "CONTAINERIMAGE_HOME='$home' '$bin' Submit-ContainerImage bench:1.0.0.0 '$addr/bench/image:1' >/dev/null" \
  -n skopeo "skopeo copy -q --dest-compress --dest-tls-verify=false 'oci:$work/plain:1.0.0.0' 'docker://$addr/bench/image:1'" >&2

# The image to pull: ours, as pushed (gzip).
rm -rf "$work/data"
CONTAINERIMAGE_HOME=$home "$bin" Submit-ContainerImage bench:1.0.0.0 "$addr/bench/image:1" >/dev/null
hyperfine --runs "$runs" --warmup 1 --export-json "$work/pull.json" \
  --prepare "rm -rf '$work/home2' '$work/skpull' '$work/skx' && mkdir '$work/skx'" \
  -n containerimage "CONTAINERIMAGE_HOME='$work/home2' '$bin' Request-ContainerImage '$addr/bench/image:1' >/dev/null 2>&1" \
  -n skopeo "skopeo copy -q --override-os windows --src-tls-verify=false 'docker://$addr/bench/image:1' 'oci:$work/skpull:1' && tar -xzf \"\$(ls -S '$work'/skpull/blobs/sha256/* | head -n 1)\" -C '$work/skx' --warning=no-unknown-keyword" >&2

median() { jq -r ".results[] | select(.command == \"$2\") | .median" "$1"; }
cpu_s() { jq -r ".results[] | select(.command == \"$2\") | (.user + .system)" "$1"; }
echo
echo "| what | ours (s) | skopeo (s) | ours ÷ skopeo | CPU ours / skopeo (s) |"
echo "|---|---|---|---|---|"
for what in push pull; do
  o=$(median "$work/$what.json" containerimage)
  r=$(median "$work/$what.json" skopeo)
  printf '| %s, %s MB tree, loopback docker-registry | %.3f | %.3f | %.2f | %.2f / %.2f |\n' \
    "$what" "$size" "$o" "$r" "$(echo "$o / $r" | bc -l)" \
    "$(cpu_s "$work/$what.json" containerimage)" "$(cpu_s "$work/$what.json" skopeo)"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
