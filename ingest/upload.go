package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nixrepo/nixrepo/internal/nar"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// Upload errors. Every error PutNar and PutNarInfo return for bad input
// wraps one of these, so an HTTP adapter can map it to a status; anything
// else is a failure of the repository itself.
var (
	// ErrInvalid: the request is malformed (bad name, unparsable narinfo).
	ErrInvalid = errors.New("invalid upload")
	// ErrMismatch: the content contradicts its name or claims, or it is
	// not a well-formed NAR, or a reference is missing.
	ErrMismatch = errors.New("upload does not verify")
	// ErrConflict: the repository already has a different path at this name.
	ErrConflict = errors.New("conflicting upload")
)

// meta is what the store records of a measured NAR file (store.NarMeta):
// the listing is embedded, at most Limits.MaxListing bytes.
func (m Measured) meta() store.NarMeta {
	return store.NarMeta{FileHash: m.FileHash, FileSize: m.FileSize, NarHash: m.NarHash, NarSize: m.NarSize,
		Listing: m.Listing, ListingSkipped: m.ListingSkipped}
}

func measuredOf(meta *store.NarMeta) Measured {
	return Measured{FileHash: meta.FileHash, FileSize: meta.FileSize, NarHash: meta.NarHash, NarSize: meta.NarSize,
		Listing: meta.Listing, ListingSkipped: meta.ListingSkipped}
}

// commitMeasured makes a verified NAR file visible (w is nil when it was
// already stored) and records its measurement.
func commitMeasured(ctx context.Context, repo *store.Cache, w *store.Writer, m Measured) (Measured, error) {
	if w != nil {
		if err := w.Commit(); err != nil {
			return Measured{}, err
		}
	}
	if err := writeMeta(ctx, repo, m); err != nil {
		return Measured{}, err
	}
	return m, nil
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
		return Measured{}, fmt.Errorf("%w: %q is not a NAR file name (want nar/<52-character nix32 sha256>.nar[.xz|.zst|.bz2])", ErrInvalid, rel)
	}
	exists, err := repo.Exists(ctx, rel)
	if err != nil {
		return Measured{}, err
	}
	var w *store.Writer
	var copyTo io.Writer
	if !exists {
		w, err = repo.NewWriter(ctx, rel, &store.WriteOptions{ContentType: store.ContentTypeNar})
		if err != nil {
			return Measured{}, err
		}
		defer w.Abort()
		copyTo = w
	}
	m, err := Measure(body, MeasureOptions{Compression: compression, MaxFileSize: o.MaxFileSize,
		SizeHint: o.Size, Copy: copyTo, Limits: o.Limits})
	switch {
	case err == nil:
	case errors.Is(err, ErrTooLarge):
		return Measured{}, err
	case isStoreWriteError(err):
		return Measured{}, err
	case ctx.Err() != nil:
		return Measured{}, ctx.Err()
	default:
		var ne *NarError
		if errors.As(err, &ne) {
			if m.FileHash.Nix32() != fileHash && m.FileSize > 0 {
				return Measured{}, fmt.Errorf("%w: the file's bytes hash to %s, not to the FileHash in its name (and it does not decode: %v)", ErrMismatch, m.FileHash, err)
			}
			return Measured{}, fmt.Errorf("%w: %v", ErrMismatch, err)
		}
		// Reading the body failed: the client went away or sent less
		// than it announced.
		return Measured{}, fmt.Errorf("%w: reading the upload: %v", ErrInvalid, err)
	}
	if m.FileHash.Nix32() != fileHash {
		return Measured{}, fmt.Errorf("%w: the file's bytes hash to %s, not to the FileHash %s in its name", ErrMismatch, m.FileHash.Nix32(), fileHash)
	}
	return commitMeasured(ctx, repo, w, m)
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
		return res, fmt.Errorf("%w: URL %q is not a NAR file name of this repository (want nar/<FileHash>.nar[.xz|.zst|.bz2])", ErrInvalid, ni.URL)
	}
	if c := ni.EffectiveCompression(); c != compression {
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
	ni.Compression = compression
	if err := ni.Sign(key); err != nil {
		return res, err
	}
	// The listing computed from the NAR replaces whatever the client sent;
	// when none was computed (too large) the client's is not kept either:
	// a listing served next to a narinfo is always the computed one.
	switch ls := store.ListingFile(hashPart); {
	case len(m.Listing) > 0:
		if err := repo.Put(ctx, ls, m.Listing, &store.WriteOptions{ContentType: store.ContentTypeListing}); err != nil {
			return res, err
		}
	case m.ListingSkipped:
		if err := repo.Delete(ctx, ls); err != nil && !errors.Is(err, store.ErrNotFound) {
			return res, err
		}
	}
	err = repo.PutNarInfo(ctx, ni)
	if errors.Is(err, store.ErrExists) {
		// A concurrent upload of the same path won; same NarHash is fine.
		existing, _, rerr := repo.ReadNarInfo(ctx, hashPart)
		if rerr == nil && existing.NarHash.Equal(ni.NarHash) {
			res.Outcome = Present
			return res, nil
		}
		return res, fmt.Errorf("%w: %s was uploaded concurrently with different contents (the first upload wins)", ErrConflict, ni.StorePath.Absolute())
	}
	if err != nil {
		return res, err
	}
	res.Outcome = Accepted
	return res, nil
}

