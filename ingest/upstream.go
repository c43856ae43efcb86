package ingest

import (
	"context"
	"errors"
	"fmt"
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
