#!/usr/bin/env bash
# Server benchmark: `nixrepo serve` against the baselines it replaces, same
# machine, same run, medians of RUNS alternating runs, reported as ratios.
#
#   1. narinfo GET/s: nixrepo (/api/nix/bench/<hash>.narinfo) vs nginx whose
#      root is the SAME published store folder (/bench/<hash>.narinfo); wrk
#      cycling over every narinfo of the repository (≥ 1000 real, signed
#      narinfos), 1 connection (-t1 -c1) and 64 connections (-t2 -c64).
#      Target: nixrepo ≥ 1.0× nginx.
#   2. NAR MB/s: the same for the repository's NAR files of 5–64 MiB.
#      Target: nixrepo ≥ 0.9× nginx.
#   3. Upload: wall time of `nix copy --to http://ci:TOKEN@…/api/nix/bench`
#      (a fresh nixrepo store each run) ÷ `nix copy --to file://DIR` (a fresh
#      folder each run) for the same ≥ 200 MB closure of real trees. Nix
#      compresses the NARs on both sides, so that cost is common. Target ≤ 1.1.
#      Two variants: compression=zstd, and xz ($XZ_QUERY). Nix's default xz
#      (preset 6, one thread) takes ~4.5 minutes per copy of the closure on a
#      2-core machine, which does not fit 2×3 runs in the time budget; the
#      default xz variant therefore uses compression-level=1 with
#      parallel-compression. XZ_QUERY=compression=xz gives Nix's default.
#      For information (zstd only): the same nix copy to nginx accepting plain
#      PUTs (bench/serve-nginx-dav.conf), i.e. Nix's own HTTP-store cost with
#      no server-side work, and the server's time in PUT handlers (/metrics).
#
# The read data is made once and reused (delete WORKDIR to rebuild):
# NTINY tiny derivations (bench/serve-tiny.nix) built with nix-build, copied
# with nix copy --to file://, and the closure of step 3 copied with zstd; both
# ingested with `nixrepo ingest` into the repository "bench" of WORKDIR/store.
#
# Usage: bench/serve.sh [WORKDIR]     (default /tmp/nixrepo-serve-bench)
# Environment: QUICK=1 (3 s wrk runs, no xz upload variant), RUNS (3),
#   DUR (wrk seconds, 10), XZ=0|1, XZ_QUERY, NTINY (1500), UPLOADS=0 (reads
#   only), ONLY="narinfo-c1 nar-c1" (these read tests only).
# Needs: Go, Nix (Debian nix-bin), nginx, wrk, curl, python3 (installs nginx
# and wrk with apt-get when missing). Runs nginx as root.
# Fails (exit 1) on any error, non-2xx answer or socket error; targets are
# reported, not enforced.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
W=${1:-/tmp/nixrepo-serve-bench}
mkdir -p "$W"
W=$(cd "$W" && pwd)

QUICK=${QUICK:-0}
RUNS=${RUNS:-3}
if [ "$QUICK" = 1 ]; then DUR=${DUR:-3}; XZ=${XZ:-0}; else DUR=${DUR:-10}; XZ=${XZ:-1}; fi
XZ_QUERY=${XZ_QUERY:-compression=xz&compression-level=1&parallel-compression=true}
NTINY=${NTINY:-1500}
UPLOADS=${UPLOADS:-1}
ONLY=${ONLY:-}
WARM=$(( DUR < 3 ? DUR : 3 ))

log() { echo "== $*" >&2; }
die() { echo "serve.sh: FAIL: $*" >&2; exit 1; }

if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ] || ! command -v wrk >/dev/null; then
  log "installing nginx and wrk"
  apt-get update -qq >/dev/null && apt-get install -y -qq nginx wrk >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for t in curl python3 nix nix-build nix-store go wrk; do
  command -v "$t" >/dev/null || die "$t is not installed"
done

export NIX_CONFIG=$'experimental-features = nix-command\nbuild-users-group =\nsandbox = false\nsubstituters =\nrequire-sigs = true'
# Nix caches narinfo lookups per binary-cache URL: a fresh cache dir per command.
fresh_xdg() { local d; d=$(mktemp -d "$W/xdg.XXXXXX"); echo "$d"; }
rm -rf "$W"/xdg.*

