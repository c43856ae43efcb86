package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// Repo describes one repository to publish.
type Repo struct {
	Name     string
	Priority int
}

// Change is one object publish looked at.
type Change struct {
	Key     string `json:"key"`
	Written bool   `json:"written"` // false: already up to date
}

// Report lists the nix-cache-info objects CacheInfo wrote.
type Report struct {
	Objects  []Change `json:"objects"`
	Written  int      `json:"written"`
	Duration float64  `json:"durationSeconds"`
}

// CacheInfo writes the nix-cache-info of every repository in repos.
func CacheInfo(ctx context.Context, st *store.Store, repos []Repo) (*Report, error) {
	start := time.Now()
	rep := &Report{Objects: []Change{}}
	for _, r := range repos {
		info := nix.CacheInfo{StoreDir: nix.StoreDir, WantMassQuery: true, Priority: r.Priority}
		c := st.Repo(r.Name)
		written, err := putIfChanged(ctx, st, c.Key(store.CacheInfoFile), info.Bytes(), store.ContentTypeCacheInfo)
		if err != nil {
			return nil, fmt.Errorf("publish %s: %w", r.Name, err)
		}
		rep.Objects = append(rep.Objects, Change{Key: c.Key(store.CacheInfoFile), Written: written})
		if written {
			rep.Written++
		}
	}
	rep.Duration = time.Since(start).Seconds()
	return rep, nil
}

// putIfChanged writes data at key unless the object already holds exactly
// those bytes.
func putIfChanged(ctx context.Context, st *store.Store, key string, data []byte, contentType string) (bool, error) {
	old, err := st.Get(ctx, key)
	if err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	if err := st.Put(ctx, key, data, &store.WriteOptions{ContentType: contentType}); err != nil {
		return false, err
	}
	return true, nil
}
