#!/usr/bin/env bash
# A first tour of containerimage, run after `cargo build --release`:
# registers the sample feed in manifests/sample as a trusted source, then
# Find -> Save -> Install -> Get -> Test -> Export (a docker load archive)
# -> Uninstall -> Import -> New-Container -> New-ContainerImage (a child
# image) -> history -> Export of two layers -> images -> rmi, printing each
# step.
#
# Uses $CONTAINERIMAGE_HOME when set, else a temporary home that is deleted
# at the end. Set CONTAINERIMAGE_BIN to use another binary.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
bin=${CONTAINERIMAGE_BIN:-$here/target/release/containerimage}
if [[ ! -x $bin ]]; then
  echo "No binary at $bin: run 'cargo build --release' first." >&2
  exit 1
fi
temp_home=
if [[ -z ${CONTAINERIMAGE_HOME:-} ]]; then
  temp_home=$(mktemp -d)
  CONTAINERIMAGE_HOME=$temp_home
fi
export CONTAINERIMAGE_HOME
saved=$(mktemp -d)
trap 'rm -rf "$saved" ${temp_home:+"$temp_home"}' EXIT

step() {
  printf '\n\033[1m$ containerimage'
  printf ' %q' "$@"
  printf '\033[0m\n'
  "$bin" "$@" -OutputFormat Table
}

echo "CONTAINERIMAGE_HOME=$CONTAINERIMAGE_HOME"
step Register-PackageSource -Name Sample -Location "$here/manifests/sample" -Trusted -Force
step Find-ContainerImage -Name 'NanoServer*'
printf '\n\033[1m$ containerimage Find-ContainerImage NanoServerSample | containerimage Save-ContainerImage -Path %s\033[0m\n' "$saved"
"$bin" Find-ContainerImage NanoServerSample | "$bin" Save-ContainerImage -Path "$saved" -OutputFormat Table
ls -l "$saved"
step Install-ContainerImage -Name NanoServerSample
step Get-ContainerImage
"$bin" Get-ContainerImage -Name NanoServerSample -OutputFormat List
step Test-ContainerImage
tag=$("$bin" Get-ContainerImage -Name NanoServerSample -OutputFormat Json | sed -n 's/.*"RepoTags":\["\([^"]*\)".*/\1/p')
step Export-ContainerImage -Image "$tag" -Path "$saved/nano.tar"
step Uninstall-ContainerOSImage -Name NanoServerSample
step Import-ContainerImage -Path "$saved/nano.tar"
step New-Container -ContainerImage "$tag" -Name demo
files=$("$bin" Get-Container demo -OutputFormat Json | sed -n 's/.*"Path":"\([^"]*\)".*/\1/p')
printf '\n\033[1m$ echo hello > %s/hello.txt\033[0m\n' "$files"
echo hello >"$files/hello.txt"
step New-ContainerImage -Container demo -Publisher Demo -Name DemoImage -Version 1.0
"$bin" Get-ContainerImage -Name DemoImage -OutputFormat List
printf '\n\033[1m$ containerimage history demoimage:1.0.0.0\033[0m\n'
"$bin" history demoimage:1.0.0.0
step Export-ContainerImage -Image demoimage:1.0.0.0 -Path "$saved/demo.tar"
step Remove-Container -Name demo
printf '\n\033[1m$ containerimage images\033[0m\n'
"$bin" images
for image in demoimage:1.0.0.0 "$tag"; do
  printf '\n\033[1m$ containerimage rmi %s\033[0m\n' "$image"
  "$bin" rmi "$image"
done
printf '\nDone: the sample image was found, saved, installed, listed, checked, exported\nas an archive docker load reads (%s), removed and imported again; a\ncontainer of it was changed and committed as a child image, exported as a\ntwo-layer archive (%s), and everything was removed.\n' "$saved/nano.tar" "$saved/demo.tar"