# --- servers and cleanup ------------------------------------------------------
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'
}
# wait_http URL PID LOG: wait until URL answers 200 while PID lives.
wait_http() {
  local i
  for i in $(seq 200); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { cat "$3" >&2; die "server for $1 exited"; }
    sleep 0.05
  done
  cat "$3" >&2; die "$1 did not answer"
}
stop_pid() {
  local p=$1 q=() x
  kill "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  for x in "${PIDS[@]}"; do [ "$x" = "$p" ] || q+=("$x"); done
  PIDS=("${q[@]}")
}

# --- binary, token, configuration ----------------------------------------------
log "building nixrepo"
go build -o "$W/nixrepo" ./cmd/nixrepo
NR="$W/nixrepo"

tokout=$("$NR" token new ci --write bench)
TOKEN=$(sed -n 's/^token: //p' <<<"$tokout")
TOKTABLE=$(sed -n '/^\[\[token\]\]/,$p' <<<"$tokout")
[ -n "$TOKEN" ] && grep -q '^sha256 = ' <<<"$TOKTABLE" && grep -q '^write = \["bench"\]' <<<"$TOKTABLE" \
  || die "unexpected output of nixrepo token new: $tokout"

# write_config DIR PORT: DIR/nixrepo.toml with the store DIR/store.
write_config() {
  cat > "$1/nixrepo.toml" <<TOML
version = 1
[store]
url = "file://./store"
[server]
listen = "127.0.0.1:$2"
[[repo]]
name = "bench"
type = "local"
signing_key_file = "$W/bench.sec"
generate_key = true
public = true
$TOKTABLE
TOML
}
PORT_NR=$(free_port)
write_config "$W" "$PORT_NR"

# --- the ≥ 200 MB closure of real trees (once) ---------------------------------
TREES=(/usr/lib/python3.11 /usr/lib/gcc /usr/share/perl /usr/lib/python3 /usr/share/perl5)
if [ ! -f "$W/trees.done" ]; then
  log "adding copies of ${TREES[*]} to the Nix store"
  rm -rf "$W/trees"; mkdir -p "$W/trees"; : > "$W/big-paths"
  for t in "${TREES[@]}"; do
    [ -d "$t" ] || continue
    # Copy first: nix-store --add of a tree with unreadable files fails.
    d="$W/trees/$(basename "$t")"; cp -a "$t" "$d" 2>/dev/null || true
    nix-store --add "$d" >> "$W/big-paths"
  done
  touch "$W/trees.done"
fi
mapfile -t BIG < "$W/big-paths"
BIGNAR=0
for p in "${BIG[@]}"; do BIGNAR=$(( BIGNAR + $(nix-store -q --size "$p") )); done
[ "$BIGNAR" -ge 200000000 ] || die "the closure is only $BIGNAR bytes of NAR (need ≥ 200 MB): add trees to TREES"

# --- many small paths (once) ----------------------------------------------------
if [ ! -f "$W/tiny.done" ]; then
  log "building $NTINY tiny derivations"
  nix-build --no-out-link --max-jobs 8 --arg n "$NTINY" "$SRC/bench/serve-tiny.nix" > "$W/tiny-paths" 2> "$W/tiny-build.log" \
    || { tail "$W/tiny-build.log" >&2; die "nix-build bench/serve-tiny.nix"; }
  rm -rf "$W/tiny-staging"
  XDG_CACHE_HOME=$(fresh_xdg) nix copy --to "file://$W/tiny-staging" $(cat "$W/tiny-paths") 2> "$W/tiny-copy.log" \
    || { tail "$W/tiny-copy.log" >&2; die "nix copy of the tiny paths"; }
  touch "$W/tiny.done"
fi
if [ ! -f "$W/big.done" ]; then
  log "staging the closure (zstd) for the NAR reads"
  rm -rf "$W/big-staging"
  XDG_CACHE_HOME=$(fresh_xdg) nix copy --to "file://$W/big-staging?compression=zstd" "${BIG[@]}" 2> "$W/big-copy.log" \
    || { tail "$W/big-copy.log" >&2; die "nix copy of the closure"; }
  touch "$W/big.done"
fi

# --- the published store folder (once) -------------------------------------------
if [ ! -f "$W/store.done" ]; then
  log "ingesting into $W/store/bench"
  rm -rf "$W/store"
  "$NR" --quiet --config "$W/nixrepo.toml" ingest --repo bench "$W/tiny-staging" "$W/big-staging" > "$W/ingest.log"
  "$NR" --quiet --config "$W/nixrepo.toml" publish >> "$W/ingest.log"
  touch "$W/store.done"
