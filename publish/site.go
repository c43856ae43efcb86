package publish

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/site"
)

// siteWorkers is how many objects Site compares and writes at once.
const siteWorkers = 16

// Site renders the static site of cat (see package site) and writes it under
// store.SitePrefix. An object whose bytes are unchanged is not rewritten, so a CDN
// keeps its cache; pages of packages that left the catalog, and any other
// object under store.SitePrefix the site no longer has, are deleted. Pages are
// written before the pages that link to them (the home page, the package
// list and the search manifest last), so a visitor never follows a link
// to a page that is not there yet. written counts the objects written or
// deleted. With opts.Repos the site shows only those repositories, and
// the pages and search files of anything else are deleted with the rest
// of what the site no longer has.
func Site(ctx context.Context, st *store.Store, cat *index.Catalog, opts site.Options) (written int, err error) {
	existing := map[string]int64{}
	err = st.List(ctx, store.SitePrefix, false, func(o store.Object) error {
		if !o.Dir {
			existing[o.Key] = o.Size
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("publish site: %w", err)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var n atomic.Int64
	// A file to write, with the size of the object it replaces (had).
	type job struct {
		f    site.File
		size int64
		had  bool
	}
	put := func(j job) error {
		key := store.SitePrefix + j.f.Path
		if j.had && j.size == int64(len(j.f.Data)) { // maybe unchanged: compare
			changed, err := putIfChanged(ctx, st, key, j.f.Data, j.f.ContentType)
			if changed {
				n.Add(1)
			}
			return err
		}
		if err := st.Put(ctx, key, j.f.Data, &store.WriteOptions{ContentType: j.f.ContentType}); err != nil {
			return err
		}
		n.Add(1)
		return nil
	}

	jobs := make(chan job)
	var wg sync.WaitGroup
	for range siteWorkers {
		wg.Go(func() {
			for j := range jobs {
				if ctx.Err() != nil {
					continue
				}
				if err := put(j); err != nil {
					cancel(err)
				}
			}
		})
	}
	var late []job
	genErr := site.Generate(cat, opts, func(f site.File) error {
		// What stays in existing once all is rendered is stale.
		key := store.SitePrefix + f.Path
		size, had := existing[key]
		delete(existing, key)
		j := job{f, size, had}
		if f.Late() {
			late = append(late, j)
			return nil
		}
		select {
		case jobs <- j:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return int(n.Load()), fmt.Errorf("publish site: %w", err)
	}
	if genErr != nil {
		return int(n.Load()), fmt.Errorf("publish site: %w", genErr)
	}
	// The entry points, once everything they link to is in place.
	for _, j := range late {
		if err := put(j); err != nil {
			return int(n.Load()), fmt.Errorf("publish site: %w", err)
		}
	}
	// Then what the site no longer has.
	stale := slices.Collect(maps.Keys(existing))
	sort.Strings(stale)
	for _, key := range stale {
		if err := st.Delete(ctx, key); err != nil && !errors.Is(err, store.ErrNotFound) {
			return int(n.Load()), fmt.Errorf("publish site: %w", err)
		}
		n.Add(1)
	}
	return int(n.Load()), nil
}
