#!/usr/bin/env bash
# Hostile-input benchmark: what `nixrepo serve` costs, and what its ordinary
# clients see, while it is under every hostile-input attack of
# docs/security.md at once (bounded, loopback only). The baseline, in the
# same run, is the SAME server with the same legitimate load and no attack,
# measured before and after the attack; medians of RUNS runs.
#
#   Attacks (bench/hostilebench, each by its own goroutines, CONC each, for
#   DUR seconds; uploads by the "attacker" token to the private repository):
#     1. channel PUT of a tarball with a symlink top/x → /etc/passwd then a
#        regular file top/x (422); an xz tar bomb unpacking past
#        max_tarball_unpacked_size, set to 64 MiB here (413);
#     2. narinfo PUT larger than 1 MiB (413); narinfo PUT, Content-Encoding
#        xz, declaring a 1.5 GiB dictionary (413); a gzip log bomb decoding
#        to 1 GiB (413 at 256 MiB);
#     3. NAR PUT of a zstd NAR of a 1 GiB zero file, past max_nar_size, set
#        to 256 MiB here (413); a NAR of 4000 symlinks with 60 KiB targets
#        and its narinfo (accepted without a listing: 200);
#     4. /api/search with 3000–4000-character queries and 17–40 words, and
#        /api/packages/<name> of 212–4000 bytes (400);
#     5. anonymous GETs of the private repository's narinfos and NARs,
#        directly, through the virtual repository (401) and through the
#        public one (404); a token that may not read it and a wrong password
#        (404, 403), each compared byte for byte with the answer for an
#        unknown repository name; PUTs to the virtual repository (403/405);
#     6. slowloris: a second attacker token ("slowloris") keeps SLOW_CONNS
#        uploads open, each trickling a byte every TRICKLE seconds (with
#        upload_timeout 10s and upload_queue_timeout 20s here, so refusals
#        happen within the run: 400), and SLOW_HDR connections trickle
#        request headers;
#     7. GETs of the channel redirects and the release page with a hostile
#        Host, X-Forwarded-Host and Forwarded: nothing may echo it.
#   The slowloris has its own token: with the attacker's, its held slots
#   would leave the other attacks waiting in the attacker's queue, untested.
#
#   Meanwhile the legitimate traffic: narinfo GETs on GET_CONNS keep-alive
#   connections, GET_RATE per second in all, cycling over the real narinfos
#   (testdata/sample-cache in the private repository with a reader token,
#   NPUB generated paths in the public one anonymously, both through the
#   virtual one); and one upload per second by the "legit" token (a fresh
#   NAR, its unsigned narinfo, then a GET of the signed narinfo).
#
#   Measured: the server's VmRSS every 20 ms (and of its xz children), idle
#   (end of the phase before the attack) and peak (attack and drain);
#   narinfo GET p50/p99/max per phase; legitimate uploads and failures;
#   every answer of every attack by status.
#   Targets: peak RSS ≤ 256 MiB above idle; narinfo GET p99 ≤ 50 ms during
#   the attack; every legitimate upload made during it succeeds.
#
# Usage: bench/hostile.sh [WORKDIR]     (default /tmp/nixrepo-hostile-bench)
# Environment: RUNS (3), DUR (attack seconds, 30), BASE (seconds before and
#   after, 10), WARM (3), QUICK=1 (RUNS=1 DUR=8 BASE=4), ONLY="slowloris nar-listing"
#   (these attacks or groups only: channel narinfo nar search oracle
#   slowloris host, or attack names), CONC (2 per attack), PAUSE (20ms
#   between one goroutine's requests), TRICKLE (2s), SLOW_CONNS (300),
#   SLOW_HDR (32), GET_CONNS (8), GET_RATE (400), NPUB (200), SERVER_ENV
#   (e.g. "GOGC=100" or "GOMEMLIMIT=256MiB": the server's environment; it
#   always runs without the caller's GOGC and GOMEMLIMIT otherwise, so by
#   default it measures nixrepo's own GC setting), EXTRA_SERVER (TOML lines
#   added to [server], e.g. "max_uploads_per_token = 1").
# Needs: Go, curl, python3. The store and server are made fresh each time.
# Fails (exit 1) on a setup error, and when an attack got an answer that is
# never allowed (a 5xx/202/408/429 to a PUT, a 2xx where a refusal is
# documented, an answer that is not the documented one, a repository-name
# oracle, an echoed Host), a legitimate GET or upload failed, or a refused
# upload left something in the repository. The RSS and latency targets are
# reported, not enforced.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
W=${1:-/tmp/nixrepo-hostile-bench}
mkdir -p "$W"
W=$(cd "$W" && pwd)

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then RUNS=${RUNS:-1}; DUR=${DUR:-8}; BASE=${BASE:-4}; fi
RUNS=${RUNS:-3}
DUR=${DUR:-30}
BASE=${BASE:-10}
WARM=${WARM:-3}
ONLY=${ONLY:-}
CONC=${CONC:-2}
PAUSE=${PAUSE:-20ms}
TRICKLE=${TRICKLE:-2s}
SLOW_CONNS=${SLOW_CONNS:-300}
SLOW_HDR=${SLOW_HDR:-32}
GET_CONNS=${GET_CONNS:-8}
GET_RATE=${GET_RATE:-400}
NPUB=${NPUB:-200}
SERVER_ENV=${SERVER_ENV:-}
EXTRA_SERVER=${EXTRA_SERVER:-}

