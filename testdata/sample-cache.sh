#!/bin/sh
# Regenerates testdata/sample-cache: a small, REAL, unsigned binary cache written by
# `nix copy --to file://…` from the closure defined in testdata/sample.nix.
#
# Usage: testdata/sample-cache.sh          (needs nix-build and nix with nix-command; no daemon needed)
#
# Runs Nix in an isolated HOME/XDG_CACHE_HOME/NIX_CONF_DIR so the result does not depend on the
# caller's configuration. The store paths are fixed by sample.nix (system defaults to x86_64-linux);
# the .nar.xz bytes depend on the xz library only.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cache="$here/sample-cache"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/home" "$tmp/cache" "$tmp/conf"
: > "$tmp/conf/nix.conf"
export HOME="$tmp/home" XDG_CACHE_HOME="$tmp/cache" NIX_CONF_DIR="$tmp/conf" NIX_USER_CONF_FILES="$tmp/conf/nix.conf"
export NIX_CONFIG='experimental-features = nix-command
build-users-group =
sandbox = false
substituters =
require-sigs = true'

out=$(nix-build --no-out-link "$here/sample.nix")
echo "built $out" >&2

rm -rf "$cache"
nix copy --to "file://$cache?compression=xz" "$out"

# `nix copy` also creates empty log/ and realisations/ directories. Git cannot store empty
# directories, so drop them here to make the generated tree identical to the committed one.
find "$cache" -type d -empty -delete

if find "$cache" -name '*.attrs' | grep -q .; then
	echo "unexpected .attrs files in $cache" >&2
	exit 1
fi

echo "closure:" >&2
nix-store -qR "$out" >&2
echo "files:" >&2
(cd "$cache" && find . -type f | sort && du -sb .) >&2
