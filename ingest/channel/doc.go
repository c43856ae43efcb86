// Package channel admits channel snapshots into a repository: a
// nixexprs.tar.xz pushed by a user or a CI job (Push, AddSnapshotFile for
// the files beside it) or mirrored from an upstream laid out like
// channels.nixos.org (Mirror), and reads the store path lists they carry
// (ReadStorePaths, SnapshotStorePaths: the roots closure mirroring starts
// from).
//
// A tarball is validated by unpacking it as Nix does (tarball.go): xz; one
// top-level directory with default.nix; only files, folders and symlinks,
// none escaping the tree or replacing an earlier entry; within
// TarballLimits (entries, unpacked bytes, the tarball itself). Its
// fetchTarball sha256 is the NAR hash of that directory.
//
// The write protocol (docs/concurrency.md, I7): a snapshot's files are
// created write-once under channels/NAME/FLAVOR/ID/ before the channel's
// state names it, so an ID names its bytes forever (the same bytes again
// succeed, other bytes are ingest.ErrConflict); the state, channel.json, is
// changed by compare-and-swap, so concurrent pushes keep each other's
// snapshots; the mutable channels/NAME/nixexprs.tar.xz is copied from the
// current snapshot after the state changed, and again while the state moved
// on during the copy. The current snapshot only moves forward (Nix version
// order of IDs that look like versions, else upload order) unless forced.
//
// This package is part of the ingest stage: its errors wrap ingest's error
// kinds (ErrInvalid, ErrMismatch, ErrConflict, ErrTooLarge), which the
// server maps to HTTP statuses; package ingest knows nothing of channels.
// Everything read from outside (an upstream's files, a tarball, a store
// path list, a channel state) is read with a limit.
package channel