fi
(cd "$W/store/bench" && ls | grep '\.narinfo$') > "$W/list-narinfo"
(cd "$W/store/bench" && find nar -type f -size +5M -size -64M | sort) > "$W/list-nar"
NNARINFO=$(wc -l < "$W/list-narinfo")
NNAR=$(wc -l < "$W/list-nar")
[ "$NNARINFO" -ge 1000 ] || die "only $NNARINFO narinfos in $W/store/bench"
[ "$NNAR" -ge 2 ] || die "only $NNAR NAR files of 5–64 MiB in $W/store/bench/nar"
NARSIZES=$(cd "$W/store/bench" && xargs stat -c %s < "$W/list-nar" | awk '{printf "%s%.1f", (NR > 1 ? ", " : ""), $1/1e6}')

# --- start nginx and nixrepo over the same folder -----------------------------------
PORT_NGINX=$(free_port)
mkdir -p "$W/nginx/tmp"
sed -e "s|@WORK@|$W|g" -e "s|@ROOT@|$W/store|g" -e "s|@LISTEN@|127.0.0.1:$PORT_NGINX|g" \
  "$SRC/bench/serve-nginx.conf" > "$W/nginx/nginx.conf"
NGINX_ARGS=(-p "$W/nginx" -e "$W/nginx/error.log" -c "$W/nginx/nginx.conf")
"$NGINX" -t -q "${NGINX_ARGS[@]}" || die "nginx -t"
"$NGINX" "${NGINX_ARGS[@]}" > "$W/nginx/stdout.log" 2>&1 &
NGINX_PID=$!; PIDS+=("$NGINX_PID")
"$NR" --config "$W/nixrepo.toml" serve > "$W/serve.log" 2>&1 &
NR_PID=$!; PIDS+=("$NR_PID")
URL_NGINX="http://127.0.0.1:$PORT_NGINX"; PFX_NGINX=/bench/
URL_NR="http://127.0.0.1:$PORT_NR";       PFX_NR=/api/nix/bench/
wait_http "$URL_NGINX/bench/nix-cache-info" "$NGINX_PID" "$W/nginx/error.log"
wait_http "$URL_NR/healthz" "$NR_PID" "$W/serve.log"

# --- sanity: same bytes from both, 404 for a missing narinfo -------------------------
log "checking that both servers answer the same bytes"
curl -fsS -o /dev/null "$URL_NR${PFX_NR}nix-cache-info" || die "nixrepo nix-cache-info"
for rel in $(awk 'NR % 97 == 1' "$W/list-narinfo"); do
  a=$(curl -fsS "$URL_NGINX$PFX_NGINX$rel") || die "nginx GET $rel"
  b=$(curl -fsS "$URL_NR$PFX_NR$rel") || die "nixrepo GET $rel"
  [ "$a" = "$b" ] || die "$rel differs between nginx and nixrepo"
  grep -q '^Sig: ' <<<"$b" || die "$rel is not signed"
done
while read -r rel; do
  a=$(curl -fsS "$URL_NGINX$PFX_NGINX$rel" | sha256sum) || die "nginx GET $rel"
  b=$(curl -fsS "$URL_NR$PFX_NR$rel" | sha256sum) || die "nixrepo GET $rel"
  [ "$a" = "$b" ] || die "$rel differs between nginx and nixrepo"
done < "$W/list-nar"
missing=00000000000000000000000000000000.narinfo
for u in "$URL_NGINX$PFX_NGINX$missing" "$URL_NR$PFX_NR$missing"; do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$u")" = 404 ] || die "$u: expected 404"
done

