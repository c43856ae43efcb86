// Package store is the one place that knows the bucket layout and the only
// importer of gocloud.dev/blob.
//
// # Layout
//
// One bucket (any gocloud URL) holds every repository. Repository R lives at
// prefix "R/" in exactly Nix's binary-cache layout, so a plain static file
// server over the bucket is a working substituter at <base>/R:
//
//	R/nix-cache-info                   StoreDir, WantMassQuery, Priority (written by publish)
//	R/<hash>.narinfo                   signed path metadata; written last, write-once
//	R/nar/<FileHash-nix32>.nar[.ext]   the NAR file as uploaded (.xz, .zst, .bz2, none);
//	                                   content-addressed, written once, before any narinfo
//	R/<hash>.ls                        NAR listing (JSON), written before the narinfo
//	R/log/<drv basename>               build logs
//	R/realisations/<id>.doi            content-addressed derivation realisations
//	_nixrepo/…                         reserved for nixrepo's own bookkeeping
//
// <hash> is the 32-character nix32 hash part of the store path. Repository
// names start with a lower-case letter or digit, so the reserved "_nixrepo/"
// prefix can never collide with one. docs/layout.md is the normative
// description.
//
// # Semantics
//
// Writes are atomic (readers see a whole object or none); a streaming Writer
// only becomes visible on Commit, and Abort leaves nothing behind. Errors for
// missing objects wrap ErrNotFound and failed write-once preconditions wrap
// ErrExists; any other error is returned as is, never taken for absence.
// File buckets are opened with metadata=skip, so no .attrs sidecar files
// appear in the published tree. fileblob writes each object to a temporary
// file in os.TempDir (the command layer points it at nixrepo's own folder)
// and renames it into place; when os.TempDir is on another file system than
// the bucket, Open sets no_tmp_dir so the temporary file sits next to its
// target instead.
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
