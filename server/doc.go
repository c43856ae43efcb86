// Package server is nixrepo's optional HTTP adapter: it serves repositories
// under /api/nix/<repo>/ (Artifactory's URL form) and accepts authenticated
// uploads from `nix copy --to`, there and under /api/upload/<repo>/, the
// same routes at a URL of their own for uploaders (see UploadPrefix).
//
// It is an adapter, not a second implementation: reads serve the objects of
// the bucket layout (package store) that static hosting serves, and uploads go
// through package ingest's validation (PutNar, PutNarInfo), so a path is
// verified, signed with the repository key and written NAR first, narinfo
// last, exactly as in batch ingest; channel snapshots go through package
// ingest/channel (Push, AddSnapshotFile), as `nixrepo channel push` does.
//
// Protocol rules it keeps (see docs/server.md): missing objects are 404;
// HEAD works everywhere; NARs support Range; narinfo bytes are served as
// stored; a PUT is answered 200 or a 4xx with a reason, never 202, 408, 429
// or 5xx (Nix ≤ 2.32 retries such PUTs with an empty body and hangs).
// Credentials are HTTP Basic with a token as the password (any user name);
// missing credentials on a private repository are 401 with a Basic
// challenge, wrong ones 403, a token that may not read the repository 404 —
// each exactly what an unknown repository answers, so names do not leak.
// Tokens are stored as SHA-256 hashes and compared in constant time.
// Reading a virtual repository also needs read access to each of its
// members, so it never serves a reader a member the reader could not read
// directly; it takes no uploads and no channel snapshots (405 with the
// reason). Uploads share slots fairly across tokens and repositories and
// have deadlines (admission.go); every response says nosniff and none
// echoes the Host header.
//
// The package API (SearchAPI) shows only readable repositories and bounds
// every input a reader sends (query length and words, repo=, limit=, the
// package name) with a 400 naming the bound. With Options.Catalog, Serve
// keeps the catalog and the search index current in the background
// (CatalogUpdate), so what any process sharing the bucket wrote becomes
// searchable here within about the update interval.
package server
