#!/usr/bin/env bash
# Remote and virtual repository benchmark (issue: remote/virtual). Same
# machine, same run:
#   1. `nixrepo mirror paths` of a closure of ≥ 500 paths / ≥ 200 MB from a
#      loopback upstream (a static server over a signed `nix copy --to
#      file://` cache) versus real Nix `nix copy --from http://upstream --to
#      file://…` of the same paths (target ≤ 0.5× Nix's wall time);
#   2. narinfo GET/s of a virtual repository with 3 members (the paths in the
#      last member) versus a single local repository (target ≥ 0.8×), wrk,
#      64 connections.
# Usage: bench/remote.sh [WORKDIR]   (default /tmp/nixrepo-remote-bench; reused)
# Needs: nix, python3, wrk, GNU time, Go.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
W=${1:-/tmp/nixrepo-remote-bench}
RUNS=${RUNS:-3}
DUR=${DUR:-8s}
mkdir -p "$W"
export NIX_CONFIG="experimental-features = nix-command
build-users-group =
sandbox = false
substituters =
require-sigs = true"
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
[ -x /usr/bin/time ] || apt-get install -y -qq time >/dev/null
go build -o "$W/nixrepo" ./cmd/nixrepo

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
freeport() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# --- the upstream (once) -------------------------------------------------------
if [ ! -f "$W/upstream.done" ]; then
  rm -rf "$W/upstream" "$W/trees"; mkdir -p "$W/trees"
  nix-store --generate-binary-cache-key bench-upstream-1 "$W/up.sec" "$W/up.pub"
  small=$(nix-build --no-out-link "$REPO/bench/serve-tiny.nix" --arg n 520 --argstr salt "remote-$(date +%s)")
  big=()
  for t in /usr/lib/python3.11 /usr/lib/gcc /usr/share/perl /usr/lib/python3; do
    d="$W/trees/$(basename "$t")"; cp -a "$t" "$d" 2>/dev/null || true
    big+=("$(nix-store --add "$d")")
  done
  printf '%s\n' $small "${big[@]}" > "$W/paths"
  echo "staging $(wc -l < "$W/paths") paths (xz)…" >&2
  nix copy --to "file://$W/upstream?secret-key=$W/up.sec&compression=xz&parallel-compression=true" $(cat "$W/paths")
  touch "$W/upstream.done"
fi
NPATHS=$(wc -l < "$W/paths")
FILEBYTES=$(awk '/^FileSize:/{s+=$2} END{print s}' "$W"/upstream/*.narinfo)
NARBYTES=$(awk '/^NarSize:/{s+=$2} END{print s}' "$W"/upstream/*.narinfo)
echo "closure: $NPATHS paths, NAR $((NARBYTES/1048576)) MiB ($((FILEBYTES/1048576)) MiB of xz files)"

UPPORT=$(freeport)
( cd "$W/upstream" && exec python3 -m http.server "$UPPORT" --bind 127.0.0.1 >/dev/null 2>&1 ) &
pids+=($!)
UP="http://127.0.0.1:$UPPORT"
waitfor() { for _ in $(seq 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.2; done; echo "not up: $1" >&2; return 1; }
waitfor "$UP/nix-cache-info"

cat > "$W/nixrepo.toml" <<TOML
version = 1
[store]
url = "file://./store"
[[repo]]
name = "mirror"
type = "remote"
upstream = "$UP"
trusted_keys = ["$(cat "$W/up.pub")"]
public = true
TOML

time_cmd() {
  local label=$1; shift
  /usr/bin/time -o "$W/time.out" -f '%e %M' "$@" >/dev/null 2>"$W/err.log" || { cat "$W/err.log" >&2; return 1; }
  echo "$label $(cat "$W/time.out")"
}
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

: > "$W/results"
for i in $(seq "$RUNS"); do
  rm -rf "$W/store"
  (cd "$W" && time_cmd mirror ./nixrepo --quiet mirror paths --repo mirror --from "$W/paths") >> "$W/results"
done
rm -rf "$W/nixdst"
time_cmd nixcopy env XDG_CACHE_HOME="$(mktemp -d)" nix copy --from "$UP" --to "file://$W/nixdst" \
  --option trusted-public-keys "$(cat "$W/up.pub")" $(cat "$W/paths") >> "$W/results"
m=$(grep '^mirror ' "$W/results" | awk '{print $2}' | median)
mr=$(grep '^mirror ' "$W/results" | awk '{print $3}' | sort -n | tail -1)
c=$(grep '^nixcopy ' "$W/results" | awk '{print $2}')
(cd "$W" && ./nixrepo verify --repo mirror --quiet | tail -1)

# --- virtual narinfo GET/s -------------------------------------------------------
cat > "$W/virtual.toml" <<TOML
version = 1
[store]
url = "file://./store"
[[repo]]
name = "a"
type = "local"
signing_key_file = "a.sec"
generate_key = true
public = true
[[repo]]
name = "b"
type = "local"
signing_key_file = "b.sec"
generate_key = true
public = true
[[repo]]
name = "mirror"
type = "remote"
upstream = "$UP"
trusted_keys = ["$(cat "$W/up.pub")"]
public = true
[[repo]]
name = "all"
type = "virtual"
members = ["a", "b", "mirror"]
public = true
TOML
ls "$W/store/mirror/" | grep '\.narinfo$' > "$W/narinfos"
SPORT=$(freeport)
(cd "$W" && exec ./nixrepo --config virtual.toml serve --listen "127.0.0.1:$SPORT" 2>/dev/null) &
pids+=($!)
waitfor "http://127.0.0.1:$SPORT/healthz"
rate() { # PREFIX → requests/s (median of RUNS)
  for i in $(seq "$RUNS"); do
    wrk -t2 -c64 -d"$DUR" -s "$REPO/bench/serve-wrk.lua" "http://127.0.0.1:$SPORT" -- "$W/narinfos" "$1" \
      | awk '/^RESULT/{split($2,a,"=");split($4,d,"=");split($8,s,"="); if (s[2]>0) {print "non-2xx", s[2] > "/dev/stderr"}; printf "%.0f\n", a[2]/(d[2]/1e6)}'
  done | median
}
single=$(rate /api/nix/mirror/)
virtual=$(rate /api/nix/all/)

echo
printf 'mirror paths (nixrepo)   %8.2f s  peak RSS %d KiB\n' "$m" "$mr"
printf 'nix copy --from http     %8.2f s\n' "$c"
printf 'nixrepo / nix            %8.3f   (target ≤ 0.5)\n' "$(echo "$m/$c" | bc -l)"
printf 'narinfo GET/s single     %8d\n' "$single"
printf 'narinfo GET/s virtual(3) %8d\n' "$virtual"
printf 'virtual / single         %8.3f   (target ≥ 0.8)\n' "$(echo "$virtual/$single" | bc -l)"
