#!/usr/bin/env bash
# Unpack Debian's r-cran-bayesm (it carries Dominick's orange-juice sales) into var/cache/bayesm.
# No R is installed: only the package file is downloaded from the Debian archive and unpacked.
set -euo pipefail
dest="${1:-var/cache/bayesm}"
target="$dest/usr/lib/R/site-library/bayesm/data/orangeJuice.rda"
[ -f "$target" ] && exit 0
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if ! (cd "$work" && apt-get download r-cran-bayesm >/dev/null 2>&1); then
  echo "apt-get download failed; refreshing the package lists (needs root)" >&2
  apt-get update -qq
  (cd "$work" && apt-get download r-cran-bayesm)
fi
mkdir -p "$dest"
dpkg-deb -x "$work"/r-cran-bayesm_*.deb "$dest"
test -f "$target"
echo "Dominick's orange-juice data: $target"
