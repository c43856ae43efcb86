package ingest

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/nixrepo/nixrepo/internal/compress"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// meta is what the store records of a measured NAR file (store.NarMeta):
// the listing is embedded, at most Limits.MaxListing bytes.
func (m Measured) meta() store.NarMeta {
	meta := store.NarMeta{FileHash: m.FileHash, FileSize: m.FileSize, NarHash: m.NarHash, NarSize: m.NarSize,
		Listing: m.Listing, ListingSkipped: m.ListingSkipped}
	if m.Compression == "gzip" {
		meta.Compression = m.Compression // not told by the file's name
	}
	return meta
}

func measuredOf(meta *store.NarMeta) Measured {
	return Measured{FileHash: meta.FileHash, FileSize: meta.FileSize, NarHash: meta.NarHash, NarSize: meta.NarSize,
		Listing: meta.Listing, ListingSkipped: meta.ListingSkipped, Compression: meta.Compression}
}

// whenStored says what storeNar does when the repository already has the
// NAR file.
type whenStored int

const (
	// measureStored reads and measures the bytes all the same (the
	// caller checks claims against them) and records nothing.
	measureStored whenStored = iota
	// recordStored measures the bytes and records the measurement: the
	// record of the stored file may be missing.
	recordStored
	// skipStored reads nothing: the caller has measured the bytes.
	skipStored
)

// storeNar stores the NAR file rel of repo from the bytes open returns,
// measuring them (as o says) in the same pass: the one way every writer of
// NAR files stores one. It checks whether rel exists, opens a writer for it
// when not, measures while writing, and lets check judge what Measure
// returned (the measurement, or its error, which may come with FileHash and
// FileSize; a failure to write the copy is returned without asking check).
// Only when check returns nil is the file made visible, under its final
// name, and its measurement recorded (nar-meta); any other error of check is
// returned with nothing of the file left. A file already stored is treated
// as when says; stored reports whether this call stored it. The name is the
// hash of the bytes (every caller's check makes sure of it), so two writers
// storing one name at once write the same bytes, and the later commit
// changes nothing.
func storeNar(ctx context.Context, repo *store.Cache, rel string, open func() (io.ReadCloser, error), o MeasureOptions, when whenStored, check func(Measured, error) error) (m Measured, stored bool, err error) {
	exists, err := repo.Exists(ctx, rel)
	if err != nil || exists && when == skipStored {
		return Measured{}, false, err
	}
	r, err := open()
	if err != nil {
		return Measured{}, false, err
	}
	defer r.Close()
	var w *store.Writer
	if !exists {
		if w, err = repo.NewWriter(ctx, rel, &store.WriteOptions{ContentType: store.ContentTypeNar}); err != nil {
			return Measured{}, false, err
		}
		defer w.Abort()
		if o.Copy == nil {
			o.Copy = w
		} else {
			o.Copy = io.MultiWriter(w, o.Copy)
		}
	}
	m, err = Measure(r, o)
	if isStoreWriteError(err) {
		return Measured{}, false, err
	}
	if cerr := check(m, err); cerr != nil || err != nil {
		return Measured{}, false, cmp.Or(cerr, err)
	}
	if w != nil {
		if err := w.Commit(); err != nil {
			return Measured{}, false, err
		}
	}
	if w != nil || when == recordStored {
		if err := writeMeta(ctx, repo, m); err != nil {
			return Measured{}, false, err
		}
	}
	return m, w != nil, nil
}

func writeMeta(ctx context.Context, repo *store.Cache, m Measured) error {
	meta := m.meta()
	return repo.PutNarMeta(ctx, &meta)
}

// readMeta returns the recorded measurement of the NAR file rel, measuring
// the stored file again when no usable record exists (a NAR stored by an
// older version or a crash between the two writes). narSize is the NarSize
// the narinfo being checked claims: measuring stops past it.
func readMeta(ctx context.Context, repo *store.Cache, rel, compression string, narSize uint64, lim Limits) (*store.NarMeta, error) {
	fileHash, _, ok := ParseNarName(rel)
	if ok {
		m, err := repo.ReadNarMeta(ctx, fileHash, lim.maxListing())
		if err != nil || m != nil {
			return m, err
		}
	}
	r, err := repo.NewReader(ctx, rel)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	m, err := Measure(r, MeasureOptions{Compression: compression, SizeHint: r.Size(), NarSize: narSize, Limits: lim})
	if err != nil {
		return nil, fmt.Errorf("%w: stored NAR file %s: %v", ErrMismatch, rel, err)
	}
	if ok && m.FileHash.Nix32() != fileHash {
		return nil, fmt.Errorf("%w: stored NAR file %s hashes to %s", ErrMismatch, rel, m.FileHash)
	}
	if err := writeMeta(ctx, repo, m); err != nil {
		return nil, err
	}
	meta := m.meta()
	return &meta, nil
}

// NarNameError explains why rel, an upload's name under nar/, is not a NAR
// file name of this repository: for the names Nix gives the compressions
// nixrepo does not verify (".nar.br", ".nar.lz4", ".nar.lzip") it is the
// unsupported-compression error every entry point gives; it wraps
// ErrInvalid.
func NarNameError(rel string) error {
	for _, c := range []string{"br", "lz4", "lzip"} {
		if strings.HasSuffix(rel, ".nar"+nix.NarExtension(c)) {
			return fmt.Errorf("%w: %s: %v; upload with another compression (nix copy --to 'URL?compression=zstd')", ErrInvalid, rel, compress.Supported(c))
		}
	}
	return fmt.Errorf("%w: %q is not a NAR file name (want nar/<52-character nix32 sha256>.nar[.xz|.zst|.bz2])", ErrInvalid, rel)
}

// ParseNarName splits a NAR file name "nar/<nix32 sha256>.nar<ext>" into
// the FileHash (nix32) and the compression method its extension stands for
// (Nix's names: ".xz" xz, ".zst" zstd, ".bz2" bzip2, "" none). ok is false for
// any other shape.
func ParseNarName(rel string) (fileHash, compression string, ok bool) {
	name, found := strings.CutPrefix(rel, store.NarDir)
	if !found || len(name) < 52+4 {
		return "", "", false
	}
	fileHash, rest := name[:52], name[52:]
	if _, err := nix.DecodeNix32(fileHash); err != nil {
		return "", "", false
	}
	switch rest {
	case ".nar":
		return fileHash, "none", true
	case ".nar.xz":
		return fileHash, "xz", true
	case ".nar.zst":
		return fileHash, "zstd", true
	case ".nar.bz2":
		return fileHash, "bzip2", true
	}
	return "", "", false
}

// storedMeasurement returns the recorded measurement of ni's NAR file when
// the file is already stored and its record matches ni's claims.
func storedMeasurement(ctx context.Context, repo *store.Cache, ni *nix.NarInfo) (Measured, bool) {
	meta, err := repo.ReadNarMeta(ctx, ni.FileHash.Nix32(), Limits{}.maxListing())
	if err != nil || meta == nil {
		return Measured{}, false
	}
	m := measuredOf(meta)
	if CheckClaims(ni, m) != nil {
		return Measured{}, false
	}
	if ok, err := repo.Exists(ctx, store.NarFile(ni.FileHash, ni.EffectiveCompression())); err != nil || !ok {
		return Measured{}, false
	}
	return m, true
}
