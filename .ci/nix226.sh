#!/usr/bin/env bash
# Nix 2.26 beside the host's Nix 2.8: a Debian 13 (trixie) chroot holding Debian's nix-bin 2.26,
# made once per machine and reused, plus wrapper scripts that run its tools from the host.
#
#   .ci/nix226.sh [up]   make the chroot if missing or invalid, mount, write the wrappers
#   .ci/nix226.sh down   unmount everything under the chroot
#   .ci/nix226.sh status print the client folder, version and mounts
#
# Layout (the client folder, NIX226_DIR, default /var/cache/nixrepo-ci/nix-2.26):
#   root/   the chroot; its /nix/store is its own store, separate from the host's
#   bin/    in-chroot COMMAND [ARG...] runs COMMAND inside the chroot with the caller's
#           environment (PATH aside) in the caller's working directory; nix, nix-build,
#           nix-store, ... (every nix* tool of the package) are wrappers around it
#
# Inside and outside the chroot, two folders are the same folder at the same path (bind mounts):
# the work folder NIX226_WORK (default /var/tmp/nixtest; run tests with TMPDIR under it, so their
# temporary folders are visible to Nix 2.26) and this repository's checkout (read-only), the
# working directory of `go test`. internal/nixtest uses the client with NIXTEST_CLIENT=2.26
# (this default folder) or NIXTEST_CLIENT=<client folder>.
#
# Runs as root. The mounts stay until `down`; `up` again is idempotent.
set -euo pipefail

dir=${NIX226_DIR:-/var/cache/nixrepo-ci/nix-2.26}
work=${NIX226_WORK:-/var/tmp/nixtest}
repo=$(cd "$(dirname "$0")/.." && pwd -P)
root=$dir/root
bin=$dir/bin
marker=$root/.nixrepo-ci-nix-2.26   # written last: the chroot is complete
want_version='nix (Nix) 2.26.'

log() { echo "nix226: $*" >&2; }

# mounts_under DIR: the mount points at or below DIR, deepest first.
mounts_under() {
  awk -v d="$1" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}

unmount_all() {
  local m
  for m in $(mounts_under "$1"); do
    umount "$m" || { log "cannot unmount $m (busy?)"; return 1; }
  done
}

# remove DIR: never follows a mount into the host (a bind mount of the work folder or of /proc).
remove_tree() {
  [[ -e $1 ]] || return 0
  unmount_all "$1"
  rm -rf --one-file-system "$1"
}

mount_once() { # mount_once TARGET MOUNT-ARGS...
  local target=$1
  shift
  mountpoint -q "$target" || mount "$@" "$target"
}

bind_same_path() { # bind_same_path HOST-DIR [ro]
  local src=$1 dst=$root$1
  mkdir -p "$dst"
  if ! mountpoint -q "$dst"; then
    mount --bind "$src" "$dst"
    [[ ${2:-} == ro ]] && mount -o remount,bind,ro "$dst"
  fi
  return 0
}

version() {
  chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/nonexistent /usr/bin/nix --version 2>/dev/null || true
}

create() {
  local new=$dir/root.new
  remove_tree "$new" # a run interrupted while creating
  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  local mirror
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  log "creating the trixie chroot in $root from $mirror (about a minute)"
  local start=$SECONDS
  # libdbi-perl must be named: debootstrap does not resolve virtual packages, and nix-bin needs
  # libdbd-sqlite3-perl -> perl-dbdabi-94, which only libdbi-perl provides.
  if ! debootstrap --variant=minbase --include=nix-bin,libdbi-perl,ca-certificates,xz-utils \
    trixie "$new" "$mirror" >"$dir/debootstrap.log" 2>&1; then
    log "debootstrap failed; the end of $dir/debootstrap.log:"
    tail -n 20 "$dir/debootstrap.log" >&2
    return 1
  fi
  echo "127.0.0.1 localhost" >"$new/etc/hosts"
  remove_tree "$root"
  mv "$new" "$root"
  log "chroot made in $((SECONDS - start)) s ($(du -sh --one-file-system "$root" | cut -f1))"
}

write_wrapper() { # write_wrapper NAME CONTENT: replaced atomically, only when it changed
  local f=$bin/$1
  if [[ -f $f ]] && [[ $(<"$f") == "$2" ]]; then return 0; fi
  printf '%s\n' "$2" >"$f.tmp"
  chmod 0755 "$f.tmp"
  mv -f "$f.tmp" "$f"
}

write_wrappers() {
  mkdir -p "$bin"
  write_wrapper in-chroot "#!/bin/sh
# Written by .ci/nix226.sh: runs COMMAND [ARG...] in the Nix 2.26 chroot $root with this
# environment (PATH aside) in this working directory, which must be visible at the same path there.
exec /usr/sbin/chroot '$root' /usr/bin/env --chdir=\"\$PWD\" PATH=/usr/local/bin:/usr/bin:/bin \"\$@\""
  local tool
  for tool in "$root"/usr/bin/nix*; do
    tool=${tool##*/}
    write_wrapper "$tool" "#!/bin/sh
# Written by .ci/nix226.sh: Nix 2.26's $tool, run in the chroot $root.
exec '$bin/in-chroot' /usr/bin/$tool \"\$@\""
  done
}

up() {
  if [[ -f $marker ]] && [[ -x $root/usr/bin/nix ]]; then
    log "reusing $root ($(<"$marker"))"
  else
    create
  fi
  mount_once "$root/proc" -t proc proc
  mount_once "$root/dev/pts" --bind /dev/pts # Nix's builder opens a pseudoterminal
  mkdir -p "$work"
  chmod 1777 "$work"
  bind_same_path "$work"
  bind_same_path "$repo" ro
  local v
  v=$(version)
  if [[ $v != "$want_version"* ]]; then
    log "$root/usr/bin/nix --version printed '$v', want '$want_version*'"
    rm -f "$marker"
    return 1
  fi
  [[ -f $marker ]] || echo "$v" >"$marker"
  write_wrappers
  log "$v ready: NIXTEST_CLIENT=$dir TMPDIR=$work (mounts: $(mounts_under "$root" | wc -l))"
}

down() {
  unmount_all "$root"
  log "unmounted everything under $root"
}

status() {
  echo "client folder: $dir"
  echo "version: $(version)"
  echo "mounts:"
  mounts_under "$root" | sed 's/^/  /'
}

mkdir -p "$dir"
exec 9>"$dir/lock"
flock 9 # one setup at a time on this machine
case ${1:-up} in
up) up ;;
down) down ;;
status) status ;;
*)
  echo "usage: $0 [up|down|status]" >&2
  exit 2
  ;;
esac
