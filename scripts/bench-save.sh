#!/usr/bin/env bash
# Save-ContainerImage throughput against curl on the same file, served by
# nginx on 127.0.0.1 (sendfile, one worker, no access log).
#
#   scripts/bench-save.sh [SIZE_MIB] [ROUNDS]      (defaults: 1024 MiB, 5 rounds)
#
# 1. The server alone: curl into /dev/null, three times. This is the most
#    either tool could reach; it has to be well above both, or the server,
#    not the tools, is measured.
# 2. Each round runs curl (-o FILE) and Save-ContainerImage -Destination FILE
#    (SHA-256 verified, fsync and rename included) once each under hyperfine,
#    the order alternating from round to round. After every round both
#    outputs are compared with the served file.
# The served file and both outputs live on tmpfs (/dev/shm) when there is
# one, so the disk is not measured; BENCH_DIR chooses another place.
# Prints a Markdown block for docs/BENCHMARKS.md, with the load average.
set -euo pipefail

size_mib=${1:-1024}
rounds=${2:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
need() { command -v "$1" >/dev/null || { echo "bench-save: needs $1 (apt-get install -y $2)" >&2; exit 1; }; }
need curl curl
need hyperfine hyperfine
need jq jq
need python3 python3
[ -x /usr/sbin/nginx ] || need nginx nginx-light
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin containerimage
bin="$root/target/release/containerimage"

base=${BENCH_DIR:-$( [ -d /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}" )}
work=$(mktemp -d "$base/bench-save.XXXXXX")
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/served" "$work/out" "$work/home" "$work/nginx"
# nginx's worker runs as an unprivileged user when started as root.
chmod 755 "$work" "$work/served"

head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/served/image.wim"
size=$(stat -c %s "$work/served/image.wim")
sha=$(sha256sum "$work/served/image.wim" | cut -d' ' -f1)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 64; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    types { application/octet-stream wim; }
    server {
        listen 127.0.0.1:$port;
        root $work/served;
    }
}
EOF
"$nginx_bin" -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" &
server_pid=$!
url="http://127.0.0.1:$port/image.wim"
ready=
for _ in $(seq 100); do
    if curl -sf -o /dev/null -r 0-0 "$url"; then ready=1; break; fi
    sleep 0.1
done
[ -n "$ready" ] || { echo "bench-save: nginx does not serve $url:" >&2; cat "$work/nginx/error.log" >&2; exit 1; }

jq -cn --arg url "$url" --arg sha "$sha" --argjson size "$size" \
    '{Name:"Bench",Version:"1.0",Source:"Bench",Size:$size,Sha256:$sha,Location:$url}' > "$work/object.json"

curl_cmd="curl -sS --fail -o $work/out/curl.wim $url"
save_cmd="CONTAINERIMAGE_HOME=$work/home $bin Save-ContainerImage -Destination $work/out/save.wim -Force < $work/object.json > /dev/null 2>&1"
check_outputs() {
    cmp -s "$work/out/curl.wim" "$work/served/image.wim" || { echo "bench-save: curl's copy differs from the served file" >&2; exit 1; }
    cmp -s "$work/out/save.wim" "$work/served/image.wim" || { echo "bench-save: Save's copy differs from the served file" >&2; exit 1; }
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# The server alone (and the page cache warmed).
hyperfine --style none --warmup 1 --runs 3 --export-json "$work/server.json" \
    -n "server alone (curl to /dev/null)" "curl -sS --fail -o /dev/null $url" > /dev/null

# One untimed run of each: both work and agree.
eval "$curl_cmd"
eval "$save_cmd"
check_outputs

for r in $(seq "$rounds"); do
    # hyperfine runs one --prepare per command, in the commands' order:
    # each removes only that tool's output, so both are there to compare.
    curl_prep="rm -f $work/out/curl.wim"
    save_prep="rm -f $work/out/save.wim"
    if [ $((r % 2)) -eq 1 ]; then
        order=(--prepare "$curl_prep" --prepare "$save_prep" -n curl "$curl_cmd" -n Save-ContainerImage "$save_cmd")
    else
        order=(--prepare "$save_prep" --prepare "$curl_prep" -n Save-ContainerImage "$save_cmd" -n curl "$curl_cmd")
    fi
    hyperfine --style none --runs 1 --export-json "$work/round-$r.json" "${order[@]}" > /dev/null
    check_outputs
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

jq -s --argjson size "$size" -r --slurpfile server "$work/server.json" '
  def median: sort | if length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
  def r3: . * 1000 | round / 1000;
  def mibs($s): $size / 1048576 / $s | round;
  [ .[].results[] ] as $all
  | ($all | map(select(.command == "curl"))) as $c
  | ($all | map(select(.command == "Save-ContainerImage"))) as $s
  | ($c | map(.mean) | median) as $cm | ($s | map(.mean) | median) as $sm
  | ($server[0].results[0].median) as $srv
  | "| tool | median s | MiB/s | CPU user + sys s (median) | runs (s) |",
    "|:---|---:|---:|---:|:---|",
    "| nginx alone (curl to /dev/null, 3 runs) | \($srv | r3) | \(mibs($srv)) | | |",
    "| curl -o FILE | \($cm | r3) | \(mibs($cm)) | \($c | map(.user) | median | r3) + \($c | map(.system) | median | r3) | \($c | map(.mean | r3) | join(", ")) |",
    "| Save-ContainerImage -Destination FILE | \($sm | r3) | \(mibs($sm)) | \($s | map(.user) | median | r3) + \($s | map(.system) | median | r3) | \($s | map(.mean | r3) | join(", ")) |",
    "",
    "Throughput ratio Save / curl (median): \($cm / $sm * 100 | round / 100)"
' "$work"/round-*.json

echo
echo "File: $size bytes; $rounds rounds, curl and Save alternating in order; both outputs compared with the served file after every round; output on $(df --output=fstype "$work" | tail -n1)."
echo "Server: $("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //'), one worker, sendfile, on 127.0.0.1."
echo "Machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(uname -sr); curl $(curl --version | head -n1 | cut -d' ' -f2)."
echo "Load average (1, 5, 15 min): $load_before before, $load_after after; $(date -u '+%Y-%m-%d %H:%M UTC')."
