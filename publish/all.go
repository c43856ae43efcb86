package publish

import (
	"context"
	"errors"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/site"
)

// Plan is everything one publish writes. All writes it in the one order
// that keeps every reader's view complete:
//
//  1. each virtual repository materialised (its narinfos after their NAR
//     files and references);
//  2. the catalog brought up to date, when Index is set, so that it
//     includes what step 1 wrote (a run's virtual repositories are never a
//     catalog behind);
//  3. each repository's nix-cache-info, after its content: a repository
//     becomes visible to Nix once complete;
//  4. the static site from the catalog, when Site is set and a catalog
//     exists.
type Plan struct {
	// Repos is every repository: each gets a nix-cache-info.
	Repos []Repo
	// Virtual lists the virtual repositories to materialise.
	Virtual []Virtual
	// Index, when set, updates (or with Rebuild rebuilds) the catalog.
	Index *IndexStep
	// Site, when set, writes the static site under store.SitePrefix.
	Site *site.Options
}

// IndexStep is the catalog update All runs after the virtual repositories.
type IndexStep struct {
	Repos   []index.RepoInfo
	Options *index.BuildOptions
	Rebuild bool
}

// AllReport is what All did.
type AllReport struct {
	*Report
	Virtual []*VirtualReport `json:"virtual"`
	// Index is the catalog update (nil when the plan had none); callers
	// report it on its own, as the index command does.
	Index *index.UpdateReport `json:"-"`
	// Site counts static-site objects written or removed (-1: no site
	// written, because it is disabled or there is no catalog yet).
	Site int `json:"site"`
}

// All publishes p in the order Plan describes. It stops at the first error,
// with what was done so far in the report.
func All(ctx context.Context, st *store.Store, p Plan) (*AllReport, error) {
	rep := &AllReport{Virtual: []*VirtualReport{}, Site: -1}
	for _, v := range p.Virtual {
		vr, err := Materialize(ctx, st, v)
		if err != nil {
			return rep, err
		}
		rep.Virtual = append(rep.Virtual, vr)
	}
	if p.Index != nil {
		var err error
		if p.Index.Rebuild {
			rep.Index, err = index.Rebuild(ctx, st, p.Index.Repos, p.Index.Options)
		} else {
			rep.Index, err = index.Update(ctx, st, p.Index.Repos, p.Index.Options)
		}
		if err != nil {
			return rep, err
		}
	}
	var err error
	if rep.Report, err = CacheInfo(ctx, st, p.Repos); err != nil {
		return rep, err
	}
	if p.Site == nil {
		return rep, nil
	}
	cat, err := index.Load(ctx, st)
	switch {
	case errors.Is(err, index.ErrNoCatalog):
		return rep, nil
	case err != nil:
		return rep, err
	}
	rep.Site, err = Site(ctx, st, cat, *p.Site)
	return rep, err
}
