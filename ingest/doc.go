// Package ingest admits store paths into a repository, and re-checks them.
//
// Every store path that enters a repository comes through one of its
// sources, each in its own file:
//
//   - ingest.go: Run, batch ingest of a binary cache folder or bucket;
//   - upload.go: single uploads (PutNar, PutNarInfo, PutListing; PutOnce
//     for the write-once objects beside them: build logs, realisations,
//     channel snapshot files), which the server drives;
//   - upstream.go, pull.go, mirrorpaths.go: an upstream binary cache
//     (Upstream), pulling one path through (PullNar, CommitPulled) and
//     mirroring whole closures (MirrorPaths);
//   - verify.go: Verify, re-checking what a repository holds.
//
// They share one implementation of each step. Measure (measure.go) reads a
// NAR file once, streaming, and establishes its FileHash, FileSize, NarHash,
// NarSize and listing; CheckClaims compares a narinfo with that. storeNar
// (narfile.go) stores a NAR file under its content-addressed name while
// measuring it, visible only once the caller's checks pass, and records the
// measurement (nar-meta). commitNarInfo (commit.go) writes a narinfo by the
// write protocol of docs/concurrency.md: its listing (listing.go) created
// before it and settled after, the narinfo itself write-once. Narinfos of a
// batch are written references first (nix.ReferencesFirst). Channel
// snapshots are admitted by package ingest/channel, with this package's
// error kinds (errors.go).
//
// Measure is bounded (Limits): decoding stops at the first byte past the
// NarSize a narinfo claims, or past Limits.MaxNarSize when none does yet;
// the decoder's window is limited; a listing past Limits.MaxListing is
// not kept (the NAR is still accepted, and nar-meta records it).
//
// Visibility is ordered so that a crash at any moment leaves at worst an
// unreferenced NAR file: NAR file first (content-addressed, named by its
// FileHash, written once), then the .ls listing, then the signed narinfo,
// and narinfos of references before the narinfos that point to them. The
// narinfo write is write-once (first writer wins): a different NarHash for a
// path the repository already has is refused, never overwritten. No source
// deletes a NAR file: one stored for a path that is then refused stays for
// garbage collection.
//
// A source's writer is not trusted: Run's source is opened with
// store.OpenSource, so a folder is read and consumed without following
// links or opening special files, and every small object read from outside
// (a narinfo, an upstream narinfo, a measurement record) is read with a
// limit.
package ingest