log() { echo "== $*" >&2; }
die() { echo "hostile.sh: FAIL: $*" >&2; exit 1; }
for t in curl python3 go; do command -v "$t" >/dev/null || die "$t is not installed"; done

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

# --- binaries ------------------------------------------------------------------
log "building nixrepo and hostilebench"
go build -o "$W/nixrepo" ./cmd/nixrepo
go build -o "$W/hostilebench" ./bench/hostilebench
NR="$W/nixrepo"
HB="$W/hostilebench"

# --- a fresh store, keys, tokens, configuration -------------------------------------
rm -rf "$W/store" "$W/tmp" "$W/var" "$W/keys" "$W/pub-cache" "$W/runs" "$W/nixrepo.toml" "$W"/serve-*.log
mkdir -p "$W/keys" "$W/runs"
"$NR" keygen priv-1 --out "$W/keys/priv.sec" > /dev/null || die "nixrepo keygen priv-1"
"$NR" keygen pub-1 --out "$W/keys/pub.sec" > /dev/null || die "nixrepo keygen pub-1"

: > "$W/tokens"
TOKTABLES=
# token NAME ARGS…: a token from `nixrepo token new`, its table for the config.
token() {
  local name=$1 out tok
  shift
  out=$("$NR" token new "$name" "$@") || die "nixrepo token new $name"
  tok=$(sed -n 's/^token: //p' <<<"$out")
  [ -n "$tok" ] && grep -q '^sha256 = ' <<<"$out" || die "unexpected output of nixrepo token new: $out"
  echo "$name $tok" >> "$W/tokens"
  TOKTABLES+=$(sed -n '/^\[\[token\]\]/,$p' <<<"$out")$'\n'
}
token attacker --read priv,pub,all --write priv
token slowloris --read priv --write priv
token legit --read priv,pub --write priv,pub
token reader --read priv,pub,all
token outsider --read pub

PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
cat > "$W/nixrepo.toml" <<TOML
version = 1
[store]
url = "file://./store"
[server]
listen = "127.0.0.1:$PORT"
max_nar_size = "256MiB"
upload_timeout = "10s"
upload_queue_timeout = "20s"
$EXTRA_SERVER
[channels]
max_tarball_unpacked_size = "64MiB"
[site]
server_url = "https://nix.example.org"
[[repo]]
name = "priv"
type = "local"
signing_key_file = "$W/keys/priv.sec"
[[repo]]
name = "pub"
type = "local"
signing_key_file = "$W/keys/pub.sec"
public = true
[[repo]]
name = "all"
type = "virtual"
members = ["priv", "pub"]
$TOKTABLES
TOML
CFG=(--config "$W/nixrepo.toml")
"$NR" "${CFG[@]}" config check > "$W/config-check.log" 2>&1 || { cat "$W/config-check.log" >&2; die "nixrepo config check"; }

