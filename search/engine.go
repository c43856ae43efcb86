package search

import (
	"context"
	"sync"
	"time"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/internal/store"
)

// Engine serves searches and package lookups for a long-running process
// (the server): it keeps the current index generation open, switches to a
// newer one when an indexer makes it current (checked at most once a
// second), and rebuilds the index from the bucket when it is missing or
// unreadable. Package details come from the catalog in the bucket.
type Engine struct {
	st  *store.Store
	dir string

	mu      sync.RWMutex
	idx     *index.Index
	checked time.Time
}

// NewEngine returns an engine over the index folder dir and the catalog in
// st. Nothing is opened until the first search.
func NewEngine(st *store.Store, dir string) *Engine { return &Engine{st: st, dir: dir} }

// Open opens (and if needed rebuilds) the index now rather than on the
// first search.
func (e *Engine) Open(ctx context.Context) error {
	_, release, err := e.current(ctx)
	if err == nil {
		release()
	}
	return err
}

// current returns the open index, holding a read lock until release.
func (e *Engine) current(ctx context.Context) (*index.Index, func(), error) {
	e.mu.RLock()
	if e.idx != nil && time.Since(e.checked) < time.Second {
		return e.idx, e.mu.RUnlock, nil
	}
	e.mu.RUnlock()

	e.mu.Lock()
	if e.idx == nil {
		x, _, err := index.EnsureIndex(ctx, e.st, e.dir)
		if err != nil {
			e.mu.Unlock()
			return nil, nil, err
		}
		e.idx = x
	} else if time.Since(e.checked) >= time.Second {
		if g, err := index.IndexGeneration(e.dir); err == nil && g != e.idx.Generation {
			if x, err := index.OpenIndex(e.dir); err == nil {
				e.idx.Close()
				e.idx = x
			}
		}
	}
	e.checked = time.Now()
	e.mu.Unlock()
	e.mu.RLock()
	if e.idx == nil {
		e.mu.RUnlock()
		return nil, nil, index.ErrNoIndex
	}
	return e.idx, e.mu.RUnlock, nil
}

// Refresh makes the next search check for a newer index generation
// (otherwise checked at most once a second).
func (e *Engine) Refresh() {
	e.mu.Lock()
	e.checked = time.Time{}
	e.mu.Unlock()
}

// Search runs Search on the current index.
func (e *Engine) Search(ctx context.Context, q string, opts *Options) ([]Result, error) {
	x, release, err := e.current(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return Search(x, q, opts)
}

// Package returns a package of the catalog (index.ErrNoPackage when
// unknown).
func (e *Engine) Package(ctx context.Context, name string) (*index.Package, error) {
	return index.LoadPackage(ctx, e.st, name)
}

// Close closes the index.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.idx == nil {
		return nil
	}
	err := e.idx.Close()
	e.idx = nil
	return err
}
