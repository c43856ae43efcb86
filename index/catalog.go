package index

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime"
	"slices"
	"sort"
	"time"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/internal/work"
)

// The persisted catalog lives under store.CatalogPrefix in the store
// bucket, next to (never inside) the repositories (store names the keys):
//
//	manifest.json                  JSON: generation, repos, channels, stats, sources
//	packages/<xx>.json.s2          JSON array of Package (sorted by name), xx = ShardOf(name) in hex
//	state/<repo>/<c>.tsv.s2        TSV of the repo's narinfos whose hash starts with c
//	snapshots/<repo>/<channel>/<id>.tsv.s2
//	                               TSV "pname\tversion" the snapshot's store-paths.xz carried
//	meta.json.s2                   JSON name → packages.json metadata
//
// All but the manifest are S2 streams (catalog_codec.go).
// The manifest changes by compare-and-swap only: a build takes the
// catalog's claim by marking it pending (claim.go) and commits it complete
// with the new generation, so a reader never mistakes a half-written
// update for a complete one and the next Update redoes an interrupted one
// in full.
const (
	// PackageShards is the number of package shard objects.
	PackageShards = 256

	catalogFormat = 2 // 1: objects were zstd
	nix32Alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
)

// ShardOf is the package shard holding the package name.
func ShardOf(name string) int {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int(h.Sum32() % PackageShards)
}

