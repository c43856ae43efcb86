// Package store is the one place that knows the bucket layout and the only
// importer of gocloud.dev/blob: every key name and every object schema
// nixrepo persists is defined here, and a test fails on a layout name
// spelled anywhere else. docs/layout.md is the normative description.
//
// # Layout
//
// One bucket (any gocloud URL) holds every repository. Repository R lives at
// prefix "R/" in exactly Nix's binary-cache layout, so a plain static file
// server over the bucket is a working substituter at <base>/R:
//
//	R/nix-cache-info                   StoreDir, WantMassQuery, Priority (written by publish)
//	R/<hash>.narinfo                   signed path metadata; written last, write-once
//	R/nar/<FileHash-nix32>.nar[.ext]   the NAR file as uploaded (.xz, .zst, .bz2, none; NarFile);
//	                                   content-addressed, written once, before any narinfo
//	R/<hash>.ls                        NAR listing (JSON), written before the narinfo
//	R/log/<drv basename>               build logs
//	R/realisations/<id>.doi            content-addressed derivation realisations
//	R/channels/NAME/…                  channel snapshots, channel.json (Channel), the current tarball (channel.go)
//	_site/…                            the static site (SitePrefix)
//	_nixrepo/layout                    the layout version (CheckLayout)
//	_nixrepo/repos/R/nar-meta/…        NAR measurements (NarMeta)
//	_nixrepo/repos/R/journal/…         the path journal (journal.go)
//	_nixrepo/catalog/…                 the package catalog (CatalogPrefix; its content is package index's)
//	_nixrepo/tmp/, _nixrepo/locks/     folder buckets' writes in progress and update locks (folder.go)
//
// <hash> is the 32-character nix32 hash part of the store path. Repository
// names start with a lower-case letter or digit, so the reserved "_nixrepo/"
// and "_site/" prefixes can never collide with one.
//
// A Cache is one binary cache in the bucket (a repository, or a source
// bucket's root); its methods take names relative to it ("nar/…",
// NarInfoFile(h)) and List gives them back relative. Store's methods take
// bucket keys, for what spans repositories (the catalog, the site, the
// journal). The layout's version is recorded in the bucket: writers record
// it when absent, and a nixrepo that finds a newer one refuses the bucket.
//
// # Semantics
//
// Writes are atomic (readers see a whole object or none); a streaming Writer
// only becomes visible on Commit, and Abort leaves nothing behind. Errors for
// missing objects wrap ErrNotFound and failed write-once preconditions wrap
// ErrExists; any other error is returned as is, never taken for absence.
//
// Any number of processes may write one bucket. Write-once objects
// (WriteOptions.IfNotExist) are created atomically on every backend with
// conditional writes: If-None-Match on S3 and Azure, generation
// preconditions on GCS, link(2) on folders. Mutable objects change by
// compare-and-swap (Update): a conditional write on the ETag or
// generation, or an flock(2) on folders; Conditional names the mechanism
// and Warning says what happens on a backend without one. Folder buckets
// are written by this package itself (temporary files under
// _nixrepo/tmp/, then link or rename), not by gocloud's fileblob, whose
// write-once check holds only within one process; they are read through
// fileblob, opened with metadata=skip, so no .attrs sidecar files appear
// in the published tree.
//
// # Sources and limits
//
// An incoming binary cache is opened with OpenSource. Its writer is not
// trusted, so a folder is served by the package's own driver (over an
// os.Root) instead of fileblob: no symbolic link is followed, only regular
// files are opened or deleted, and anything else is refused with an
// *EntryError wrapping ErrNotRegular; writes fail. Objects an outsider
// controls are read with GetLimit (or ReadLimit for a stream), which stops
// at the limit and fails with ErrTooLarge; ReadNarInfo reads at most
// nix.MaxNarInfoSize.
package store
