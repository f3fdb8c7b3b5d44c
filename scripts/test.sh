#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs them.
#   scripts/test.sh [cargo test arguments...]
# As root on Debian it installs the missing system packages with apt-get
# (one `apt-get update`, then `apt-get install -y`); as another user it
# stops at once and names the command that installs them.
set -euo pipefail
cd "$(dirname "$0")/.."

# tool -> Debian package
declare -A package_of=(
    [wimlib-imagex]=wimtools
    [7zz]=7zip
    [unshare]=util-linux
    [setsid]=util-linux
    [setpriv]=util-linux
    [script]=bsdutils
    [python3]=python3
    [umoci]=umoci
    [skopeo]=skopeo
    [containerd]=containerd
    [docker-registry]=docker-registry
    [htpasswd]=apache2-utils
    [curl]=curl
    [ctr]=containerd
    [minisign]=minisign
)
missing=()
for tool in "${!package_of[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "the tests need: ${missing[*]}; install them with:" >&2
        echo "  sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi
command -v cargo >/dev/null || { echo "the tests need a Rust toolchain (cargo): https://rustup.rs" >&2; exit 1; }

cargo test --workspace "$@"
