// Package ingest admits store paths into a repository, and re-checks them.
//
// Everything that enters a repository goes through Run (batch ingest of a
// binary cache folder or bucket) and the checks it is built from: Measure
// reads a NAR file once, streaming, and establishes its FileHash, FileSize,
// NarHash, NarSize and listing; CheckClaims compares a narinfo with that.
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
// path the repository already has is refused, never overwritten.
//
// A source's writer is not trusted: Run's source is opened with
// store.OpenSource, so a folder is read and consumed without following
// links or opening special files, and every small object read from outside
// (a narinfo, an upstream narinfo, a channel state, a measurement record) is
// read with a limit.
package ingest