// BuildOptions tune Build and Update. The zero value works.
type BuildOptions struct {
	// IndexDir is the folder of the local search index (see OpenIndex);
	// "" maintains the catalog in the bucket only.
	IndexDir string
	// IndexShards is the number of bleve indexes a full build writes in
	// parallel (default GOMAXPROCS, at most 8). Updates keep the count of
	// the index they update.
	IndexShards int
	// Workers is the number of narinfos read at once (default GOMAXPROCS
	// for a folder bucket, 32 for object stores).
	Workers int
	// Logger receives warnings (unreadable narinfos, corrupt channel
	// files) and debug timings; nil discards them.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o *BuildOptions) withDefaults(st *store.Store) BuildOptions {
	var r BuildOptions
	if o != nil {
		r = *o
	}
	if r.Workers <= 0 {
		if _, local := st.LocalPath("x"); local {
			r.Workers = 2 * runtime.GOMAXPROCS(0)
		} else {
			r.Workers = 32
		}
	}
	if r.IndexShards <= 0 {
		r.IndexShards = min(runtime.GOMAXPROCS(0), 8)
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	return r
}

// manifest is the catalog manifest (store.CatalogManifest).
type manifest struct {
	Format     int   `json:"format"`
	Generation int64 `json:"generation"`
	Pending    bool  `json:"pending,omitempty"`
	// Claim names the build that holds a pending manifest (claim.go).
	Claim     *claim        `json:"claim,omitempty"`
	Generated time.Time     `json:"generated"`
	Repos     []RepoInfo    `json:"repos"`
	Channels  []ChannelInfo `json:"channels"`
	Stats     Stats         `json:"stats"`
	// Snapshots are the channel snapshots whose store paths were joined.
	Snapshots []snapshotRec `json:"snapshots"`
	// MetaSources are the snapshots (repo/channel/id) whose
	// packages.json.br gave the metadata, oldest first.
	MetaSources []string `json:"metaSources"`
	// ShardStats count packages and versions per package shard.
	ShardStats []shardStat `json:"shardStats"`
}

type snapshotRec struct {
	Key      string    `json:"key"` // repo/channel/id
	Uploaded time.Time `json:"uploaded"`
	Paths    int       `json:"paths"`
	HasPairs bool      `json:"hasPairs,omitempty"`
}

type shardStat struct {
	Packages int `json:"p"`
	Versions int `json:"v"`
	// Gen is the generation that last wrote the shard, or one after it
	// (0: not recorded), so a search index at generation g catches up by
	// re-indexing the shards with a later Gen (followIndex).
	Gen int64 `json:"g,omitempty"`
}

// pathRec is one narinfo of one repository: what the catalog keeps of it.
type pathRec struct {
	sp       string // "/nix/store/<hash>-<name>"
	narSize  uint64
	fileSize uint64
	mod      int64 // narinfo modification time, Unix nanoseconds
	kind     byte  // 'p', 'd', 's', 'o'
}

const spHash = len(nix.StoreDir) + 1 // index of the hash in sp

func (r *pathRec) hash() string { return r.sp[spHash : spHash+nix.HashPartLen] }

// repoPaths is one repository's narinfos sorted by hash.
type repoPaths struct {
	name string
	recs []pathRec
}

func kindCode(k Kind) byte {
	switch k {
	case KindPackage:
		return 'p'
	case KindDerivation:
		return 'd'
	case KindSource:
		return 's'
	}
	return 'o'
}

// Build reads every narinfo of the repositories and their channel
// snapshots, writes the complete catalog and the per-repository state that
// Update works from to the bucket, and (with IndexDir) builds the search
// index from scratch. Unreadable narinfos are skipped with a warning.
// While another process builds the catalog, Build waits for it to finish
// (claim.go).
func Build(ctx context.Context, st *store.Store, repos []RepoInfo, opts *BuildOptions) (*Catalog, error) {
	o := opts.withDefaults(st)
	cat, _, err := fullBuild(ctx, st, repos, &o)
	return cat, err
}

// Rebuild is Build reported as an update: a full build whose report counts
// every narinfo as added.
func Rebuild(ctx context.Context, st *store.Store, repos []RepoInfo, opts *BuildOptions) (*UpdateReport, error) {
	o := opts.withDefaults(st)
	start := time.Now()
	cat, gen, err := fullBuild(ctx, st, repos, &o)
	if err != nil {
		return nil, err
	}
	rep := fullReport(cat, gen, &o)
	rep.Finish(start)
	return rep, nil
}

func fullReport(cat *Catalog, gen int64, o *BuildOptions) *UpdateReport {
	s := cat.Stats
	return &UpdateReport{Full: true, Generation: gen, Added: s.Paths + s.Derivations + s.Sources + s.Other,
		IndexRebuilt: o.IndexDir != "", Stats: s}
}

// fullBuild runs build on the current manifest, after any other build
// holding the catalog's claim, and again when another build changed the
// catalog first (at most maxAttempts times).
func fullBuild(ctx context.Context, st *store.Store, repos []RepoInfo, o *BuildOptions) (*Catalog, int64, error) {
	var w waiter
	for attempt := 1; ; attempt++ {
		base, prev, err := readManifestBytes(ctx, st)
		if err != nil && base == nil && !errors.Is(err, store.ErrNotFound) {
			return nil, 0, fmt.Errorf("index: %w", err)
		}
		if err == nil && prev.Pending && !w.stale(prev) {
			if err := w.wait(ctx, st, base, o.Logger); err != nil {
				return nil, 0, err
			}
			continue
		}
		cat, gen, err := build(ctx, st, repos, o, base, prev)
		if retryable(err) && attempt < maxAttempts {
			o.Logger.Debug("the catalog changed during the build: starting again", "err", err)
			continue
		}
		return cat, gen, err
	}
}

func retryable(err error) bool { return errors.Is(err, errMoved) || errors.Is(err, errClaimLost) }

// build builds the catalog under a claim taken over the manifest base (the
// bytes read; nil: none) whose content is prev (nil if none or unusable);
// it also returns the catalog's generation.
func build(ctx context.Context, st *store.Store, repos []RepoInfo, o *BuildOptions, base []byte, prev *manifest) (*Catalog, int64, error) {
	start := time.Now()
	gen := int64(1)
	if prev != nil {
		gen = prev.Generation + 1
	}
	repos = sortedRepos(repos)
	// Readers see the previous catalog's description until this one is
	// complete.
	pending := manifest{Format: catalogFormat, Generation: gen - 1, ShardStats: make([]shardStat, PackageShards)}
	if prev != nil && prev.Format == catalogFormat {
		pending = *prev
	}
	h, err := acquire(ctx, st, base, pending, o.Logger)
	if err != nil {
		return nil, 0, err
	}
	cat, err := buildClaimed(h, st, repos, o, gen, prev, start)
	if err != nil {
		return nil, 0, h.release(h.err(err))
	}
	return cat, gen, nil
}

func buildClaimed(h *holder, st *store.Store, repos []RepoInfo, o *BuildOptions, gen int64, prev *manifest, start time.Time) (*Catalog, error) {
	ctx := h.ctx
	// The repositories' paths and the channels are independent: read
	// them at the same time.
	var (
		ch     *channelsData
		meta   map[string]pkgMeta
		chRead = make(chan error, 1)
	)
	go func() {
		var err error
		ch, err = readChannels(ctx, st, repos, nil, o, func(cd *channelsData) { meta = readMeta(ctx, st, cd, o) })
		chRead <- err
	}()
	all := make([]repoPaths, len(repos))
	err := work.Each(ctx, len(repos), len(repos), func(i int) error {
		recs, err := readRepoFull(ctx, st, repos[i].Name, o)
		all[i] = repoPaths{name: repos[i].Name, recs: recs}
		return err
	})
	if chErr := <-chRead; err == nil {
		err = chErr
	}
	if err != nil {
		return nil, err
	}
	for i := range repos {
		repos[i].Paths = len(all[i].recs)
	}
	tRead := time.Since(start)

	ci, err := newChannelIndex(ctx, st, ch)
	if err != nil {
		return nil, err
	}
	cat := assembleAll(all, ci, meta)
	ci = nil
	cat.Repos = repos
	cat.Channels = ch.infos
	cat.Generated = o.Now().UTC()
	tAssemble := time.Since(start)

	m := &manifest{
		Format: catalogFormat, Generation: gen, Generated: cat.Generated,
		Repos: repos, Channels: ch.infos, Stats: cat.Stats,
		Snapshots: ch.records(), MetaSources: ch.metaSources(),
		ShardStats: make([]shardStat, PackageShards),
	}
	// The catalog first (the index records its generation), then the
	// index, with the narinfo records released: both are CPU-bound, and
	// measured side by side they took longer than one after the other.
	if err := persistFull(h, st, m, cat.Packages, all, ch, meta, prev); err != nil {
		return nil, err
	}
	all, ch, meta = nil, nil, nil
	tPersist := time.Since(start)
	if o.IndexDir != "" {
		if err := BuildIndex(o.IndexDir, cat.Packages, gen, o.IndexShards); err != nil {
			return nil, err
		}
	}
	o.Logger.Debug("catalog built", "paths", cat.Stats.Paths, "packages", cat.Stats.Packages,
		"read", tRead, "assemble", tAssemble-tRead, "persist", tPersist-tAssemble,
		"index", time.Since(start)-tPersist)
	return cat, nil
}

func sortedRepos(repos []RepoInfo) []RepoInfo {
	r := slices.Clone(repos)
	sort.Slice(r, func(i, j int) bool { return r[i].Name < r[j].Name })
	return r
}
