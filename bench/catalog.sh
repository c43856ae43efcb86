#!/usr/bin/env bash
# Package catalog benchmark: catalog + search index build, incremental
# update, search latency through the HTTP API and peak memory, on synthetic
# buckets made from a REAL package list (Debian's), same machine, one run.
#
#   1. Full build at 100k store paths (narinfos in a file:// bucket, two
#      repositories, one channel snapshot with store-paths.xz and
#      packages.json.br, and the path journal as nixrepo's writers leave it:
#      one object per 1000 narinfos, written by `catalogbench journal`):
#      `index.Build` listing the narinfos, taking their records from the
#      journal, writing the catalog to the bucket and the bleve index (one
#      document per package). Also, for comparison, the same build without
#      a journal (every narinfo read: a bucket written by other tools).
#      Every build starts with no catalog in the bucket and no index.
#      Target ≤ 15 s. Compared in the same run with bleve's own NewBuilder
#      indexing the same documents alone, RUNS times alternating with
#      rebuilds (the first build compacts the journal; the rest read one
#      object per repository, as every later build does): target our rate
#      ≥ 0.8× its rate, i.e. median bleve-alone time ÷ median build time
#      ≥ 0.8. Every timed run (ours or bleve's) starts with the heap
#      collected and returned to the OS, as a fresh process's would be, so
#      no run inherits another's memory. For context also NewBuilder indexing one document per store
#      path (the design not taken).
#   2. Incremental +1 narinfo at 100k: `index.Update` (list keys, read the
#      new narinfo, recompute and re-index one package). Target ≤ 1 s.
#   3. Full build at 1M store paths; peak RSS (/usr/bin/time -v). Target
#      ≤ 1 GiB.
#   4. Search latency at 1M through the HTTP API: the server's
#      /api/search handler (server.SearchAPI over search.Engine) on
#      127.0.0.1, one client, sequential requests: 40% exact names, 30%
#      prefixes of 3–6 characters, 15% a word of a name, 15% one-typo names.
#      Target p99 ≤ 10 ms. Peak RSS of the server too.
#
# Buckets are generated once into WORKDIR and reused (delete it to redo).
# Usage: bench/catalog.sh [WORKDIR]    (default /var/tmp/nixrepo-catalog-bench)
# Environment: SMALL (100000), LARGE (1000000), QUERIES (3000), RUNS (5:
# builds and bleve-alone runs alternated at SMALL; the ratio is of medians).
# Needs: Go, python3, /usr/bin/time; Debian's package lists
# (/var/lib/apt/lists/*Packages*, after apt-get update) or else dpkg-query.
# Targets are reported, not enforced; any error fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/var/tmp/nixrepo-catalog-bench}
SMALL=${SMALL:-100000}
LARGE=${LARGE:-1000000}
QUERIES=${QUERIES:-3000}
RUNS=${RUNS:-5}
mkdir -p "$W"
W=$(cd "$W" && pwd)
T0=$(date +%s)

echo "== building catalogbench"
go build -o "$W/catalogbench" ./bench/catalogbench
CB="$W/catalogbench"
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

