package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// Upstream errors.
var (
	// ErrUpstream: the upstream failed (5xx, timeout, connection error,
	// truncated body). Callers serve "missing" so Nix falls back.
	ErrUpstream = errors.New("upstream failed")
	// ErrUntrusted: the upstream narinfo is not signed by a trusted key.
	ErrUntrusted = errors.New("not signed by a trusted key")
)

// Upstream is a binary cache nixrepo mirrors (cache.nixos.org, another
// nixrepo, any static cache).
type Upstream struct {
	URL    string // base URL, e.g. https://cache.nixos.org
	Keys   []nix.PublicKey
	Client *http.Client
	// Limits bound verifying a pulled NAR file (the decoder's window and
	// the listing; its size is bounded by the narinfo's NarSize).
	Limits Limits
}

// NewUpstream returns an Upstream with a client that gives up on a stalled
// connection (30 s to connect and to the first response byte).
func NewUpstream(url string, keys []nix.PublicKey) *Upstream {
	return &Upstream{URL: strings.TrimSuffix(url, "/"), Keys: keys, Client: &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			ResponseHeaderTimeout: 30 * time.Second,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			// NAR files are stored as sent; never let the transport
			// decode anything.
			DisableCompression: true,
		},
	}}
}

func (u *Upstream) get(ctx context.Context, rel string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.URL+"/"+rel, nil)
	if err != nil {
		return nil, err
	}
	resp, err := u.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %s/%s: %v", ErrUpstream, u.URL, rel, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return resp, nil
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusGone:
		resp.Body.Close()
		return nil, fmt.Errorf("%s/%s: %w", u.URL, rel, store.ErrNotFound)
	default:
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s/%s: HTTP %d", ErrUpstream, u.URL, rel, resp.StatusCode)
	}
}

// NarInfo fetches, parses and checks the narinfo of hashPart: it must
// describe that hash, carry a signature by one of the upstream keys, and
// name its NAR file with a safe relative URL. A missing path wraps
// store.ErrNotFound.
func (u *Upstream) NarInfo(ctx context.Context, hashPart string) (*nix.NarInfo, error) {
	resp, err := u.get(ctx, store.NarInfoFile(hashPart))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := store.ReadLimit(resp.Body, store.NarInfoFile(hashPart), nix.MaxNarInfoSize)
	if errors.Is(err, store.ErrTooLarge) {
		return nil, fmt.Errorf("%w: upstream %w", ErrMismatch, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s.narinfo: %v", ErrUpstream, hashPart, err)
	}
	ni, err := nix.ParseNarInfo(b)
	if err != nil {
		return nil, fmt.Errorf("%w: upstream %s.narinfo: %v", ErrMismatch, hashPart, err)
	}
	if ni.StorePath.HashPart() != hashPart {
		return nil, fmt.Errorf("%w: upstream %s.narinfo describes %s", ErrMismatch, hashPart, ni.StorePath.Absolute())
	}
	if !ni.Verify(u.Keys) {
		return nil, fmt.Errorf("%w: upstream narinfo of %s (signatures: %s)", ErrUntrusted, ni.StorePath.Absolute(), strings.Join(ni.Sigs, " "))
	}
	if err := store.CheckRel(strings.SplitN(ni.URL, "?", 2)[0]); err != nil {
		return nil, fmt.Errorf("%w: upstream narinfo of %s: URL: %v", ErrMismatch, ni.StorePath.Absolute(), err)
	}
	if ni.FileHash.IsZero() {
		return nil, fmt.Errorf("%w: upstream narinfo of %s has no FileHash", ErrMismatch, ni.StorePath.Absolute())
	}
	return ni, nil
}

// PullNar fetches ni's NAR file from upstream and stores it in repo under
// its canonical name while verifying it against ni in the same pass. When
// tee is not nil, the bytes are also written to it as they arrive (a
// client being served). Nothing is stored unless everything matches;
// decoding stops at the first byte past the narinfo's NarSize.
func PullNar(ctx context.Context, repo *store.Cache, up *Upstream, ni *nix.NarInfo, tee io.Writer) (Measured, error) {
	rel := store.NarFile(ni.FileHash, ni.EffectiveCompression())
	resp, err := up.get(ctx, ni.URL)
	if err != nil {
		return Measured{}, err
	}
	defer resp.Body.Close()
	exists, err := repo.Exists(ctx, rel)
	if err != nil {
		return Measured{}, err
	}
	var w *store.Writer
	var copyTo io.Writer
	if !exists {
		if w, err = repo.NewWriter(ctx, rel, &store.WriteOptions{ContentType: store.ContentTypeNar}); err != nil {
			return Measured{}, err
		}
		defer w.Abort()
		copyTo = w
	}
	if tee != nil {
		if copyTo == nil {
			copyTo = tee
		} else {
			copyTo = io.MultiWriter(w, tee)
		}
	}
	limit := int64(ni.FileSize)
	if limit == 0 {
		limit = 64 << 30
	}
	m, err := Measure(resp.Body, MeasureOptions{Compression: ni.EffectiveCompression(),
		MaxFileSize: limit, SizeHint: resp.ContentLength, NarSize: ni.NarSize, Copy: copyTo, Limits: up.Limits})
	if err != nil {
		var ne *NarError
		var le *LimitError
		if errors.As(err, &ne) || errors.As(err, &le) || errors.Is(err, ErrTooLarge) {
			return Measured{}, fmt.Errorf("%w: upstream NAR of %s: %v", ErrMismatch, ni.StorePath.Absolute(), err)
		}
		if isStoreWriteError(err) || ctx.Err() != nil {
			return Measured{}, err
		}
		return Measured{}, fmt.Errorf("%w: reading the NAR of %s: %v", ErrUpstream, ni.StorePath.Absolute(), err)
	}
	if err := CheckClaims(ni, m); err != nil {
		return Measured{}, fmt.Errorf("%w: upstream NAR of %s: %s", ErrMismatch, ni.StorePath.Absolute(), strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return commitMeasured(ctx, repo, w, m)
}

// ErrMissingRefs: a pulled narinfo cannot be written yet because some of
// its references are not in the repository.
var ErrMissingRefs = errors.New("references not in the repository yet")

// CommitPulled writes the narinfo of a path whose NAR file PullNar stored:
// URL rewritten to the canonical NAR name, upstream signatures kept, key's
// signature added when key is set, the listing written first, and only when
// every reference is already in the repository (else ErrMissingRefs), so the
// repository stays closed under references.
func CommitPulled(ctx context.Context, repo *store.Cache, ni *nix.NarInfo, m Measured, key nix.SecretKey) error {
	missing, err := missingReferences(ctx, repo, ni)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrMissingRefs, strings.Join(missing, " "))
	}
	out := *ni
	out.Compression = ni.EffectiveCompression()
	out.URL = store.NarFile(m.FileHash, out.Compression)
	out.FileHash, out.FileSize = m.FileHash, m.FileSize
	out.Sigs = append([]string(nil), ni.Sigs...)
	if key.Name != "" {
		if err := out.Sign(key); err != nil {
			return err
		}
	}
	hash := ni.StorePath.HashPart()
	if len(m.Listing) > 0 { // none when it was skipped (Limits.MaxListing)
		if err := repo.Put(ctx, store.ListingFile(hash), m.Listing, &store.WriteOptions{ContentType: store.ContentTypeListing}); err != nil {
			return err
		}
	}
	err = repo.PutNarInfo(ctx, &out)
	if errors.Is(err, store.ErrExists) {
		return nil // identical content by construction (same upstream path)
	}
	return err
}
