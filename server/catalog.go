package server

import (
	"context"
	"time"

	"github.com/nixrepo/nixrepo/index"
)

// CatalogUpdate makes Serve keep the package catalog in the bucket and
// the local search index current: every Interval it runs index.Update, as
// "nixrepo index" does, so what any process wrote to the bucket (this
// server's uploads, another replica's, a run's) is searchable here within
// about Interval plus the update's duration.
//
// The update runs in one background goroutine, one at a time (a tick that
// comes while one runs is skipped), and never holds up a request: the
// search engine switches to the new index generation when it is made
// current. Updates of several processes over one bucket take turns
// (index.Update waits for another's claim on the catalog). A failure is
// logged and retried at the next tick.
type CatalogUpdate struct {
	Repos []index.RepoInfo
	// Options are the update's; IndexDir must be the search backend's
	// index folder.
	Options *index.BuildOptions
	// Interval between the end of one update and the next tick; 0 (or
	// negative) turns the updates off.
	Interval time.Duration
}

// refresher is a search backend that can be told a new index generation
// is current (search.Engine).
type refresher interface{ Refresh() }

// updateCatalog runs the catalog updates until done is closed.
func (s *Server) updateCatalog(done <-chan struct{}) {
	cu := s.opts.Catalog
	if cu == nil || cu.Interval <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-done
		cancel()
	}()
	t := time.NewTicker(cu.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.UpdateCatalog(ctx)
		// A tick that came while the update ran is skipped.
		select {
		case <-t.C:
		default:
		}
	}
}

// UpdateCatalog runs one catalog update now (Serve runs them every
// CatalogUpdate.Interval) and reports whether it succeeded; a failure is
// logged.
func (s *Server) UpdateCatalog(ctx context.Context) bool {
	cu := s.opts.Catalog
	if cu == nil {
		return false
	}
	s.catalogMu.Lock()
	defer s.catalogMu.Unlock()
	rep, err := index.Update(ctx, s.st, cu.Repos, cu.Options)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("catalog update failed", "err", err)
		}
		return false
	}
	if r, ok := s.opts.Search.(refresher); ok {
		r.Refresh()
	}
	if rep.Full || rep.Added+rep.Removed+rep.Snapshots > 0 {
		s.log.Info("catalog updated", "generation", rep.Generation, "full", rep.Full, "added", rep.Added,
			"removed", rep.Removed, "snapshots", rep.Snapshots, "packages", len(rep.Changed)+len(rep.Deleted),
			"seconds", rep.Seconds)
	}
	return true
}
