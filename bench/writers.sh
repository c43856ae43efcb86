#!/usr/bin/env bash
# Multi-writer benchmark: what the many-writers write protocol
# (docs/concurrency.md: write-once narinfos and listings, the re-check for a
# committed narinfo before a listing, settling the listing after the narinfo)
# costs. The baseline is the nixrepo binary built from BASE (default 5bb17ea,
# the last commit before the protocol), the other side the current checkout;
# both run in the same run on the same machine, alternating (odd runs
# baseline first, even runs current first), medians of RUNS runs, ratios
# current ÷ baseline.
#
#   1. narinfo PUT/s, CONNS (64) connections, one `nixrepo serve`, on a
#      folder bucket and on an S3 bucket (versitygw, posix backend): every
#      NAR file of NPUT synthetic paths uploaded first (untimed), then their
#      narinfos timed; afterwards every narinfo is read back and must be
#      signed. A fresh bucket and server per run and side. With the default
#      [server] limits one upload token holds all 16 upload slots, so 16
#      PUTs are handled at once and the others wait in the token's queue.
#      Target: current ≥ 0.9 × baseline.
#   2. `nixrepo run` (ingest with consume, then index and publish) of an
#      incoming folder of NRUN synthetic paths, every third referencing two
#      earlier ones, into a fresh folder bucket and a fresh S3 bucket: wall
#      time, and the ingest's own seconds from `run --json`. Every path must
#      be accepted and consumed. Target: current ≤ 1.1 × baseline.
#   3. narinfo GET/s (current build only), CONNS connections spread over 3
#      `nixrepo serve` replicas of one S3 bucket, vs all on 1 replica; after
#      one untimed read of every narinfo through every replica. Twice: with
#      the default in-memory narinfo cache (GETs answered from memory), and
#      with narinfo_cache_entries = 1 (every GET reads S3). For information:
#      the machine's cores are shared by the replicas, versitygw and the load
#      driver, whose CPU use the table shows (cores busy = CPU s ÷ wall s).
#
# Synthetic paths: a NAR of one small regular file, Compression: none,
# random nix32 hash parts (bench/writersbench gen); made once per run of the
# script and reused by every run.
#
# Usage: bench/writers.sh [WORKDIR]     (default /tmp/nixrepo-writers-bench)
# Environment: BASE (the baseline revision, 5bb17ea), RUNS (3), QUICK=1
#   (RUNS=1, NPUT=300, NRUN=300, DUR=3), NPUT (2000), NRUN (3000), CONNS
#   (64), DUR (GET seconds per run, 10), ONLY="put run get" (these parts
#   only), EXTRA_SERVER (TOML lines added to [server] of every server, e.g.
#   "max_uploads = 64"), VERSITYGW (/var/cache/nixrepo-ci/bin/versitygw, else
#   versitygw on PATH).
# The baseline is built from `git archive BASE` in WORKDIR (kept there as
# WORKDIR/bin/nixrepo-<commit> for the next run); the current build is
# rebuilt every time from the working tree, uncommitted changes included.
# Needs: Go, git, curl, python3, versitygw.
# Fails (exit 1) on any error, non-2xx answer, unsigned narinfo, refused or
# unconsumed path; targets are reported, not enforced.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
W=${1:-/tmp/nixrepo-writers-bench}
mkdir -p "$W"
W=$(cd "$W" && pwd)

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then RUNS=${RUNS:-1}; NPUT=${NPUT:-300}; NRUN=${NRUN:-300}; DUR=${DUR:-3}; fi
BASE=${BASE:-5bb17ea}
RUNS=${RUNS:-3}
NPUT=${NPUT:-2000}
NRUN=${NRUN:-3000}
CONNS=${CONNS:-64}
DUR=${DUR:-10}
ONLY=${ONLY:-put run get}
EXTRA_SERVER=${EXTRA_SERVER:-}

