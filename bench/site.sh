#!/usr/bin/env bash
# Static-site search benchmark (issue 6, "static search: first results in
# Chromium ≤ 300 ms at 100k packages").
#
# Generates a synthetic catalog of N packages (default 100,000; names from
# this machine's Debian package list, dpkg-query, with prefixes and suffixes;
# 1–5 versions of 1–5 outputs each), renders the whole site with site.Generate,
# serves it with Go's http.FileServer (a plain static server) and, for a few
# kinds of query, opens index.html?q=QUERY 5 times in headless Chromium, each
# time in a fresh browser context (empty cache, like a first visit).
# search.js records the time from query start to the first rendered results
# in #results[data-search-ms]; the test reads it over the DevTools protocol in
# real time (not --virtual-time-budget, which stops performance.now() while
# JavaScript runs) and prints the median of 5 runs.
#
# Usage: bench/site.sh [PACKAGES]
# Needs: Go, chromium (Debian package chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromium >/dev/null || { echo "bench/site.sh: needs chromium (apt-get install chromium)" >&2; exit 1; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
NIXREPO_BENCH=1 NIXREPO_BENCH_PACKAGES="${1:-100000}" \
  go test ./site/ -run '^TestSearchBenchmark$' -count=1 -v -timeout 60m 2>&1 |
  grep -E '^bench:|FAIL|panic|chromium_test'
