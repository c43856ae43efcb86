package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

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
	limit := int64(ni.FileSize)
	if limit == 0 {
		limit = 64 << 30
	}
	open := func() (io.ReadCloser, error) { return resp.Body, nil }
	m, _, err := storeNar(ctx, repo, rel, open, MeasureOptions{Compression: ni.EffectiveCompression(),
		MaxFileSize: limit, SizeHint: resp.ContentLength, NarSize: ni.NarSize, Copy: tee, Limits: up.Limits},
		recordStored, func(m Measured, err error) error {
			var ne *NarError
			var le *LimitError
			switch {
			case errors.As(err, &ne) || errors.As(err, &le) || errors.Is(err, ErrTooLarge):
				return fmt.Errorf("%w: upstream NAR of %s: %v", ErrMismatch, ni.StorePath.Absolute(), err)
			case ctx.Err() != nil:
				return err
			case err != nil:
				return fmt.Errorf("%w: reading the NAR of %s: %v", ErrUpstream, ni.StorePath.Absolute(), err)
			}
			if err := CheckClaims(ni, m); err != nil {
				return fmt.Errorf("%w: upstream NAR of %s: %s", ErrMismatch, ni.StorePath.Absolute(), strings.ReplaceAll(err.Error(), "\n", "; "))
			}
			return nil
		})
	return m, err
}

// ErrMissingRefs: a pulled narinfo cannot be written yet because some of
// its references are not in the repository.
var ErrMissingRefs = errors.New("references not in the repository yet")

// CommitPulled writes the narinfo of a path whose NAR file PullNar stored:
// URL rewritten to the canonical NAR name, upstream signatures kept, key's
// signature added when key is set, the listing created first and settled
// after (as every writer of narinfos does), and only when every reference is
// already in the repository (else ErrMissingRefs), so the repository stays
// closed under references.
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
	// A path pulled by another writer meanwhile has identical contents by
	// construction (the same upstream path).
	_, err = commitNarInfo(ctx, repo, &out, m.Listing, Limits{})
	return err
}
