#!/usr/bin/env bash
# Build (once) a Debian root holding Orthanc from another Debian release, for the tests.
# Usage: make_root.sh CODENAME DEST   e.g. make_root.sh trixie /var/cache/orthanc_fn/trixie
# The root is reused when DEST/.complete exists; it is built in DEST.tmp and renamed at the end.
set -euo pipefail
codename=$1
dest=$2
if [ -f "$dest/.complete" ]; then
  echo "make_root: $dest is ready"
  exit 0
fi
command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends debootstrap; }
rm -rf "$dest.tmp"
mkdir -p "$(dirname "$dest")"
echo "make_root: building $codename into $dest (about a minute)"
debootstrap --variant=minbase \
  --include=orthanc,orthanc-python,orthanc-dicomweb,python3-urllib3 \
  "$codename" "$dest.tmp" http://deb.debian.org/debian >"$dest.log" 2>&1 || {
    tail -n 20 "$dest.log" >&2; exit 1; }
rm -rf "$dest.tmp/var/cache/apt/archives/"*.deb
touch "$dest.tmp/.complete"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
chroot "$dest" /usr/sbin/Orthanc --version | head -n 1
