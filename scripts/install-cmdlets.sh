#!/usr/bin/env bash
# Links `containerimage` and every cmdlet name in DIR to the containerimage
# binary, so that `Find-ContainerImage -Name x` works like
# `containerimage Find-ContainerImage -Name x`, and the `containerimage ...`
# commands that messages suggest work from DIR too.
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
# The binary's own name, unless DIR already holds the binary itself.
if [ "$bin" != "$(cd "$dir" && pwd)/containerimage" ]; then
  ln -sfn "$bin" "$dir/containerimage"
fi
while IFS= read -r name; do
  ln -sfn "$bin" "$dir/$name"
  count=$((count + 1))
done < <("$bin" --list-cmdlets)
echo "linked containerimage and $count cmdlets in $dir to $bin"
