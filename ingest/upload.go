package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// UploadOptions describe an uploaded NAR file's body and bound its
// verification.
type UploadOptions struct {
	// Size is the body's length when known (Content-Length), else 0 or
	// negative; it picks the fastest decoder.
	Size int64
	// MaxFileSize bounds the body (0: none).
	MaxFileSize int64
	// Limits bound the decoding: no narinfo claims a NarSize yet, so the
	// NAR may decode to Limits.MaxNarSize.
	Limits
}

// PutNar stores an uploaded NAR file at rel ("nar/<FileHash>.nar<ext>")
// while verifying it in one streaming pass: its bytes must hash to the
// FileHash in its name and decompress (by its extension) to a well-formed
// NAR. Nothing is visible unless all of that holds. A body or NAR past the
// limits of o is ErrTooLarge. An identical file already stored is read
// and discarded.
func PutNar(ctx context.Context, repo *store.Cache, rel string, body io.Reader, o UploadOptions) (Measured, error) {
	fileHash, compression, ok := ParseNarName(rel)
	if !ok {
		return Measured{}, NarNameError(rel)
	}
	open := func() (io.ReadCloser, error) { return io.NopCloser(body), nil }
	m, _, err := storeNar(ctx, repo, rel, open, MeasureOptions{Compression: compression, MaxFileSize: o.MaxFileSize,
		SizeHint: o.Size, Limits: o.Limits}, recordStored, func(m Measured, err error) error {
		var ne *NarError
		switch {
		case err == nil:
		case errors.Is(err, ErrTooLarge):
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &ne) && m.FileHash.Nix32() != fileHash && m.FileSize > 0:
			return fmt.Errorf("%w: the file's bytes hash to %s, not to the FileHash in its name (and it does not decode: %v)", ErrMismatch, m.FileHash, err)
		case errors.As(err, &ne):
			return fmt.Errorf("%w: %v", ErrMismatch, err)
		default:
			// Reading the body failed: the client went away or sent
			// less than it announced.
			return fmt.Errorf("%w: reading the upload: %v", ErrInvalid, err)
		}
		if m.FileHash.Nix32() != fileHash {
			return fmt.Errorf("%w: the file's bytes hash to %s, not to the FileHash %s in its name", ErrMismatch, m.FileHash.Nix32(), fileHash)
		}
		return nil
	})
	return m, err
}

// PutResult says what PutNarInfo did.
type PutResult struct {
	StorePath string
	Outcome   Outcome // Accepted or Present
}