# --- data: the sample cache in priv, generated paths and a channel in pub ------------
log "ingesting testdata/sample-cache into priv and $NPUB generated paths into pub"
"$HB" gen -out "$W/pub-cache" -n "$NPUB" -channel "$W/channel.tar.xz"
"$NR" "${CFG[@]}" --quiet ingest --repo priv "$SRC/testdata/sample-cache" > "$W/setup.log" 2>&1 \
  || { cat "$W/setup.log" >&2; die "nixrepo ingest --repo priv testdata/sample-cache"; }
"$NR" "${CFG[@]}" --quiet ingest --repo pub "$W/pub-cache" >> "$W/setup.log" 2>&1 \
  || { tail "$W/setup.log" >&2; die "nixrepo ingest --repo pub"; }
"$NR" "${CFG[@]}" channel push --repo pub --channel bench --flavor nixpkgs --snapshot 1 "$W/channel.tar.xz" >> "$W/setup.log" 2>&1 \
  || { tail "$W/setup.log" >&2; die "nixrepo channel push"; }
"$NR" "${CFG[@]}" --quiet index >> "$W/setup.log" 2>&1 || { tail "$W/setup.log" >&2; die "nixrepo index"; }

# --- runs: a fresh server process each --------------------------------------------
for r in $(seq "$RUNS"); do
  # shellcheck disable=SC2086 # SERVER_ENV is a list of NAME=VALUE words
  env -u GOGC -u GOMEMLIMIT $SERVER_ENV "$NR" "${CFG[@]}" serve > "$W/serve-$r.log" 2>&1 &
  SPID=$!; PIDS+=("$SPID")
  for i in $(seq 200); do
    curl -fsS -o /dev/null "$URL/healthz" 2>/dev/null && break
    kill -0 "$SPID" 2>/dev/null || { cat "$W/serve-$r.log" >&2; die "the server exited"; }
    sleep 0.05
  done
  curl -fsS -o /dev/null "$URL/healthz" || { cat "$W/serve-$r.log" >&2; die "the server did not answer"; }
  log "run $r of $RUNS (server pid $SPID)"
  "$HB" run -url "$URL" -pid "$SPID" -tokens "$W/tokens" -run "$r" -out "$W/runs/run-$r.json" \
    -priv-cache "$SRC/testdata/sample-cache" -pub-cache "$W/pub-cache" \
    -dur "${DUR}s" -base "${BASE}s" -warm "${WARM}s" -only "$ONLY" -conc "$CONC" -pause "$PAUSE" \
    -trickle "$TRICKLE" -slow-conns "$SLOW_CONNS" -slow-hdr "$SLOW_HDR" -get-conns "$GET_CONNS" -get-rate "$GET_RATE" \
    || { tail -20 "$W/serve-$r.log" >&2; die "hostilebench run $r"; }
  kill -0 "$SPID" 2>/dev/null || { tail -20 "$W/serve-$r.log" >&2; die "the server died during run $r"; }
  kill "$SPID"; wait "$SPID" 2>/dev/null || true
  PIDS=()
done

# --- nothing of a refused upload is in the repositories --------------------------------
left=$(cd "$W/store" && find priv pub all -path '*/channels/evil*' -o -path '*/channels/bomb*' -o -path '*/channels/slow*' \
  -o -name '*-evil.drv' -o -name '*-slow.drv' -o -name '*.nar' -size +100M 2>/dev/null | head) || true
[ -z "$left" ] || die "refused uploads left objects in the store: $left"
tmpleft=$(find "$W/store/_nixrepo/tmp" -type f 2>/dev/null | wc -l)
echo "(store check: nothing of the refused uploads in priv, pub or all; $tmpleft file(s) left in the store's _nixrepo/tmp after the servers stopped)"

# --- report ---------------------------------------------------------------------
[ -z "$SERVER_ENV" ] || echo "(server environment: $SERVER_ENV)"
[ -z "$EXTRA_SERVER" ] || echo "(added to [server]: $EXTRA_SERVER)"
"$HB" report "$W"/runs/run-*.json
echo "(run results: $W/runs/*.json; server logs: $W/serve-*.log)"
