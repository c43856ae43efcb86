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
// distance 1 for words of 3–7 characters, 2 from 8), then descriptions. A
// repository filter restricts both which packages match and which of
// their versions are shown.
//
// Engine wraps an index folder for a long-running process: it reopens the
// index when an indexer switches it to a new generation and rebuilds it
// from the catalog in the bucket when it is missing.
package search
