package index

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"

	"github.com/nixrepo/nixrepo/internal/work"

	"github.com/nixrepo/nixrepo/internal/store"
)

// ---------------------------------------------------------------------------
// Reading the persisted catalog

// ErrNoCatalog is returned when the bucket has no catalog yet.
var ErrNoCatalog = errors.New("no package catalog in the bucket (run nixrepo index)")

// Load reads the whole persisted catalog from the bucket.
func Load(ctx context.Context, st *store.Store) (*Catalog, error) {
	cat, _, err := load(ctx, st)
	return cat, err
}

// load is Load, also returning the manifest the catalog was read under.
func load(ctx context.Context, st *store.Store) (*Catalog, *manifest, error) {
	m, err := readManifest(ctx, st)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNoCatalog
	}
	if err != nil {
		return nil, nil, err
	}
	shards := make([][]Package, PackageShards)
	err = work.Each(ctx, max(4, runtime.GOMAXPROCS(0)), PackageShards, func(i int) error {
		p, err := readShard(ctx, st, i)
		shards[i] = p
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	cat := &Catalog{Generated: m.Generated, Repos: m.Repos, Channels: m.Channels, Stats: m.Stats}
	n := 0
	for _, s := range shards {
		n += len(s)
	}
	cat.Packages = make([]Package, 0, n)
	for _, s := range shards {
		cat.Packages = append(cat.Packages, s...)
	}
	sort.Slice(cat.Packages, func(i, j int) bool { return cat.Packages[i].Name < cat.Packages[j].Name })
	return cat, m, nil
}

// Generation returns the generation of the persisted catalog (0 when
// there is none). It grows by one with every build or update that changed
// something.
func Generation(ctx context.Context, st *store.Store) (int64, error) {
	m, err := readManifest(ctx, st)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Generation, nil
}

// ErrNoPackage is returned by LoadPackage for an unknown name.
var ErrNoPackage = errors.New("no such package")

// LoadPackage reads one package from the persisted catalog (one shard).
func LoadPackage(ctx context.Context, st *store.Store, name string) (*Package, error) {
	pkgs, err := readShard(ctx, st, ShardOf(name))
	if err != nil {
		return nil, err
	}
	i, found := sort.Find(len(pkgs), func(i int) int { return strings.Compare(name, pkgs[i].Name) })
	if !found {
		return nil, fmt.Errorf("%w: %q", ErrNoPackage, name)
	}
	return &pkgs[i], nil
}

// FilterPackage returns p restricted to the repositories allowed accepts:
// paths only in other repositories are dropped, repository lists are cut
// down, versions without paths disappear and Latest is recomputed. It
// returns nil when nothing is left.
func FilterPackage(p *Package, allowed func(repo string) bool) *Package {
	out := *p
	out.Versions = nil
	out.Repos = nil
	keep := func(rs []string) []string {
		var k []string
		for _, r := range rs {
			if allowed(r) {
				k = append(k, r)
			}
		}
		return k
	}
	for _, v := range p.Versions {
		nv := v
		nv.Paths = nil
		for _, pi := range v.Paths {
			if rs := keep(pi.Repos); len(rs) > 0 {
				pi.Repos = rs
				nv.Paths = append(nv.Paths, pi)
			}
		}
		if len(nv.Paths) == 0 {
			continue
		}
		nv.Repos = keep(v.Repos)
		var chans []string
		for _, c := range v.Channels {
			if r, _, _ := strings.Cut(c, "/"); allowed(r) {
				chans = append(chans, c)
			}
		}
		nv.Channels = chans
		out.Versions = append(out.Versions, nv)
		out.Repos = unionSorted(out.Repos, nv.Repos)
	}
	if len(out.Versions) == 0 {
		return nil
	}
	out.Latest = out.Versions[0].Version
	return &out
}