// missingReferences lists the references of ni (other than itself) that
// the repository does not hold: a narinfo at the hash part that describes
// exactly that store path, name included.
func missingReferences(ctx context.Context, repo *store.Cache, ni *nix.NarInfo) ([]string, error) {
	var missing []string
	for _, ref := range ni.References {
		if ref == ni.StorePath {
			continue
		}
		have, _, err := repo.ReadNarInfo(ctx, ref.HashPart())
		switch {
		case errors.Is(err, store.ErrNotFound):
			missing = append(missing, ref.Absolute())
		case err != nil:
			var pe *nix.ParseError
			if errors.As(err, &pe) {
				missing = append(missing, ref.Absolute()+" (the repository's narinfo is malformed)")
				continue
			}
			return nil, err
		case have.StorePath != ref:
			missing = append(missing, fmt.Sprintf("%s (the repository has %s under that hash)", ref.Absolute(), have.StorePath.Absolute()))
		}
	}
	return missing, nil
}

// PutListing accepts a client's .ls upload (Nix sends it before the NAR
// when write-nar-listing is set), streamed from body: it must be a NAR
// listing's JSON ({"version":1,"root":…}), checked while it is stored, in
// constant memory. Once the path's narinfo exists the stored listing is
// the one computed from the NAR and the upload is only checked; before
// that it is kept until PutNarInfo replaces it with the computed one (or
// removes it, when the NAR's listing is too large to keep). An error
// reading body is returned as it is.
func PutListing(ctx context.Context, repo *store.Cache, hashPart string, body io.Reader) error {
	has, err := repo.HasNarInfo(ctx, hashPart)
	if err != nil {
		return err
	}
	var w *store.Writer
	var copyTo io.Writer = io.Discard
	if !has {
		w, err = repo.NewWriter(ctx, store.ListingFile(hashPart), &store.WriteOptions{ContentType: store.ContentTypeListing})
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
	return w.Commit()
}

// Bounds of a listing's JSON structure, so that checking it holds little
// memory: the longest token (a name of nar.MaxNameLen or a target of
// nar.MaxTargetLen bytes, escaped, is far shorter) and the deepest nesting
// (a directory is two levels, an entry's node and its "entries").
const (
	maxListingToken = 1 << 20
	maxListingDepth = 2*nar.MaxDepth + 8
)

// checkListing reads one JSON object with "version": 1 and a "root" from
// r, token by token (never a whole value), and nothing after it. It
// accepts no document that json.Unmarshal into {Version int; Root
// json.RawMessage} would not take for a listing (FuzzCheckListing).
// Errors of r are returned as *taggedError.
func checkListing(r io.Reader) error {
	src := &listingReader{r: r}
	dec := json.NewDecoder(src)
	src.dec = dec
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil {
		return err
	} else if tok != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	var version, root bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		// Keys match without regard to case, as encoding/json matches
		// struct fields: a "Version" is a version too.
		switch {
		case strings.EqualFold(key, "version"):
			v, err := dec.Token()
			if err != nil {
				return err
			}
			if v != json.Number("1") {
				return fmt.Errorf("version %v", v)
			}
			version = true
		case strings.EqualFold(key, "root"):
			root = true
			fallthrough
		default:
			if err := skipJSONValue(dec); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("data after the listing")
		}
		return err
	}
	if !version || !root {
		return errors.New(`no "version": 1 or no "root"`)
	}
	return nil
}

// listingReader feeds the JSON decoder of checkListing. It marks the
// errors of its reader (*taggedError), so that they can be told apart from
// what the decoder reports about the data, and refuses to read on while
// the decoder holds more than maxListingToken unconsumed bytes: the
// decoder buffers a whole token, and only asks for more input to complete
// one.
type listingReader struct {
	r    io.Reader
	dec  *json.Decoder
	read int64
}

type taggedError struct{ err error }

func (e *taggedError) Error() string { return e.err.Error() }
func (e *taggedError) Unwrap() error { return e.err }

func (l *listingReader) Read(p []byte) (int, error) {
	if l.read-l.dec.InputOffset() > maxListingToken {
		return 0, fmt.Errorf("a JSON token is longer than %d bytes", maxListingToken)
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	if err != nil && err != io.EOF {
		err = &taggedError{err}
	}
	return n, err
}

// skipJSONValue reads one value's tokens.
func skipJSONValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			if depth > maxListingDepth {
				return fmt.Errorf("nested deeper than %d levels", maxListingDepth)
			}
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}
