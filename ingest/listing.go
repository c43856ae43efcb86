package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nixrepo/nixrepo/internal/nar"
	"github.com/nixrepo/nixrepo/internal/store"
)

// SettleListing makes the listing beside hashPart's narinfo the one
// computed from the NAR file that narinfo names (or removes it when that
// listing was too large to keep). Every writer of a listing calls it once
// it finds the narinfo written by another: of racing uploads of one store
// path with different NARs, the narinfo's winner decides the listing, and
// whichever writer touched the listing last puts the winner's back. Without
// a narinfo it does nothing.
func SettleListing(ctx context.Context, repo *store.Cache, hashPart string, lim Limits) error {
	ni, _, err := repo.ReadNarInfo(ctx, hashPart)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	_, compression, ok := ParseNarName(ni.URL)
	if !ok {
		return nil
	}
	meta, err := readMeta(ctx, repo, ni.URL, compression, ni.NarSize, lim)
	if err != nil {
		return fmt.Errorf("settling the listing of %s: %w", ni.StorePath.Absolute(), err)
	}
	return ensureListing(ctx, repo, hashPart, meta.Listing)
}

// createListing writes hashPart's listing before its narinfo, unless a
// listing is there already (another upload's, or a client's): the
// narinfo's writer settles it afterwards (ensureListing). It reports
// whether it created the listing.
func createListing(ctx context.Context, repo *store.Cache, hashPart string, listing []byte) (created bool, err error) {
	if len(listing) == 0 {
		return false, nil
	}
	err = repo.Put(ctx, store.ListingFile(hashPart), listing, &store.WriteOptions{ContentType: store.ContentTypeListing, IfNotExist: true})
	if errors.Is(err, store.ErrExists) {
		return false, nil
	}
	return err == nil, err
}

// writeListing writes hashPart's listing, or removes it when listing is
// empty (too large to keep).
func writeListing(ctx context.Context, repo *store.Cache, hashPart string, listing []byte) error {
	if len(listing) == 0 {
		if err := repo.Delete(ctx, store.ListingFile(hashPart)); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	}
	return repo.Put(ctx, store.ListingFile(hashPart), listing, &store.WriteOptions{ContentType: store.ContentTypeListing})
}

// ensureListing makes hashPart's listing hold exactly listing, or not
// exist when listing is empty (too large to keep); it writes only when the
// stored one differs.
func ensureListing(ctx context.Context, repo *store.Cache, hashPart string, listing []byte) error {
	if len(listing) > 0 {
		cur, err := repo.GetLimit(ctx, store.ListingFile(hashPart), int64(len(listing)))
		if err == nil && bytes.Equal(cur, listing) {
			return nil
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrTooLarge) {
			return err
		}
	}
	return writeListing(ctx, repo, hashPart, listing)
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
