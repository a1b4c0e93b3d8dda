#!/usr/bin/env bash
# Build (once) a Debian root holding Orthanc from another Debian release, for the tests.
# Usage: make_root.sh CODENAME DEST   e.g. make_root.sh trixie /var/cache/orthanc_fn/trixie
# The root is reused when DEST/.complete names the same package list; it is built in DEST.tmp
# and renamed at the end, so an interrupted build is never taken for a finished one.
set -euo pipefail
codename=$1
dest=$2
packages=orthanc,orthanc-python,orthanc-dicomweb,orthanc-gdcm,orthanc-neuro,orthanc-postgresql,python3-urllib3
if [ -f "$dest/.complete" ] && [ "$(cat "$dest/.complete")" = "$packages" ]; then
  echo "make_root: $dest is ready"
  exit 0
fi
command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends debootstrap; }
rm -rf "$dest.tmp"
mkdir -p "$(dirname "$dest")"
echo "make_root: building $codename into $dest (one to two minutes)"
debootstrap --variant=minbase --include="$packages" \
  "$codename" "$dest.tmp" http://deb.debian.org/debian >"$dest.log" 2>&1 || {
    tail -n 20 "$dest.log" >&2; exit 1; }
rm -rf "$dest.tmp/var/cache/apt/archives/"*.deb
echo "$packages" > "$dest.tmp/.complete"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
chroot "$dest" /usr/sbin/Orthanc --version | awk 'NR == 1'
