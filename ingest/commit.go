package ingest

import (
	"context"
	"errors"
	"fmt"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

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

// commitNarInfo writes ni, a checked narinfo whose NAR file is stored,
// together with listing, the listing computed from that NAR file (empty:
// none is kept), by the write protocol every writer of narinfos follows:
// the listing is only created before the narinfo, never replacing another
// writer's; the narinfo is created write-once; then the listing is
// settled. The winner (won) makes the listing its own unless it created it
// itself (then no one else can have written another: every other writer
// only creates, or settles to the winner's); a loser puts back the one
// computed from the winner's NAR file (SettleListing, bounded by lim), and
// the caller compares the winner's narinfo with its own.
func commitNarInfo(ctx context.Context, repo *store.Cache, ni *nix.NarInfo, listing []byte, lim Limits) (won bool, err error) {
	hash := ni.StorePath.HashPart()
	created, err := createListing(ctx, repo, hash, listing)
	if err != nil {
		return false, err
	}
	err = repo.PutNarInfo(ctx, ni)
	switch {
	case err == nil && created:
		return true, nil
	case err == nil:
		// The listing there is another upload's (a client's .ls, a
		// loser's) or none: make it this narinfo's.
		return true, ensureListing(ctx, repo, hash, listing)
	case !errors.Is(err, store.ErrExists):
		return false, err
	}
	// Another writer got there first: first writer wins, and so does its
	// listing. The listing just created may be this writer's.
	return false, SettleListing(ctx, repo, hash, lim)
}
