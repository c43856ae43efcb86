package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/site"
)

// SitePrefix is the reserved top-level prefix of the bucket that holds the
// static site: <base>/_site/index.html is its home page. Repository names
// start with [a-z0-9], so it never collides with a repository.
const SitePrefix = "_site/"

// siteWorkers is how many objects Site compares and writes at once.
const siteWorkers = 16

// Site renders the static site of cat (see package site) and writes it under
// SitePrefix. An object whose bytes are unchanged is not rewritten, so a CDN
// keeps its cache; pages of packages that left the catalog, and any other
// object under SitePrefix the site no longer has, are deleted. Pages are
// written before the pages that link to them (the home page, the package
// list and the search manifest last), so a visitor never follows a link
// to a page that is not there yet. written counts the objects written or
// deleted.
func Site(ctx context.Context, st *store.Store, cat *index.Catalog, opts site.Options) (written int, err error) {
	existing := map[string]int64{}
	err = st.List(ctx, SitePrefix, false, func(o store.Object) error {
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
	put := func(f site.File) error {
		key := SitePrefix + f.Path
		if size, ok := existing[key]; ok && size == int64(len(f.Data)) {
			old, err := st.Get(ctx, key)
			if err == nil && bytes.Equal(old, f.Data) {
				return nil
			}
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if err := st.Put(ctx, key, f.Data, &store.WriteOptions{ContentType: f.ContentType}); err != nil {
			return err
		}
		n.Add(1)
		return nil
	}

	jobs := make(chan site.File)
	var wg sync.WaitGroup
	for range siteWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range jobs {
				if ctx.Err() != nil {
					continue
				}
				if err := put(f); err != nil {
					cancel(err)
				}
			}
		}()
	}
	rendered := map[string]bool{}
	var late []site.File
	genErr := site.Generate(cat, opts, func(f site.File) error {
		rendered[SitePrefix+f.Path] = true
		if f.Late() {
			late = append(late, f)
			return nil
		}
		select {
		case jobs <- f:
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
	for _, f := range late {
		if err := put(f); err != nil {
			return int(n.Load()), fmt.Errorf("publish site: %w", err)
		}
	}
	// Then what the site no longer has.
	var stale []string
	for key := range existing {
		if !rendered[key] {
			stale = append(stale, key)
		}
	}
	sort.Strings(stale)
	for _, key := range stale {
		if err := st.Delete(ctx, key); err != nil && !errors.Is(err, store.ErrNotFound) {
			return int(n.Load()), fmt.Errorf("publish site: %w", err)
		}
		n.Add(1)
	}
	return int(n.Load()), nil
}