# --- wrk --------------------------------------------------------------------------
: > "$W/wrk.log"
: > "$W/results"
# wrk_run LABEL BASEURL PREFIX LIST THREADS CONNS SECONDS: prints "req/s MB/s".
wrk_run() {
  local label=$1 out res k v
  out=$(wrk -t"$5" -c"$6" -d"$7s" --timeout 30s -s "$SRC/bench/serve-wrk.lua" "$2" -- "$4" "$3" 2>&1) \
    || { echo "$out" >&2; die "wrk failed ($label)"; }
  printf '### %s\n%s\n' "$label" "$out" >> "$W/wrk.log"
  if grep -q 'Non-2xx' <<<"$out"; then echo "$out" >&2; die "$label: non-2xx responses"; fi
  res=$(grep '^RESULT ' <<<"$out") || { echo "$out" >&2; die "$label: no RESULT line"; }
  local -A f=()
  for kv in ${res#RESULT }; do f[${kv%%=*}]=${kv#*=}; done
  [ "${f[status]}" = 0 ] || { echo "$out" >&2; die "$label: ${f[status]} responses with status ≥ 400"; }
  if [ $(( ${f[connect]} + ${f[read]} + ${f[write]} + ${f[timeout]} )) -ne 0 ]; then
    echo "$out" >&2; die "$label: socket errors (connect ${f[connect]}, read ${f[read]}, write ${f[write]}, timeout ${f[timeout]})"
  fi
  [ "${f[requests]}" -gt 0 ] || die "$label: no request completed"
  awk -v n="${f[requests]}" -v b="${f[bytes]}" -v d="${f[duration_us]}" 'BEGIN{printf "%.1f %.2f\n", n/(d/1e6), b/d}'
}

# test table: NAME LIST THREADS CONNS FIELD(1=req/s, 2=MB/s)
TESTS=(
  "narinfo-c1  $W/list-narinfo 1 1  1"
  "narinfo-c64 $W/list-narinfo 2 64 1"
  "nar-c1      $W/list-nar     1 1  2"
  "nar-c64     $W/list-nar     2 64 2"
)
log "warming up (${WARM}s per server and list)"
for list in "$W/list-narinfo" "$W/list-nar"; do
  wrk_run warm-nginx "$URL_NGINX" "$PFX_NGINX" "$list" 2 64 "$WARM" >/dev/null
  wrk_run warm-nixrepo "$URL_NR" "$PFX_NR" "$list" 2 64 "$WARM" >/dev/null
done
log "reads: $RUNS alternating runs of ${DUR}s per test and server"
for r in $(seq "$RUNS"); do
  for t in "${TESTS[@]}"; do
    read -r name list th conns field <<<"$t"
    case " $ONLY " in "  " | *" $name "*) ;; *) continue ;; esac
    if [ $(( r % 2 )) = 1 ]; then order="nginx nixrepo"; else order="nixrepo nginx"; fi
    for side in $order; do
      if [ "$side" = nginx ]; then u=$URL_NGINX; p=$PFX_NGINX; else u=$URL_NR; p=$PFX_NR; fi
      v=$(wrk_run "$name $side run $r" "$u" "$p" "$list" "$th" "$conns" "$DUR" | awk -v f="$field" '{print $f}')
      echo "$name $side $r $v" >> "$W/results"
      printf '  run %d  %-12s %-8s %12s\n' "$r" "$name" "$side" "$v" >&2
    done
  done
done
stop_pid "$NGINX_PID"
stop_pid "$NR_PID"

