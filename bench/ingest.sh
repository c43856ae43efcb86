#!/usr/bin/env bash
# Ingest benchmark (issue: foundation). Same machine, same run:
#   1. nixrepo ingest of a staged closure (≥ 200 MB of NAR data, made with
#      nix-store --add of real trees on this machine, nix copy --to file://),
#   2. real Nix doing the equivalent verified copy
#      (nix copy --from file://STAGING --to file://OTHER),
#   3. the machine's verification limit: xz -dc | sha256sum over the same
#      NAR files, both cores busy,
# and prints wall-clock ratios and peak RSS. Also measures peak RSS of
# nixrepo ingesting one ≥ 1 GiB NAR.
#
# Usage: bench/ingest.sh [WORKDIR]   (default /tmp/nixrepo-ingest-bench; reused)
# Needs: nix (Debian nix-bin), xz, GNU time (/usr/bin/time), Go.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/nixrepo-ingest-bench}
RUNS=${RUNS:-3}
mkdir -p "$W"
export NIX_CONFIG="experimental-features = nix-command
build-users-group =
sandbox = false
substituters =
require-sigs = false"
export XDG_CACHE_HOME="$W/xdg"
[ -x /usr/bin/time ] || apt-get install -y -qq time >/dev/null

go build -o "$W/nixrepo" ./cmd/nixrepo

# --- stage the closure (once) ------------------------------------------------
TREES=(/usr/lib/python3.11 /usr/lib/gcc /usr/share/perl /usr/lib/python3 /usr/share/perl5)
if [ ! -f "$W/staging.done" ]; then
  rm -rf "$W/staging" "$W/trees"
  mkdir -p "$W/trees"
  paths=()
  for t in "${TREES[@]}"; do
    [ -d "$t" ] || continue
    # Copy first: nix-store --add of a tree with unreadable files fails.
    d="$W/trees/$(basename "$t")"; cp -a "$t" "$d" 2>/dev/null || true
    paths+=("$(nix-store --add "$d")")
  done
  echo "staging ${#paths[@]} paths with nix copy (xz, Nix's default)…" >&2
  nix copy --to "file://$W/staging?compression=xz&parallel-compression=true" "${paths[@]}"
  printf '%s\n' "${paths[@]}" > "$W/paths"
  touch "$W/staging.done"
fi
NARBYTES=$(awk '/^NarSize:/{s+=$2} END{print s}' "$W"/staging/*.narinfo)
FILEBYTES=$(awk '/^FileSize:/{s+=$2} END{print s}' "$W"/staging/*.narinfo)
NPATHS=$(ls "$W"/staging/*.narinfo | wc -l)
echo "closure: $NPATHS paths, NAR $((NARBYTES/1048576)) MiB, compressed $((FILEBYTES/1048576)) MiB"

cat > "$W/nixrepo.toml" <<TOML
version = 1
[store]
url = "file://./store"
[[repo]]
name = "bench"
type = "local"
signing_key_file = "bench.sec"
generate_key = true
TOML

# time_cmd LABEL CMD… : prints "LABEL wall_s rss_kib"
time_cmd() {
  local label=$1; shift
  /usr/bin/time -o "$W/time.out" -f '%e %M' "$@" >/dev/null 2>"$W/err.log" || { cat "$W/err.log" >&2; return 1; }
  echo "$label $(cat "$W/time.out")"
}
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

echo "runs: $RUNS (median)"
: > "$W/results"
for i in $(seq "$RUNS"); do
  rm -rf "$W/store"
  ( cd "$W" && time_cmd nixrepo ./nixrepo --quiet ingest --repo bench "$W/staging" ) >> "$W/results"
  sync
  time_cmd xzlimit sh -c "ls $W/staging/nar/*.nar.xz | xargs -P2 -n1 sh -c 'xz -dc \"\$0\" | sha256sum >/dev/null'" >> "$W/results"
done
rm -rf "$W/other"
time_cmd nixcopy nix copy --no-check-sigs --from "file://$W/staging" --to "file://$W/other" $(cat "$W/paths") >> "$W/results"

n=$(grep '^nixrepo ' "$W/results" | awk '{print $2}' | median)
nr=$(grep '^nixrepo ' "$W/results" | awk '{print $3}' | sort -n | tail -1)
x=$(grep '^xzlimit ' "$W/results" | awk '{print $2}' | median)
c=$(grep '^nixcopy ' "$W/results" | awk '{print $2}')
cr=$(grep '^nixcopy ' "$W/results" | awk '{print $3}')
echo
printf 'nixrepo ingest        %8.2f s   peak RSS %6d KiB   %6.1f MB/s of NAR\n' "$n" "$nr" "$(echo "$NARBYTES/$n/1000000" | bc -l)"
printf 'xz -dc | sha256sum x2 %8.2f s\n' "$x"
printf 'nix copy (verified)   %8.2f s   peak RSS %6d KiB\n' "$c" "$cr"
printf 'nixrepo / nix copy    %8.3f   (target ≤ 0.1)\n' "$(echo "$n/$c" | bc -l)"
printf 'speed vs xz limit     %8.3f   (target ≥ 0.8)\n' "$(echo "$x/$n" | bc -l)"

# --- one ≥ 1 GiB NAR: peak RSS ------------------------------------------------
if [ "${BIG:-1}" = 1 ]; then
  if [ ! -f "$W/big.done" ]; then
    rm -rf "$W/bigtree" "$W/bigstaging"; mkdir -p "$W/bigtree"
    for t in /usr/lib/x86_64-linux-gnu /usr/lib/jvm /usr/local/go; do cp -a "$t" "$W/bigtree/" 2>/dev/null || true; done
    p=$(nix-store --add "$W/bigtree")
    nix copy --to "file://$W/bigstaging?compression=zstd" "$p"
    touch "$W/big.done"
  fi
  bign=$(awk '/^NarSize:/{s+=$2} END{print s}' "$W"/bigstaging/*.narinfo)
  rm -rf "$W/store"
  r=$(cd "$W" && time_cmd big ./nixrepo --quiet ingest --repo bench "$W/bigstaging")
  printf 'one NAR of %d MiB (zstd): %s s, peak RSS %s KiB (target ≤ 65536)\n' "$((bign/1048576))" "$(echo "$r" | awk '{print $2}')" "$(echo "$r" | awk '{print $3}')"
fi
