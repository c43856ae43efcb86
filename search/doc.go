// Package search answers package queries from the search index that
// package index maintains: one bleve document per package, so a query
// returns packages with their versions, latest version and repositories.
//
// Ranking is by match tier, never by a blend of scores: the exact name
// (ignoring case) first, then names that start with the query (shortest
// first, from the index's term dictionary, so a one-letter prefix costs a
// dictionary walk rather than a query over thousands of terms), then names
// with a word that is or starts with each query word ("requests" finds
// "python3.11-requests"; a word prefix expands to at most 32 words, the
// shortest), then, only without an exact match, fuzzy matches (edit
// distance 1 for words of 3–7 characters, 2 for 8–32), then descriptions. A
// repository filter restricts both which packages match and which of
// their versions are shown.
//
// A query is bounded before anything is looked up (CheckQuery, Limits: 256
// characters and 16 words by default; ErrQueryTooLarge past them), and so
// is fuzzy matching: the whole name within one edit only for queries of at
// most 64 characters, no fuzzy words tier for a query with more than 4
// unknown words.
//
// Engine wraps an index folder for a long-running process: it reopens the
// index when an indexer switches it to a new generation (the server's own
// background updates, or "nixrepo index"), and on opening brings it to the
// catalog's generation from the bucket (re-indexing the changed package
// shards, or rebuilding it when it is missing).
package search