# --- uploads ---------------------------------------------------------------------
VARIANTS=()
if [ "$UPLOADS" = 1 ]; then
mkdir -p "$W/upload"
PORT_UP=$(free_port)
write_config "$W/upload" "$PORT_UP"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }
# count_narinfos DIR: how many narinfos DIR holds.
count_narinfos() { ls "$1" 2>/dev/null | grep -c '\.narinfo$' || true; }
# The upload_* functions set SECS to the wall time of the nix copy. (No
# command substitution around them: a server they start must stay in PIDS.)
# upload_file QUERY: nix copy --to file://FRESH.
upload_file() {
  local t0 t1 n
  rm -rf "$W/upload/file"
  t0=$(now)
  XDG_CACHE_HOME=$(fresh_xdg) nix copy --to "file://$W/upload/file?$1" "${BIG[@]}" 2>> "$W/upload/nix.log" \
    || { tail "$W/upload/nix.log" >&2; die "nix copy --to file:// failed"; }
  t1=$(now)
  n=$(count_narinfos "$W/upload/file")
  [ "$n" = "${#BIG[@]}" ] || die "file:// copy has $n narinfos, expected ${#BIG[@]}"
  SECS=$(secs "$t0" "$t1")
}
# upload_http QUERY: nix copy --to http://ci:TOKEN@…/api/nix/bench, a fresh
# nixrepo store and server; PUTSECS = the server's time in PUT handlers
# (from /metrics, summed over requests, which may overlap).
upload_http() {
  local t0 t1 n pid
  rm -rf "$W/upload/store"
  "$NR" --config "$W/upload/nixrepo.toml" serve > "$W/upload/serve.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait_http "http://127.0.0.1:$PORT_UP/healthz" "$pid" "$W/upload/serve.log"
  t0=$(now)
  XDG_CACHE_HOME=$(fresh_xdg) nix copy --to "http://ci:$TOKEN@127.0.0.1:$PORT_UP/api/nix/bench?$1" "${BIG[@]}" 2>> "$W/upload/nix.log" \
    || { tail "$W/upload/nix.log" "$W/upload/serve.log" >&2; die "nix copy --to http://…/api/nix/bench failed"; }
  t1=$(now)
  PUTSECS=$(curl -fsS "http://127.0.0.1:$PORT_UP/metrics" \
    | awk '/^nixrepo_http_request_duration_seconds_sum\{.*method="PUT"/ {s += $2} END {printf "%.2f", s}')
  stop_pid "$pid"
  n=$(grep -l '^Sig: ' "$W"/upload/store/bench/*.narinfo 2>/dev/null | wc -l)
  [ "$n" = "${#BIG[@]}" ] || die "the server stored $n signed narinfos, expected ${#BIG[@]}"
  SECS=$(secs "$t0" "$t1")
}
# upload_dav QUERY: nix copy --to http://… of nginx accepting plain PUTs into
# a fresh folder (Nix's HTTP-store cost without any server-side work).
upload_dav() {
  local t0 t1 n
  rm -rf "$W/upload/dav"; mkdir -p "$W/upload/dav"
  t0=$(now)
  XDG_CACHE_HOME=$(fresh_xdg) nix copy --to "http://127.0.0.1:$PORT_DAV/bench?$1" "${BIG[@]}" 2>> "$W/upload/nix.log" \
    || { tail "$W/upload/nix.log" "$W/nginx-dav/error.log" >&2; die "nix copy --to nginx (PUT) failed"; }
  t1=$(now)
  n=$(count_narinfos "$W/upload/dav/bench")
  [ "$n" = "${#BIG[@]}" ] || die "nginx (PUT) received $n narinfos, expected ${#BIG[@]}"
  SECS=$(secs "$t0" "$t1")
}
PORT_DAV=$(free_port)
mkdir -p "$W/nginx-dav/tmp" "$W/upload/dav"; echo ok > "$W/upload/dav/ping"
sed -e "s|@WORK@|$W|g" -e "s|@ROOT@|$W/upload/dav|g" -e "s|@LISTEN@|127.0.0.1:$PORT_DAV|g" \
  "$SRC/bench/serve-nginx-dav.conf" > "$W/nginx-dav/nginx.conf"
DAV_ARGS=(-p "$W/nginx-dav" -e "$W/nginx-dav/error.log" -c "$W/nginx-dav/nginx.conf")
"$NGINX" -t -q "${DAV_ARGS[@]}" || die "nginx -t (PUT config)"
"$NGINX" "${DAV_ARGS[@]}" > "$W/nginx-dav/stdout.log" 2>&1 &
DAV_PID=$!; PIDS+=("$DAV_PID")
wait_http "http://127.0.0.1:$PORT_DAV/ping" "$DAV_PID" "$W/nginx-dav/error.log"

# VARIANT QUERY SIDES…: the nginx-PUT side only for zstd (with xz, Nix's
# compression dominates and each copy costs ~40 s).
VARIANTS+=("zstd compression=zstd file nixrepo dav")
[ "$XZ" = 1 ] && VARIANTS+=("xz $XZ_QUERY file nixrepo")
: > "$W/upload/nix.log"
log "uploads: ${#BIG[@]} paths, $((BIGNAR/1000000)) MB of NAR; $RUNS alternating runs per variant"
for r in $(seq "$RUNS"); do
  for vq in "${VARIANTS[@]}"; do
    read -r variant query sides <<<"$vq"
    read -ra sides <<<"$sides"
    # rotate the order of the sides from run to run
    order=()
    for i in "${!sides[@]}"; do order+=("${sides[$(( (i + r - 1) % ${#sides[@]} ))]}"); done
    for side in "${order[@]}"; do
      case $side in
        file) upload_file "$query" ;;
        nixrepo) upload_http "$query" ;;
        dav) upload_dav "$query" ;;
      esac
      echo "upload-$variant $side $r $SECS" >> "$W/results"
      extra=
      if [ "$side" = nixrepo ]; then
        echo "upload-$variant server-put $r $PUTSECS" >> "$W/results"
        extra="  (server PUT handlers: $PUTSECS s)"
      fi
      printf '  run %d  upload-%-5s %-8s %8s s%s\n' "$r" "$variant" "$side" "$SECS" "$extra" >&2
    done
  done
done
stop_pid "$DAV_PID"
fi

# --- report ------------------------------------------------------------------------
median() { sort -g | awk '{a[NR]=$1} END{if (NR == 0) exit 1; if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
med() { awk -v t="$1" -v s="$2" '$1==t && $2==s {print $4}' "$W/results" | median; }
runs() { awk -v t="$1" -v s="$2" '$1==t && $2==s {printf "%s%s", sep, $4; sep=" "}' "$W/results"; }
# paired TEST OTHER_SIDE: median over runs of nixrepo/OTHER within the same run
# (the two sides of a run are back to back, so this cancels slow drifts).
paired() {
  awk -v t="$1" -v s="$2" '$1==t && $2=="nixrepo" {a[$3]=$4} $1==t && $2==s {b[$3]=$4}
    END {for (r in a) if (r in b) printf "%.3f\n", a[r]/b[r]}' "$W/results" | median
}
# row LABEL TEST OTHER_SIDE CMP TARGET: the verdict is on the ratio of medians
# (CMP "-": no target, for information).
row() {
  local a b ratio pr ok=info
  grep -q "^$2 " "$W/results" || return 0 # not run (ONLY)
  a=$(med "$2" nixrepo); b=$(med "$2" "$3"); pr=$(paired "$2" "$3")
  ratio=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", a/b}')
  [ "$4" = - ] || ok=$(awk -v r="$ratio" -v c="$4" -v t="$5" 'BEGIN{print ((c==">=" && r>=t) || (c=="<=" && r<=t)) ? "ok" : "MISSED"}')
  printf "%-34s %10s %14s %7s %7s %8s  %s\n" "$1" "$a" "$b" "$ratio" "$pr" "$4 $5" "$ok"
}
echo
echo "nixrepo serve benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, medians of $RUNS alternating runs"
echo "reads: $NNARINFO narinfos, $NNAR NAR files ($NARSIZES MB), wrk ${DUR}s per run"
echo "upload: ${#BIG[@]} paths, NAR $((BIGNAR/1000000)) MB; xz variant: $XZ_QUERY"
echo
printf "%-34s %10s %14s %7s %7s %8s  %s\n" metric nixrepo "nginx/file://" ratio paired target ""
row "narinfo GET/s, 1 conn"   narinfo-c1  nginx ">=" 1.0
row "narinfo GET/s, 64 conns" narinfo-c64 nginx ">=" 1.0
row "NAR MB/s, 1 conn"        nar-c1      nginx ">=" 0.9
row "NAR MB/s, 64 conns"      nar-c64     nginx ">=" 0.9
for vq in "${VARIANTS[@]}"; do
  read -r variant query _ <<<"$vq"
  row "upload s, $variant (http/file://)" "upload-$variant" file "<=" 1.1
done
[ "$UPLOADS" = 1 ] && row "upload s, zstd (http/nginx PUT)" upload-zstd dav - ""
echo
echo "per run (nixrepo | baseline):"
for t in narinfo-c1 narinfo-c64 nar-c1 nar-c64; do
  printf "  %-14s %s | %s\n" "$t" "$(runs "$t" nixrepo)" "$(runs "$t" nginx)"
done
for vq in "${VARIANTS[@]}"; do
  read -r variant query _ <<<"$vq"
  printf "  %-14s %s | file:// %s\n" "upload-$variant" "$(runs "upload-$variant" nixrepo)" "$(runs "upload-$variant" file)"
  printf "  %-14s server PUT handlers %s s\n" "" "$(runs "upload-$variant" server-put)"
done
[ "$UPLOADS" = 1 ] && printf "  %-14s nginx PUT %s\n" upload-zstd "$(runs upload-zstd dav)"
echo "ratio = nixrepo median / baseline median (uploads: nix copy wall time to nixrepo / to the baseline;"
echo "  nginx PUT = nix copy to nginx accepting plain PUTs: Nix's own HTTP-store cost, no verification);"
echo "paired = median of the per-run ratios; the verdict is on ratio."
echo "(wrk output: $W/wrk.log; raw results: $W/results)"