// PutNarInfo admits an uploaded narinfo for hashPart: it must parse by Nix's
// rules and describe that hash, its URL must name a NAR file already stored
// (uploaded first, as Nix does), its FileHash/FileSize/NarHash/NarSize claims
// must match what was measured, and its references must be in the
// repository. It is then signed with key (signatures it carries are kept) and
// written once. An identical path already present is a no-op; a different
// NarHash is ErrConflict. lim bounds measuring the NAR file again when its
// measurement was not recorded.
func PutNarInfo(ctx context.Context, repo *store.Cache, hashPart string, data []byte, key nix.SecretKey, lim Limits) (PutResult, error) {
	ni, err := nix.ParseNarInfo(data)
	if err != nil {
		return PutResult{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	res := PutResult{StorePath: ni.StorePath.Absolute()}
	if ni.StorePath.HashPart() != hashPart {
		return res, fmt.Errorf("%w: narinfo for %s uploaded as %s.narinfo", ErrInvalid, ni.StorePath.Absolute(), hashPart)
	}
	for _, s := range ni.Sigs {
		if err := nix.CheckSignature(s); err != nil {
			return res, fmt.Errorf("%w: malformed signature %q: %v", ErrInvalid, s, err)
		}
	}
	existing, _, err := repo.ReadNarInfo(ctx, hashPart)
	if err == nil {
		if existing.NarHash.Equal(ni.NarHash) {
			res.Outcome = Present
			return res, nil
		}
		return res, fmt.Errorf("%w: the repository already has %s with NarHash %s; this upload claims %s (the first upload wins)", ErrConflict, ni.StorePath.Absolute(), existing.NarHash, ni.NarHash)
	} else if !errors.Is(err, store.ErrNotFound) {
		return res, err
	}
	fileHash, compression, ok := ParseNarName(ni.URL)
	if !ok {
		return res, fmt.Errorf("narinfo URL: %w", NarNameError(ni.URL))
	}
	// A ".nar" name holds an uncompressed NAR or, as Nix names them, a
	// gzip one: its bytes decide (checked below against the measurement).
	if c := ni.EffectiveCompression(); c != compression && !(compression == "none" && c == "gzip") {
		return res, fmt.Errorf("%w: Compression %q does not match the NAR file name %s", ErrInvalid, c, ni.URL)
	}
	if !ni.FileHash.IsZero() && ni.FileHash.Nix32() != fileHash {
		return res, fmt.Errorf("%w: FileHash %s does not match the NAR file name %s", ErrMismatch, ni.FileHash, ni.URL)
	}
	meta, err := readMeta(ctx, repo, ni.URL, compression, ni.NarSize, lim)
	if errors.Is(err, store.ErrNotFound) {
		return res, fmt.Errorf("%w: NAR file %s has not been uploaded (upload the NAR before its narinfo)", ErrMismatch, ni.URL)
	}
	if err != nil {
		return res, err
	}
	m := measuredOf(meta)
	if m.Compression == "" {
		m.Compression = compression // what the name says: a record of before gzip was told apart
	}
	if err := CheckClaims(ni, m); err != nil {
		return res, fmt.Errorf("%w: %s", ErrMismatch, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	missing, err := missingReferences(ctx, repo, ni)
	if err != nil {
		return res, err
	}
	if len(missing) > 0 {
		return res, fmt.Errorf("%w: missing references (upload them first): %s", ErrMismatch, strings.Join(missing, ", "))
	}
	ni.FileHash, ni.FileSize = m.FileHash, m.FileSize
	ni.Compression = m.Compression
	if err := ni.Sign(key); err != nil {
		return res, err
	}
	// The listing computed from the NAR replaces whatever the client sent;
	// when none was computed (too large) the client's is not kept either:
	// a listing served next to a narinfo is always the computed one.
	won, err := commitNarInfo(ctx, repo, ni, m.Listing, lim)
	if err != nil {
		return res, err
	}
	if !won {
		// A concurrent upload of the same path won; same NarHash is fine.
		existing, _, rerr := repo.ReadNarInfo(ctx, hashPart)
		if rerr == nil && existing.NarHash.Equal(ni.NarHash) {
			res.Outcome = Present
			return res, nil
		}
		return res, fmt.Errorf("%w: %s was uploaded concurrently with different contents (the first upload wins)", ErrConflict, ni.StorePath.Absolute())
	}
	res.Outcome = Accepted
	return res, nil
}

// PutListing accepts a client's .ls upload (Nix sends it before the NAR
// when write-nar-listing is set), streamed from body: it must be a NAR
// listing's JSON ({"version":1,"root":…}), checked while it is stored, in
// constant memory. Once the path's narinfo exists the stored listing is
// the one computed from the NAR and the upload is only checked; before
// that the first listing uploaded is kept (none replaces another) until
// the narinfo's writer replaces it with the computed one (or removes it,
// when the NAR's listing is too large to keep). An error
// reading body is returned as it is.
func PutListing(ctx context.Context, repo *store.Cache, hashPart string, body io.Reader, lim Limits) error {
	has, err := repo.HasNarInfo(ctx, hashPart)
	if err != nil {
		return err
	}
	var w *store.Writer
	var copyTo io.Writer = io.Discard
	if !has {
		w, err = repo.NewWriter(ctx, store.ListingFile(hashPart), &store.WriteOptions{ContentType: store.ContentTypeListing, IfNotExist: true})
		if err != nil {
			return err
		}
		defer w.Abort()
		copyTo = w
	}
	if err := checkListing(io.TeeReader(body, copyTo)); err != nil {
		var te *taggedError
		if errors.As(err, &te) {
			return te.err
		}
		return fmt.Errorf("%w: %s.ls is not a NAR listing ({\"version\":1,\"root\":…}): %v", ErrInvalid, hashPart, err)
	}
	if w == nil {
		return nil
	}
	if err := w.Commit(); err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	// The narinfo may have been written while the upload streamed: then
	// its listing is the computed one, not this.
	if has, err := repo.HasNarInfo(ctx, hashPart); err != nil || !has {
		return err
	}
	return SettleListing(ctx, repo, hashPart, lim)
}

// PutOnce stores the write-once object rel (a build log, a realisation, a
// channel snapshot's file), streamed from src: the same bytes again are
// accepted, different bytes are ErrConflict (a realisation decides which
// store path a content-addressed output is, a snapshot ID names its bytes
// forever; neither is ever replaced). The comparison is by SHA-256,
// streamed too, so the object is never held in memory.
func PutOnce(ctx context.Context, repo *store.Cache, rel string, src io.Reader, contentType string) error {
	h := sha256.New()
	w, err := repo.NewWriter(ctx, rel, &store.WriteOptions{ContentType: contentType, IfNotExist: true})
	switch {
	case err == nil:
		defer w.Abort()
		if _, err := io.Copy(io.MultiWriter(w, h), src); err != nil {
			return err
		}
		err = w.Commit()
		if !errors.Is(err, store.ErrExists) {
			return err
		}
	case errors.Is(err, store.ErrExists):
		if _, err := io.Copy(h, src); err != nil {
			return err
		}
	default:
		return err
	}
	old, err := repo.NewReader(ctx, rel)
	if err != nil {
		return err
	}
	defer old.Close()
	oh := sha256.New()
	if _, err := io.Copy(oh, old); err != nil {
		return err
	}
	if !bytes.Equal(oh.Sum(nil), h.Sum(nil)) {
		return fmt.Errorf("%w: %s exists with different contents (first upload wins)", ErrConflict, rel)
	}
	return nil
}