if [ ! -s "$W/list.tsv" ]; then
	lists=$(ls /var/lib/apt/lists/*_Packages* 2>/dev/null | grep -v -e '\.diff' -e 'i18n' || true)
	if [ -n "$lists" ]; then
		echo "== package list: Debian Packages files ($(echo "$lists" | wc -l) lists)"
		for f in $lists; do /usr/lib/apt/apt-helper cat-file "$f"; done |
			awk -F': ' '/^Package: /{p=$2} /^Version: /{v=$2} /^Description: /{print p "\t" v "\t" substr($0, 14)}' >"$W/list.tsv"
	else
		echo "== package list: dpkg-query (run apt-get update for Debian's full list)"
		dpkg-query -W -f '${Package}\t${Version}\t${binary:Summary}\n' >"$W/list.tsv"
	fi
fi
echo "   $(wc -l <"$W/list.tsv") packages in the list"

gen() { # gen N DIR
	if [ ! -e "$2/.done" ]; then
		rm -rf "$2"
		"$CB" gen -out "$2" -paths "$1" <"$W/list.tsv"
		touch "$2/.done"
	else
		echo "   reusing $2"
	fi
}

journal() { # journal DIR: the path journal as writers leave it (1000 notes an object)
	"$CB" journal -store "$1" -batch 1000 2>&1 | sed 's/^/   /'
	touch "$1/.journal"
}

peak_rss() { sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$1"; }

echo "== 1. full build at $SMALL paths (+ bleve NewBuilder alone on the same documents)"
gen "$SMALL" "$W/small"
"$CB" build -store "$W/small" -index "$W/small-index" -nojournal \
	>"$W/build-small-nojournal.json" 2>"$W/build-small-nojournal.err" || { cat "$W/build-small-nojournal.err" >&2; exit 1; }
grep -E '^build' "$W/build-small-nojournal.err" | sed 's/^/   without a journal: /'
journal "$W/small"
sync
/usr/bin/time -v "$CB" build -store "$W/small" -index "$W/small-index" -baseline -runs "$RUNS" -pathdocs -v \
	>"$W/build-small.json" 2>"$W/build-small.err" || { cat "$W/build-small.err" >&2; exit 1; }
grep -E '^(build|bleve|run)|catalog built' "$W/build-small.err" | sed 's/^/   /'

echo "== 2. incremental +1 path at $SMALL paths"
"$CB" incr -store "$W/small" -index "$W/small-index" -n 5 >"$W/incr.json" 2>"$W/incr.err" || { cat "$W/incr.err" >&2; exit 1; }
sed 's/^/   /' "$W/incr.err"

echo "== 3. full build at $LARGE paths"
gen "$LARGE" "$W/large"
[ -e "$W/large/.journal" ] || journal "$W/large"
sync
/usr/bin/time -v "$CB" build -store "$W/large" -index "$W/large-index" -v \
	>"$W/build-large.json" 2>"$W/build-large.err" || { cat "$W/build-large.err" >&2; exit 1; }
grep -E '^build|catalog built' "$W/build-large.err" | sed 's/^/   /'

echo "== 4. search through the HTTP API at $LARGE paths"
rm -f "$W/ready"
/usr/bin/time -v "$CB" serve -store "$W/large" -index "$W/large-index" -ready "$W/ready" \
	>"$W/serve.json" 2>"$W/serve.err" &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do [ -s "$W/ready" ] && break; sleep 0.1; done
[ -s "$W/ready" ] || { cat "$W/serve.err" >&2; exit 1; }
"$CB" query -url "$(cat "$W/ready")" -names "$W/large/names.txt" -n "$QUERIES" >"$W/query.json"
pkill -TERM -P "$SERVE" 2>/dev/null || true # the benchmark process under /usr/bin/time
wait "$SERVE" || true
trap - EXIT

python3 - "$W" "$(peak_rss "$W/build-small.err")" "$(peak_rss "$W/build-large.err")" "$(peak_rss "$W/serve.err")" "$SMALL" "$LARGE" <<'EOF'
import json, sys
w, rss_small, rss_large, rss_serve, small, large = sys.argv[1:]
load = lambda f: json.loads(open(f"{w}/{f}").read().strip().splitlines()[-1])
bs, inc, bl, q = load("build-small.json"), load("incr.json"), load("build-large.json"), load("query.json")
bn = load("build-small-nojournal.json")
gib = lambda kb: int(kb) / 1024 / 1024
rows = [
    ("full build, %s paths (%d narinfos, %d packages = docs; journal: %d objects)" % (small, bs["narinfos"], bs["packages"], bs["journalObjects"]), "%.2f s" % bs["seconds"], "≤ 15 s", "%.2f× of target time" % (bs["seconds"] / 15)),
    ("  the same without a path journal (every narinfo read)", "%.2f s" % bn["seconds"], "", ""),
    ("  median of %d builds (journal compacted by the first; no catalog before each)" % bs["runs"], "%.2f s (%.0f docs/s)" % (bs["medianSeconds"], bs["packages"] / bs["medianSeconds"]), "", ""),
    ("  bleve NewBuilder alone, same %d docs (median of %d)" % (bs["packages"], bs["runs"]), "%.2f s (%.0f docs/s)" % (bs["bleveSeconds"], bs["bleveDocsPerSec"]), "", ""),
    ("  our rate ÷ bleve-alone rate (wall, medians)", "%.2f×" % bs["ratio"], "≥ 0.8×", "%.2f× of target" % (bs["ratio"] / 0.8)),
    ("  same, CPU seconds (medians %.2f vs %.2f)" % (bs["medianCPUSeconds"], bs["bleveCPUSeconds"]), "%.2f×" % bs["cpuRatio"], "", ""),
    ("  bleve alone, one doc per store path (%d docs)" % bs["perPathDocs"], "%.2f s" % bs["perPathSeconds"], "", "its time ÷ ours: %.2f×" % (bs["perPathSeconds"] / bs["seconds"])),
    ("  peak RSS (build + baselines)", "%.0f MiB" % (int(rss_small) / 1024), "", ""),
    ("incremental +1 path at %s (median of %d; max)" % (small, len(inc["seconds"])), "%.3f s; %.3f s" % (inc["median"], inc["max"]), "≤ 1 s", "%.2f× of target time" % (inc["max"] / 1.0)),
    ("full build, %s paths (%d narinfos, %d packages; journal: %d objects)" % (large, bl["narinfos"], bl["packages"], bl["journalObjects"]), "%.2f s" % bl["seconds"], "", ""),
    ("  peak RSS of the build", "%.2f GiB" % gib(rss_large), "≤ 1 GiB", "%.2f× of target" % gib(rss_large)),
    ("search via HTTP at %s: p50 / p90 / p99 / max (%d queries, %d without hits)" % (large, q["n"], q["noHits"]), "%.2f / %.2f / %.2f / %.2f ms" % (q["p50ms"], q["p90ms"], q["p99ms"], q["maxms"]), "p99 ≤ 10 ms", "%.2f× of target" % (q["p99ms"] / 10)),
]
for k in ("exact", "prefix", "word", "typo"):
    if k in q:
        rows.append(("  %s queries (%d): p50 / p99" % (k, q[k]["n"]), "%.2f / %.2f ms" % (q[k]["p50ms"], q[k]["p99ms"]), "", ""))
rows.append(("  peak RSS of the server", "%.0f MiB" % (int(rss_serve) / 1024), "≤ 1 GiB", "%.2f× of target" % gib(rss_serve)))
wd = [max(len(r[i]) for r in rows) for i in range(4)]
print()
print("| " + " | ".join(h.ljust(wd[i]) for i, h in enumerate(("measure", "result", "target", "ratio"))) + " |")
print("|" + "|".join("-" * (x + 2) for x in wd) + "|")
for r in rows:
    print("| " + " | ".join(c.ljust(wd[i]) for i, c in enumerate(r)) + " |")
EOF
echo
echo "total $(($(date +%s) - T0)) s; files in $W"
