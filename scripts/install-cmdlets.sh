#!/usr/bin/env bash
# Links every cmdlet name in DIR to the containerimage binary, so that
# `Find-ContainerImage -Name x` works like `containerimage Find-ContainerImage -Name x`.
# Usage: scripts/install-cmdlets.sh DIR [BINARY]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:?usage: scripts/install-cmdlets.sh DIR [BINARY]}
bin=${2:-$here/target/release/containerimage}
if [ ! -x "$bin" ]; then
  echo "install-cmdlets: $bin is not an executable; build it first with: cargo build --release" >&2
  exit 1
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
mkdir -p "$dir"
count=0
while IFS= read -r name; do
  ln -sfn "$bin" "$dir/$name"
  count=$((count + 1))
done < <("$bin" --list-cmdlets)
echo "linked $count cmdlets in $dir to $bin"