log() { echo "== $*" >&2; }
die() { echo "writers.sh: FAIL: $*" >&2; exit 1; }
want() { case " $ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
for t in go git curl python3; do command -v "$t" >/dev/null || die "$t is not installed"; done
VERSITYGW=${VERSITYGW:-$(command -v versitygw || echo /var/cache/nixrepo-ci/bin/versitygw)}
[ -x "$VERSITYGW" ] || die "versitygw is not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0), or set VERSITYGW"

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
stop_pid() {
  local p=$1 q=() x
  kill "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  for x in "${PIDS[@]}"; do [ "$x" = "$p" ] || q+=("$x"); done
  PIDS=("${q[@]}")
}
now() { date +%s.%N; }

# --- binaries --------------------------------------------------------------------
BASE_SHA=$(git rev-parse --verify --quiet "$BASE^{commit}") || die "BASE=$BASE is not a commit"
CUR_DESC=$(git describe --always --dirty)
mkdir -p "$W/bin"
NR_BASE="$W/bin/nixrepo-$BASE_SHA"
if [ ! -x "$NR_BASE" ]; then
  log "building the baseline nixrepo from $BASE ($BASE_SHA)"
  rm -rf "$W/base-src"; mkdir -p "$W/base-src"
  git archive "$BASE_SHA" | tar -x -C "$W/base-src"
  (cd "$W/base-src" && go build -o "$NR_BASE.tmp" ./cmd/nixrepo) || die "building $BASE"
  mv "$NR_BASE.tmp" "$NR_BASE"
  rm -rf "$W/base-src"
fi
log "building the current nixrepo ($CUR_DESC) and writersbench"
go build -o "$W/bin/nixrepo-current" ./cmd/nixrepo
go build -o "$W/bin/writersbench" ./bench/writersbench
NR_CUR="$W/bin/nixrepo-current"
WB="$W/bin/writersbench"
bin_of() { if [ "$1" = base ]; then echo "$NR_BASE"; else echo "$NR_CUR"; fi; }

# --- data, key, token ---------------------------------------------------------------
rm -rf "$W/data" "$W/runs" "$W/s3" "$W"/*.log
mkdir -p "$W/data" "$W/runs" "$W/s3"
log "generating $NPUT paths for the PUTs and $NRUN (with references) for the runs"
"$WB" gen -out "$W/data/put" -n "$NPUT"
"$WB" gen -out "$W/data/run" -n "$NRUN" -refs
rm -f "$W/bench.sec"
"$NR_CUR" keygen bench-1 --out "$W/bench.sec" > /dev/null || die "nixrepo keygen"
tokout=$("$NR_CUR" token new ci --write bench)
TOKEN=$(sed -n 's/^token: //p' <<<"$tokout")
TOKTABLE=$(sed -n '/^\[\[token\]\]/,$p' <<<"$tokout")
[ -n "$TOKEN" ] && grep -q '^sha256 = ' <<<"$TOKTABLE" || die "unexpected output of nixrepo token new: $tokout"

# --- the S3 server ---------------------------------------------------------------------
S3PORT=$(free_port)
S3EP="http://127.0.0.1:$S3PORT"
export AWS_ACCESS_KEY_ID=bench
AWS_SECRET_ACCESS_KEY=$(python3 -c 'import secrets;print(secrets.token_hex(12))')
export AWS_SECRET_ACCESS_KEY
"$VERSITYGW" --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" --port "127.0.0.1:$S3PORT" posix "$W/s3" > "$W/versitygw.log" 2>&1 &
S3PID=$!; PIDS+=("$S3PID")
for i in $(seq 200); do
  curl -s -o /dev/null "$S3EP/" 2>/dev/null && break
  kill -0 "$S3PID" 2>/dev/null || { cat "$W/versitygw.log" >&2; die "versitygw exited"; }
  sleep 0.1
done
curl -s -o /dev/null "$S3EP/" || { cat "$W/versitygw.log" >&2; die "versitygw does not answer on $S3EP"; }

# store_url BACKEND DIR NAME: a fresh bucket's store URL (folder: DIR/store).
store_url() {
  if [ "$1" = folder ]; then
    echo "file://$2/store"
  else
    "$WB" mkbucket -endpoint "$S3EP" -bucket "$3" || die "creating bucket $3"
    echo "s3://$3?endpoint=$S3EP&use_path_style=true&region=us-east-1&disable_https=true&request_checksum_calculation=when_required&response_checksum_validation=when_required"
  fi
}
# write_config DIR STORE_URL [INCOMING_DIR] [SERVER_LINES]: DIR/nixrepo.toml.
write_config() {
  local inc=""
  [ -z "${3:-}" ] || inc="incoming = [\"file://$3\"]"
  cat > "$1/nixrepo.toml" <<TOML
version = 1
[store]
url = "$2"
[server]
${4:-}
$EXTRA_SERVER
[[repo]]
name = "bench"
type = "local"
signing_key_file = "$W/bench.sec"
public = true
$inc
$TOKTABLE
TOML
}
# start_serve BIN DIR PORT: sets SPID (the server answers /healthz).
start_serve() {
  local i
  NIXREPO_INDEX_DIR="$2/index-$3" "$1" --config "$2/nixrepo.toml" serve --listen "127.0.0.1:$3" > "$2/serve-$3.log" 2>&1 &
  SPID=$!; PIDS+=("$SPID")
  for i in $(seq 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$3/healthz" 2>/dev/null && return 0
    kill -0 "$SPID" 2>/dev/null || { cat "$2/serve-$3.log" >&2; die "nixrepo serve ($1) exited"; }
    sleep 0.05
  done
  cat "$2/serve-$3.log" >&2; die "nixrepo serve ($1) did not answer /healthz"
}
# field RESULT_LINE KEY: the value of KEY=… in a RESULT line.
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

: > "$W/results" # TEST SIDE RUN VALUE
: > "$W/cpu"     # TEST SIDE RUN WALL_SECS NAME=CPU_SECS…

# --- 1. narinfo PUTs ---------------------------------------------------------------
# put_one BACKEND SIDE RUN
put_one() {
  local be=$1 side=$2 r=$3 d port url res
  d="$W/runs/put-$be-$side-$r"; mkdir -p "$d"
  port=$(free_port)
  url=$(store_url "$be" "$d" "put-$be-$side-$r")
  write_config "$d" "$url"
  start_serve "$(bin_of "$side")" "$d" "$port"
  local pids="serve=$SPID"
  [ "$be" = s3 ] && pids+=",s3=$S3PID"
  res=$("$WB" put -url "http://127.0.0.1:$port/api/nix/bench" -token "$TOKEN" -dir "$W/data/put" -conns "$CONNS" -pids "$pids") \
    || { tail -20 "$d/serve-$port.log" >&2; die "put-$be $side run $r"; }
  stop_pid "$SPID"
  echo "put-$be $side $r $(field "$res" rate)" >> "$W/results"
  echo "put-$be $side $r $(field "$res" secs) ${res#RESULT n=* secs=* rate=* }" >> "$W/cpu"
  printf '  run %d  %-10s %-8s %10s PUT/s\n' "$r" "put-$be" "$side" "$(field "$res" rate)" >&2
  rm -rf "$d/store" "$W/s3/put-$be-$side-$r"
}

# --- 2. nixrepo run ----------------------------------------------------------------
# run_one BACKEND SIDE RUN
run_one() {
  local be=$1 side=$2 r=$3 d url t0 t1 wall ing left
  d="$W/runs/run-$be-$side-$r"; mkdir -p "$d"
  cp -a "$W/data/run" "$d/incoming"
  url=$(store_url "$be" "$d" "run-$be-$side-$r")
  write_config "$d" "$url" "$d/incoming"
  sync
  t0=$(now)
  NIXREPO_INDEX_DIR="$d/index" "$(bin_of "$side")" --config "$d/nixrepo.toml" --quiet run --json > "$d/run.json" 2> "$d/run.err" \
    || { tail -20 "$d/run.err" >&2; die "nixrepo run ($side, $be, run $r)"; }
  t1=$(now)
  ing=$("$WB" runcheck -json "$d/run.json" -n "$NRUN") || die "run-$be $side run $r: see $d/run.json"
  left=$(find "$d/incoming" -name '*.narinfo' | wc -l)
  [ "$left" = 0 ] || die "run-$be $side run $r: $left narinfos left in the incoming folder"
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
  echo "run-$be $side $r $wall" >> "$W/results"
  echo "ingest-$be $side $r $ing" >> "$W/results"
  printf '  run %d  %-10s %-8s %8s s (ingest %s s)\n' "$r" "run-$be" "$side" "$wall" "$ing" >&2
  rm -rf "$d/store" "$d/incoming" "$d/index" "$W/s3/run-$be-$side-$r"
}

for r in $(seq "$RUNS"); do
  if [ $(( r % 2 )) = 1 ]; then order="base current"; else order="current base"; fi
  log "run $r of $RUNS ($order)"
  for be in folder s3; do
    if want put; then for side in $order; do put_one "$be" "$side" "$r"; done; fi
    if want run; then for side in $order; do run_one "$be" "$side" "$r"; done; fi
  done
done

# --- 3. narinfo GETs through 1 and 3 replicas (current build) ---------------------------
# get_variant NAME SERVER_LINES
get_variant() {
  local v=$1 d port i ports=() spids=() url urls1 urls3 pids res order n
  d="$W/runs/get-$v"; mkdir -p "$d"
  url=$(store_url s3 "$d" "get-$v")
  write_config "$d" "$url" "" "$2"
  for i in 1 2 3; do
    port=$(free_port)
    start_serve "$NR_CUR" "$d" "$port"
    ports+=("$port"); spids+=("$SPID")
  done
  log "GETs ($v): uploading $NPUT paths through replica 1"
  "$WB" put -url "http://127.0.0.1:${ports[0]}/api/nix/bench" -token "$TOKEN" -dir "$W/data/put" -conns "$CONNS" > /dev/null \
    || die "uploading the paths for the GETs"
  urls1="http://127.0.0.1:${ports[0]}/api/nix/bench"
  urls3="$urls1,http://127.0.0.1:${ports[1]}/api/nix/bench,http://127.0.0.1:${ports[2]}/api/nix/bench"
  pids="serve1=${spids[0]},serve2=${spids[1]},serve3=${spids[2]},s3=$S3PID"
  for r in $(seq "$RUNS"); do
    if [ $(( r % 2 )) = 1 ]; then order="3 1"; else order="1 3"; fi
    for n in $order; do
      if [ "$n" = 3 ]; then u=$urls3; else u=$urls1; fi
      res=$("$WB" get -urls "$u" -dir "$W/data/put" -conns "$CONNS" -dur "${DUR}s" -pids "$pids") \
        || { for p in "${ports[@]}"; do tail -5 "$d/serve-$p.log" >&2; done; die "get-$v, $n replicas, run $r"; }
      echo "get-$v r$n $r $(field "$res" rate)" >> "$W/results"
      echo "get-$v r$n $r $(field "$res" secs) ${res#RESULT n=* secs=* rate=* }" >> "$W/cpu"
      printf '  run %d  %-12s %d replica(s) %10s GET/s\n' "$r" "get-$v" "$n" "$(field "$res" rate)" >&2
    done
  done
  for p in "${spids[@]}"; do stop_pid "$p"; done
}
if want get; then
  get_variant cached ""
  get_variant uncached "narinfo_cache_entries = 1"
fi
stop_pid "$S3PID"

# --- report --------------------------------------------------------------------------
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "-"; else if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
med() { awk -v t="$1" -v s="$2" '$1==t && $2==s {print $4}' "$W/results" | median; }
runs() { awk -v t="$1" -v s="$2" '$1==t && $2==s {printf "%s%s", sep, $4; sep=" "}' "$W/results"; }
# paired TEST A B: median over runs of A/B within the same run.
paired() {
  awk -v t="$1" -v x="$2" -v y="$3" '$1==t && $2==x {a[$3]=$4} $1==t && $2==y {b[$3]=$4}
    END {for (r in a) if (r in b) printf "%.3f\n", a[r]/b[r]}' "$W/results" | median
}
# cores TEST SIDE: median over runs of CPU seconds ÷ wall seconds, per process.
cores() {
  awk -v t="$1" -v s="$2" '$1==t && $2==s {for (i = 5; i <= NF; i++) {split($i, kv, "="); n=kv[1]; sub(/^cpu_/, "", n); v[n] = v[n] " " kv[2]/$4}}
    END {for (n in v) print n, v[n]}' "$W/cpu" | sort | while read -r n vals; do
      printf ' %s %s' "$n" "$(tr ' ' '\n' <<<"$vals" | grep . | median | awk '{printf "%.2f", $1}')"
    done
}
# row LABEL TEST A B CMP TARGET: A's median, B's, A/B of the medians, paired.
row() {
  local a b ratio pr ok=info
  grep -q "^$2 " "$W/results" || return 0
  a=$(med "$2" "$3"); b=$(med "$2" "$4"); pr=$(paired "$2" "$3" "$4")
  ratio=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", a/b}')
  [ "$5" = - ] || ok=$(awk -v r="$ratio" -v c="$5" -v t="$6" 'BEGIN{print ((c==">=" && r>=t) || (c=="<=" && r<=t)) ? "ok" : "MISSED"}')
  printf "%-36s %10s %10s %7s %7s %8s  %s\n" "$1" "$b" "$a" "$ratio" "$pr" "$5 $6" "$ok"
}
echo
echo "nixrepo multi-writer benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, medians of $RUNS alternating runs"
echo "baseline $BASE ($(git log -1 --format='%h %s' "$BASE_SHA" | cut -c1-70)); current $CUR_DESC"
echo "PUT: $NPUT narinfos, $CONNS connections; run: $NRUN paths; GET: ${DUR}s per run, $CONNS connections${EXTRA_SERVER:+; [server] $EXTRA_SERVER}"
echo
printf "%-36s %10s %10s %7s %7s %8s  %s\n" metric baseline current ratio paired target ""
row "narinfo PUT/s, folder bucket"      put-folder    current base ">=" 0.9
row "narinfo PUT/s, S3 (versitygw)"     put-s3        current base ">=" 0.9
row "run wall s, folder bucket"         run-folder    current base "<=" 1.1
row "run wall s, S3 (versitygw)"        run-s3        current base "<=" 1.1
row "  of which ingest s, folder"       ingest-folder current base - ""
row "  of which ingest s, S3"           ingest-s3     current base - ""
if grep -q '^get-' "$W/results"; then
  echo
  printf "%-36s %10s %10s %7s %7s %8s  %s\n" "current build" "1 replica" "3 replicas" ratio paired "" ""
  row "narinfo GET/s, S3, narinfo cache"  get-cached   r3 r1 - ""
  row "narinfo GET/s, S3, no cache"       get-uncached r3 r1 - ""
fi
echo
echo "per run (baseline | current; GET: 1 replica | 3 replicas):"
for t in put-folder put-s3 run-folder run-s3 ingest-folder ingest-s3; do
  grep -q "^$t " "$W/results" && printf "  %-14s %s | %s\n" "$t" "$(runs "$t" base)" "$(runs "$t" current)"
done
for t in get-cached get-uncached; do
  grep -q "^$t " "$W/results" && printf "  %-14s %s | %s\n" "$t" "$(runs "$t" r1)" "$(runs "$t" r3)"
done
echo "cores busy during the timed part (median CPU s ÷ wall s; self = the load driver):"
for t in put-folder put-s3; do
  grep -q "^$t " "$W/cpu" && printf "  %-14s baseline:%s | current:%s\n" "$t" "$(cores "$t" base)" "$(cores "$t" current)"
done
for t in get-cached get-uncached; do
  grep -q "^$t " "$W/cpu" && printf "  %-14s 1 replica:%s | 3 replicas:%s\n" "$t" "$(cores "$t" r1)" "$(cores "$t" r3)"
done
echo "ratio = current median / baseline median (GET: 3 replicas / 1); paired = median of the per-run ratios;"
echo "the verdict is on ratio. (raw results: $W/results, $W/cpu; logs under $W/runs)"
