package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/nixrepo/nixrepo/internal/compress"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// The persisted catalog lives under CatalogPrefix in the store bucket, next
// to (never inside) the repositories:
//
//	_nixrepo/catalog/manifest.json                  JSON: generation, repos, channels, stats, sources
//	_nixrepo/catalog/packages/<xx>.json.zst         zstd JSON array of Package (sorted by name), xx = ShardOf(name) in hex
//	_nixrepo/catalog/state/<repo>/<c>.tsv.zst       zstd TSV of the repo's narinfos whose hash starts with c
//	_nixrepo/catalog/snapshots/<repo>/<channel>/<id>.tsv.zst
//	                                                zstd TSV "pname\tversion" the snapshot's store-paths.xz carried
//	_nixrepo/catalog/meta.json.zst                  zstd JSON name → packages.json metadata
//
// The manifest is written first (marked pending) and last (with the new
// generation), so a reader never mistakes a half-written update for a
// complete one and the next Update redoes an interrupted one in full.
const (
	CatalogPrefix = store.Reserved + "catalog/"
	ManifestKey   = CatalogPrefix + "manifest.json"
	MetaKey       = CatalogPrefix + "meta.json.zst"
	// PackageShards is the number of package shard objects.
	PackageShards = 256

	catalogFormat = 1
	nix32Alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
)

// PackageShardKey is the key of package shard i.
func PackageShardKey(i int) string { return fmt.Sprintf("%spackages/%02x.json.zst", CatalogPrefix, i) }

// ShardOf is the package shard holding the package name.
func ShardOf(name string) int {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int(h.Sum32() % PackageShards)
}

func stateShardKey(repo string, c byte) string {
	return CatalogPrefix + "state/" + repo + "/" + string(c) + ".tsv.zst"
}

func snapshotPairsKey(repo, channel, id string) string {
	return CatalogPrefix + "snapshots/" + repo + "/" + channel + "/" + id + ".tsv.zst"
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

// manifest is _nixrepo/catalog/manifest.json.
type manifest struct {
	Format     int           `json:"format"`
	Generation int64         `json:"generation"`
	Pending    bool          `json:"pending,omitempty"`
	Generated  time.Time     `json:"generated"`
	Repos      []RepoInfo    `json:"repos"`
	Channels   []ChannelInfo `json:"channels"`
	Stats      Stats         `json:"stats"`
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
func Build(ctx context.Context, st *store.Store, repos []RepoInfo, opts *BuildOptions) (*Catalog, error) {
	o := opts.withDefaults(st)
	start := time.Now()
	prev, _ := readManifest(ctx, st)
	gen := int64(1)
	if prev != nil {
		gen = prev.Generation + 1
	}
	repos = sortedRepos(repos)

	all := make([]repoPaths, len(repos))
	for i, r := range repos {
		recs, err := readRepoFull(ctx, st, r.Name, &o)
		if err != nil {
			return nil, err
		}
		all[i] = repoPaths{name: r.Name, recs: recs}
		repos[i].Paths = len(recs)
	}
	tRead := time.Since(start)

	ch, err := readChannels(ctx, st, repos, nil, &o)
	if err != nil {
		return nil, err
	}
	meta, err := readMeta(ctx, st, ch, &o)
	if err != nil {
		return nil, err
	}
	tChan := time.Since(start)

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
		Snapshots: ch.records(), MetaSources: ch.metaSources,
		ShardStats: make([]shardStat, PackageShards),
	}
	// The catalog first (the index records its generation), then the
	// index, with the narinfo records released: one after the other keeps
	// the peak memory down, and both are CPU-bound anyway.
	if err := persistFull(ctx, st, m, cat.Packages, all, ch, meta, prev); err != nil {
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
		"read", tRead, "channels", tChan-tRead, "assemble", tAssemble-tChan, "persist", tPersist-tAssemble,
		"index", time.Since(start)-tPersist)
	return cat, nil
}

func sortedRepos(repos []RepoInfo) []RepoInfo {
	r := slices.Clone(repos)
	sort.Slice(r, func(i, j int) bool { return r[i].Name < r[j].Name })
	return r
}

// ---------------------------------------------------------------------------
// Reading narinfos

type listed struct {
	hash string
	mod  int64 // 0 when the listing did not give it
}

// listNarInfos lists a repository's narinfos sorted by hash. withMod asks
// for modification times (a folder bucket then stats every narinfo).
func listNarInfos(ctx context.Context, st *store.Store, repo string, withMod bool, workers int) ([]listed, error) {
	if dir, ok := st.LocalPath(repo); ok {
		// A folder bucket: one directory read instead of gocloud's listing,
		// which rescans the folder for every page of 1000 keys.
		f, err := os.Open(dir)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("index: list %s: %w", repo, err)
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("index: list %s: %w", repo, err)
		}
		out := make([]listed, 0, len(names)/2)
		for _, n := range names {
			h, ok := strings.CutSuffix(n, ".narinfo")
			if !ok || !nix.IsHashPart(h) {
				continue // (anything but a regular file is skipped when read)
			}
			out = append(out, listed{hash: h})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].hash < out[j].hash })
		if withMod && len(out) > 0 {
			dr, err := openDirReader(st, repo)
			if err != nil {
				return nil, fmt.Errorf("index: %w", err)
			}
			defer dr.Close()
			err = parallel(ctx, len(out), workers, func(i int) error {
				out[i].mod = dr.stat(out[i].hash + ".narinfo") // vanished: 0, the read will tell
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	var out []listed
	prefix := repo + "/"
	err := st.List(ctx, prefix, true, func(ob store.Object) error {
		if ob.Dir {
			return nil
		}
		h, ok := strings.CutSuffix(strings.TrimPrefix(ob.Key, prefix), ".narinfo")
		if !ok || !nix.IsHashPart(h) {
			return nil
		}
		out = append(out, listed{hash: h, mod: ob.ModTime.UnixNano()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index: list %s: %w", repo, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].hash < out[j].hash })
	return out, nil
}

// readNarInfo reads and parses one narinfo (through dr on a folder
// bucket). ok is false (with a warning logged) for a narinfo that vanished
// or does not parse.
func readNarInfo(ctx context.Context, st *store.Store, dr *dirReader, repo string, l listed, o *BuildOptions) (pathRec, bool, error) {
	key := repo + "/" + l.hash + ".narinfo"
	var (
		b   []byte
		mod = l.mod
		err error
	)
	if dr != nil {
		bp := bufPool.Get().(*[]byte)
		defer bufPool.Put(bp)
		*bp, mod, err = dr.read(l.hash+".narinfo", (*bp)[:0])
		b = *bp
		if errors.Is(err, os.ErrNotExist) {
			return pathRec{}, false, nil
		}
	} else {
		b, err = st.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return pathRec{}, false, nil
		}
	}
	if err != nil {
		return pathRec{}, false, fmt.Errorf("index: read %s: %w", key, err)
	}
	ni, err := nix.ParseNarInfo(b)
	if err != nil {
		o.Logger.Warn("skipping unreadable narinfo", "key", key, "err", err)
		return pathRec{}, false, nil
	}
	if ni.StorePath.HashPart() != l.hash {
		o.Logger.Warn("skipping narinfo named after another store path", "key", key, "storePath", ni.StorePath.Absolute())
		return pathRec{}, false, nil
	}
	r := pathRec{sp: ni.StorePath.Absolute(), narSize: ni.NarSize, fileSize: ni.FileSize, mod: mod}
	e, err := ParseEntry(r.sp)
	if err != nil {
		o.Logger.Warn("skipping narinfo with an invalid store path", "key", key, "err", err)
		return pathRec{}, false, nil
	}
	r.kind = kindCode(e.Kind)
	return r, true, nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// dirReader reads the files of one folder with plain system calls: openat
// on the folder, fstat (for the upload time), read, close. A catalog build
// reads every narinfo of a repository, and os.Open's extra calls
// (non-blocking mode, poller registration) made that twice as slow.
type dirReader struct{ fd int }

// openDirReader opens the folder of a folder bucket's repository; it
// returns nil (and no error) for other buckets.
func openDirReader(st *store.Store, repo string) (*dirReader, error) {
	dir, ok := st.LocalPath(repo)
	if !ok {
		return nil, nil
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if errors.Is(err, syscall.ENOENT) {
		return nil, os.ErrNotExist
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &dirReader{fd: fd}, nil
}

func (d *dirReader) Close() error { return syscall.Close(d.fd) }

// read appends the file's content to buf; mod is its modification time.
func (d *dirReader) read(name string, buf []byte) (b []byte, mod int64, err error) {
	fd, err := retryEINTR(func() (int, error) {
		return syscall.Openat(d.fd, name, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	})
	if errors.Is(err, syscall.ENOENT) {
		return buf, 0, os.ErrNotExist
	}
	if err != nil {
		return buf, 0, err
	}
	defer syscall.Close(fd)
	var stt syscall.Stat_t
	if err := syscall.Fstat(fd, &stt); err != nil {
		return buf, 0, err
	}
	if stt.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return buf, 0, os.ErrNotExist
	}
	if need := int(stt.Size) + 1; cap(buf)-len(buf) < need {
		buf = slices.Grow(buf, need)
	}
	start := len(buf)
	for {
		n, err := retryEINTR(func() (int, error) { return syscall.Read(fd, buf[len(buf):cap(buf)]) })
		if err != nil {
			return buf, 0, err
		}
		if n == 0 {
			break
		}
		buf = buf[:len(buf)+n]
		if len(buf)-start == int(stt.Size) {
			break // all of it: spare the read that would return 0
		}
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 4096)
		}
	}
	return buf, stt.Mtim.Sec*1e9 + stt.Mtim.Nsec, nil
}

// stat returns the modification time of a file of the folder (0 when it
// is gone).
func (d *dirReader) stat(name string) int64 {
	var ust unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &ust, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0
	}
	return ust.Mtim.Sec*1e9 + ust.Mtim.Nsec
}

func retryEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != syscall.EINTR {
			return n, err
		}
	}
}

// readRepoFull lists and reads all of a repository's narinfos.
func readRepoFull(ctx context.Context, st *store.Store, repo string, o *BuildOptions) ([]pathRec, error) {
	ls, err := listNarInfos(ctx, st, repo, false, o.Workers)
	if err != nil {
		return nil, err
	}
	return readListed(ctx, st, repo, ls, o)
}

func readListed(ctx context.Context, st *store.Store, repo string, ls []listed, o *BuildOptions) ([]pathRec, error) {
	if len(ls) == 0 {
		return nil, nil
	}
	dr, err := openDirReader(st, repo)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	if dr != nil {
		defer dr.Close()
	}
	recs := make([]pathRec, len(ls))
	ok := make([]bool, len(ls))
	err = parallel(ctx, len(ls), o.Workers, func(i int) error {
		r, good, err := readNarInfo(ctx, st, dr, repo, ls[i], o)
		recs[i], ok[i] = r, good
		return err
	})
	if err != nil {
		return nil, err
	}
	out := recs[:0]
	for i := range recs {
		if ok[i] {
			out = append(out, recs[i])
		}
	}
	return slices.Clip(out), nil
}

// parallel runs fn(0..n-1) on up to workers goroutines and returns the
// first error.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	if n == 0 {
		return nil
	}
	workers = max(1, min(workers, n))
	var (
		next     atomic.Int64
		firstErr error
		errOnce  sync.Once
		failed   atomic.Bool
		wg       sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if i%256 == 0 && ctx.Err() != nil {
					errOnce.Do(func() { firstErr = ctx.Err() })
					failed.Store(true)
					return
				}
				if err := fn(i); err != nil {
					errOnce.Do(func() { firstErr = err })
					failed.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// ---------------------------------------------------------------------------
// Channels and packages.json metadata

// channelJSON is R/channels/NAME/channel.json (written by package ingest;
// read here with a struct of our own).
type channelJSON struct {
	Name      string `json:"name"`
	Latest    string `json:"latest"`
	Snapshots []struct {
		ID       string    `json:"id"`
		Flavor   string    `json:"flavor"`
		NarHash  string    `json:"narHash"`
		Uploaded time.Time `json:"uploaded"`
		Files    []string  `json:"files"`
	} `json:"snapshots"`
}

const (
	channelStorePaths = "store-paths.xz"
	channelPackages   = "packages.json.br"
)

// snapshotFileKey is R/channels/NAME/FLAVOR/ID/FILE.
func snapshotFileKey(repo, channel, flavor, id, file string) string {
	return repo + "/channels/" + channel + "/" + flavor + "/" + id + "/" + file
}

type snapshotData struct {
	key, repo, channel string
	info               SnapshotInfo
	hasPaths, hasPkgs  bool
	pairs              []string // "pname\tversion", sorted, unique; loaded lazily on updates
	loaded             bool
	fresh              bool // read from store-paths.xz in this run
}

type channelsData struct {
	infos       []ChannelInfo
	snaps       []*snapshotData // oldest upload first
	metaSources []string
}

func (c *channelsData) records() []snapshotRec {
	out := make([]snapshotRec, 0, len(c.snaps))
	for _, s := range c.snaps {
		out = append(out, snapshotRec{Key: s.key, Uploaded: s.info.Uploaded, Paths: s.info.Paths, HasPairs: s.hasPaths})
	}
	return out
}

// readChannels reads every repository's channel states. Snapshots that
// prev already recorded (same key and upload time) are not read again:
// their pairs load lazily from the catalog's snapshot files.
func readChannels(ctx context.Context, st *store.Store, repos []RepoInfo, prev *manifest, o *BuildOptions) (*channelsData, error) {
	known := map[string]snapshotRec{}
	if prev != nil {
		for _, s := range prev.Snapshots {
			known[s.Key] = s
		}
	}
	cd := &channelsData{}
	for _, r := range repos {
		prefix := r.Name + "/channels/"
		var names []string
		err := st.List(ctx, prefix, true, func(ob store.Object) error {
			if ob.Dir {
				names = append(names, strings.TrimSuffix(strings.TrimPrefix(ob.Key, prefix), "/"))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("index: list channels of %s: %w", r.Name, err)
		}
		sort.Strings(names)
		for _, name := range names {
			b, err := st.Get(ctx, prefix+name+"/channel.json")
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("index: %w", err)
			}
			var c channelJSON
			if err := json.Unmarshal(b, &c); err != nil {
				o.Logger.Warn("skipping corrupt channel state", "repo", r.Name, "channel", name, "err", err)
				continue
			}
			ci := ChannelInfo{Repo: r.Name, Name: name, Latest: c.Latest}
			var newest *snapshotData
			for _, s := range c.Snapshots {
				sd := &snapshotData{
					key: r.Name + "/" + name + "/" + s.ID, repo: r.Name, channel: name,
					info:     SnapshotInfo{ID: s.ID, Flavor: s.Flavor, NarHash: s.NarHash, Uploaded: s.Uploaded},
					hasPaths: slices.Contains(s.Files, channelStorePaths),
					hasPkgs:  slices.Contains(s.Files, channelPackages),
				}
				if k, ok := known[sd.key]; ok && k.Uploaded.Equal(s.Uploaded) {
					sd.info.Paths, sd.hasPaths = k.Paths, k.HasPairs
				} else if sd.hasPaths {
					key := snapshotFileKey(r.Name, name, s.Flavor, s.ID, channelStorePaths)
					pairs, n, err := readStorePaths(ctx, st, key)
					if err != nil {
						o.Logger.Warn("skipping unreadable store-paths.xz", "key", key, "err", err)
						sd.hasPaths = false
					} else {
						sd.pairs, sd.info.Paths, sd.loaded, sd.fresh = pairs, n, true, true
					}
				}
				cd.snaps = append(cd.snaps, sd)
				ci.Snapshots = append(ci.Snapshots, sd.info)
				if sd.hasPkgs && (newest == nil || !s.Uploaded.Before(newest.info.Uploaded)) {
					newest = sd
				}
			}
			slices.Reverse(ci.Snapshots) // newest upload first
			cd.infos = append(cd.infos, ci)
			if newest != nil {
				cd.metaSources = append(cd.metaSources, newest.key)
			}
		}
	}
	sort.SliceStable(cd.snaps, func(i, j int) bool {
		a, b := cd.snaps[i], cd.snaps[j]
		if !a.info.Uploaded.Equal(b.info.Uploaded) {
			return a.info.Uploaded.Before(b.info.Uploaded)
		}
		return a.key < b.key
	})
	bySnap := map[string]*snapshotData{}
	for _, s := range cd.snaps {
		bySnap[s.key] = s
	}
	sort.SliceStable(cd.metaSources, func(i, j int) bool {
		return bySnap[cd.metaSources[i]].info.Uploaded.Before(bySnap[cd.metaSources[j]].info.Uploaded)
	})
	return cd, nil
}

// readStorePaths reads a store-paths.xz and returns the (pname, version)
// pairs of its package paths, and the number of store paths it lists.
func readStorePaths(ctx context.Context, st *store.Store, key string) ([]string, int, error) {
	b, err := st.Get(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	r, err := compress.NewReaderSize(bytes.NewReader(b), "xz", int64(len(b)))
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, 1<<30))
	if err != nil {
		return nil, 0, err
	}
	set := map[string]struct{}{}
	n := 0
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		n++
		e, err := ParseEntry(line)
		if err != nil || e.Kind != KindPackage {
			continue
		}
		set[e.Package+"\t"+e.Version] = struct{}{}
	}
	pairs := make([]string, 0, len(set))
	for k := range set {
		pairs = append(pairs, k)
	}
	sort.Strings(pairs)
	return pairs, n, nil
}

// load reads the snapshot's pairs from the catalog when they were not read
// from store-paths.xz in this run.
func (s *snapshotData) load(ctx context.Context, st *store.Store) error {
	if s.loaded || !s.hasPaths {
		return nil
	}
	b, err := getZstd(ctx, st, snapshotPairsKey(s.repo, s.channel, s.info.ID))
	if err != nil {
		return err
	}
	s.pairs = splitLines(b)
	s.loaded = true
	return nil
}

// channelIndex answers which snapshots carried a package version.
type channelIndex struct {
	keys  []string
	pairs map[string][]int32
}

func newChannelIndex(ctx context.Context, st *store.Store, cd *channelsData) (*channelIndex, error) {
	ci := &channelIndex{pairs: map[string][]int32{}}
	for _, s := range cd.snaps {
		if !s.hasPaths {
			continue
		}
		if err := s.load(ctx, st); err != nil {
			return nil, fmt.Errorf("index: snapshot %s: %w", s.key, err)
		}
		idx := int32(len(ci.keys))
		ci.keys = append(ci.keys, s.key)
		for _, p := range s.pairs {
			ci.pairs[p] = append(ci.pairs[p], idx)
		}
	}
	return ci, nil
}

func (ci *channelIndex) lookup(name, version string) []string {
	if ci == nil || len(ci.keys) == 0 {
		return nil
	}
	idx := ci.pairs[name+"\t"+version]
	if len(idx) == 0 {
		return nil
	}
	out := make([]string, len(idx))
	for i, j := range idx {
		out[i] = ci.keys[j]
	}
	return out
}

// pkgMeta is the metadata joined from packages.json.br.
type pkgMeta struct {
	Description string `json:"d,omitempty"`
	Homepage    string `json:"h,omitempty"`
	License     string `json:"l,omitempty"`
	AttrPath    string `json:"a,omitempty"`
}

// readMeta reads the packages.json.br of the source snapshots, oldest
// first, so newer snapshots win.
func readMeta(ctx context.Context, st *store.Store, cd *channelsData, o *BuildOptions) (map[string]pkgMeta, error) {
	bySnap := map[string]*snapshotData{}
	for _, s := range cd.snaps {
		bySnap[s.key] = s
	}
	meta := map[string]pkgMeta{}
	for _, src := range cd.metaSources {
		s := bySnap[src]
		if s == nil {
			continue
		}
		key := snapshotFileKey(s.repo, s.channel, s.info.Flavor, s.info.ID, channelPackages)
		m, err := readPackagesJSON(ctx, st, key)
		if err != nil {
			o.Logger.Warn("skipping unreadable packages.json.br", "key", key, "err", err)
			continue
		}
		for name, pm := range m {
			meta[name] = pm
		}
	}
	return meta, nil
}

type packagesJSONEntry struct {
	Name    string `json:"name"`
	Pname   string `json:"pname"`
	Version string `json:"version"`
	Meta    struct {
		Description json.RawMessage `json:"description"`
		Homepage    json.RawMessage `json:"homepage"`
		License     json.RawMessage `json:"license"`
	} `json:"meta"`
}

// readPackagesJSON streams a brotli packages.json ({"packages": {attrPath:
// {name, pname, version, meta}}}) into metadata by package name: the pname
// SplitName gives for its "name", which is what store paths carry. Among
// attribute paths with the same name the shortest wins ("hello" over
// "pkgsStatic.hello").
func readPackagesJSON(ctx context.Context, st *store.Store, key string) (map[string]pkgMeta, error) {
	rd, err := st.NewReader(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	dec := json.NewDecoder(brotli.NewReader(rd))
	out := map[string]pkgMeta{}
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if t != "packages" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, err
			}
			continue
		}
		if err := expectDelim(dec, '{'); err != nil {
			return nil, err
		}
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return nil, err
			}
			attr, _ := t.(string)
			var e packagesJSONEntry
			if err := dec.Decode(&e); err != nil {
				return nil, fmt.Errorf("package %s: %w", attr, err)
			}
			name, _ := SplitName(e.Name)
			if name == "" {
				name = e.Pname
			}
			if name == "" {
				continue
			}
			if old, ok := out[name]; ok && !betterAttr(attr, old.AttrPath) {
				continue
			}
			out[name] = pkgMeta{
				Description: jsonText(e.Meta.Description),
				Homepage:    firstText(e.Meta.Homepage),
				License:     licenseText(e.Meta.License),
				AttrPath:    attr,
			}
		}
		if err := expectDelim(dec, '}'); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func betterAttr(a, b string) bool {
	da, db := strings.Count(a, "."), strings.Count(b, ".")
	if da != db {
		return da < db
	}
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t != d {
		return fmt.Errorf("packages.json: expected %q, got %v", d, t)
	}
	return nil
}

func jsonText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

func firstText(raw json.RawMessage) string {
	if s := jsonText(raw); s != "" {
		return s
	}
	var l []string
	if json.Unmarshal(raw, &l) == nil && len(l) > 0 {
		return l[0]
	}
	return ""
}

// licenseText renders nixpkgs' meta.license: a string, a license attrset
// ({spdxId, shortName, fullName}) or a list of either.
func licenseText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	one := func(raw json.RawMessage) string {
		if s := jsonText(raw); s != "" {
			return s
		}
		var l struct{ SpdxID, ShortName, FullName string }
		if json.Unmarshal(raw, &l) == nil {
			for _, s := range []string{l.SpdxID, l.ShortName, l.FullName} {
				if s != "" {
					return s
				}
			}
		}
		return ""
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		var parts []string
		for _, r := range list {
			if s := one(r); s != "" {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, ", ")
	}
	return one(raw)
}

// ---------------------------------------------------------------------------
// Assembly

// pathEntry is a store path of a package with its version.
type pathEntry struct {
	PathInfo
	version string
}

// assembleAll groups the merged paths of all repositories into packages.
func assembleAll(all []repoPaths, ci *channelIndex, meta map[string]pkgMeta) *Catalog {
	merged := mergeRepos(all)
	cat := &Catalog{}
	byPkg := map[string][]pathEntry{}
	for _, m := range merged {
		switch m.rec.kind {
		case 'd':
			cat.Stats.Derivations++
			continue
		case 's':
			cat.Stats.Sources++
			continue
		case 'o':
			cat.Stats.Other++
			continue
		}
		e, err := ParseEntry(m.rec.sp)
		if err != nil {
			continue
		}
		cat.Stats.Paths++
		byPkg[e.Package] = append(byPkg[e.Package], pathEntry{
			PathInfo: PathInfo{StorePath: m.rec.sp, Output: e.Output, NarSize: m.rec.narSize, FileSize: m.rec.fileSize,
				Uploaded: time.Unix(0, m.rec.mod).UTC(), Repos: m.repos},
			version: e.Version,
		})
	}
	names := make([]string, 0, len(byPkg))
	for n := range byPkg {
		names = append(names, n)
	}
	sort.Strings(names)
	merged = nil
	cat.Packages = make([]Package, len(names))
	for i, n := range names {
		pm, ok := meta[n]
		cat.Packages[i] = assemble(n, byPkg[n], ci.lookup, metaFunc(pm, ok))
		delete(byPkg, n) // its paths now live in the package only
		cat.Stats.Versions += len(cat.Packages[i].Versions)
	}
	cat.Stats.Packages = len(names)
	return cat
}

func metaFunc(pm pkgMeta, ok bool) func(*Package) {
	return func(p *Package) {
		if ok {
			p.Description, p.Homepage, p.License, p.AttrPath = pm.Description, pm.Homepage, pm.License, pm.AttrPath
		}
	}
}

type mergedPath struct {
	rec   *pathRec // the earliest upload
	repos []string
}

// mergeRepos merges the repositories' hash-sorted narinfos into one entry
// per store path.
func mergeRepos(all []repoPaths) []mergedPath {
	single := make([][]string, len(all)) // shared one-repo slices
	total := 0
	for i := range all {
		single[i] = []string{all[i].name}
		total += len(all[i].recs)
	}
	out := make([]mergedPath, 0, total)
	pos := make([]int, len(all))
	for {
		best := ""
		for i := range all {
			if pos[i] < len(all[i].recs) {
				if h := all[i].recs[pos[i]].hash(); best == "" || h < best {
					best = h
				}
			}
		}
		if best == "" {
			return out
		}
		var m mergedPath
		n := 0
		for i := range all {
			if pos[i] < len(all[i].recs) && all[i].recs[pos[i]].hash() == best {
				r := &all[i].recs[pos[i]]
				if m.rec == nil || r.mod < m.rec.mod {
					m.rec = r
				}
				n++
				if n == 1 {
					m.repos = single[i]
				} else {
					m.repos = append(slices.Clip(m.repos), all[i].name)
				}
				pos[i]++
			}
		}
		out = append(out, m)
	}
}

// assemble builds a package from its store paths: versions highest first by
// CompareVersions, paths by output then store path, ambiguous versions
// flagged, channels and metadata joined.
func assemble(name string, ps []pathEntry, channels func(name, version string) []string, meta func(*Package)) Package {
	sort.Slice(ps, func(i, j int) bool {
		a, b := &ps[i], &ps[j]
		if a.version != b.version {
			return a.version < b.version
		}
		if a.Output != b.Output {
			return a.Output < b.Output
		}
		return a.StorePath < b.StorePath
	})
	p := Package{Name: name}
	for i := 0; i < len(ps); {
		j := i
		for j < len(ps) && ps[j].version == ps[i].version {
			j++
		}
		v := Version{Version: ps[i].version, Paths: make([]PathInfo, 0, j-i)}
		for k := i; k < j; k++ {
			v.Paths = append(v.Paths, ps[k].PathInfo)
			v.Repos = unionSorted(v.Repos, ps[k].Repos)
			if k > i && ps[k].Output == ps[k-1].Output {
				v.Ambiguous = true // several builds of one output
			}
		}
		v.Channels = channels(name, v.Version)
		p.Repos = unionSorted(p.Repos, v.Repos)
		p.Versions = append(p.Versions, v)
		i = j
	}
	sort.SliceStable(p.Versions, func(i, j int) bool {
		if c := CompareVersions(p.Versions[i].Version, p.Versions[j].Version); c != 0 {
			return c > 0
		}
		return p.Versions[i].Version < p.Versions[j].Version
	})
	for i := 1; i < len(p.Versions); i++ {
		if CompareVersions(p.Versions[i-1].Version, p.Versions[i].Version) == 0 {
			p.Versions[i-1].Ambiguous, p.Versions[i].Ambiguous = true, true
		}
	}
	if len(p.Versions) > 0 {
		p.Latest = p.Versions[0].Version
	}
	meta(&p)
	return p
}

// unionSorted merges sorted b into sorted a (a may be reused when b adds
// nothing; a is never modified in place).
func unionSorted(a, b []string) []string {
	if len(a) == 0 {
		return b
	}
	add := false
	for _, s := range b {
		if _, found := slices.BinarySearch(a, s); !found {
			add = true
			break
		}
	}
	if !add {
		return a
	}
	out := slices.Clone(a)
	for _, s := range b {
		if i, found := slices.BinarySearch(out, s); !found {
			out = slices.Insert(out, i, s)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Persistence

var (
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(4<<30))
)

func putZstd(ctx context.Context, st *store.Store, key string, raw []byte) error {
	return st.Put(ctx, key, zenc.EncodeAll(raw, make([]byte, 0, len(raw)/4+64)), &store.WriteOptions{ContentType: "application/zstd"})
}

func getZstd(ctx context.Context, st *store.Store, key string) ([]byte, error) {
	b, err := st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	out, err := zdec.DecodeAll(b, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return out, nil
}

func splitLines(b []byte) []string {
	s := string(b)
	out := make([]string, 0, strings.Count(s, "\n"))
	for line := range strings.Lines(s) {
		if line = strings.TrimSuffix(line, "\n"); line != "" {
			out = append(out, line)
		}
	}
	return out
}

func readManifest(ctx context.Context, st *store.Store) (*manifest, error) {
	b, err := st.Get(ctx, ManifestKey)
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("index: %s: %w", ManifestKey, err)
	}
	if m.Format != catalogFormat {
		return nil, fmt.Errorf("index: %s: format %d, want %d", ManifestKey, m.Format, catalogFormat)
	}
	if len(m.ShardStats) != PackageShards {
		m.ShardStats = make([]shardStat, PackageShards)
	}
	return &m, nil
}

func writeManifest(ctx context.Context, st *store.Store, m *manifest) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return st.Put(ctx, ManifestKey, b, &store.WriteOptions{ContentType: "application/json"})
}

// encodeShard encodes a package shard (packages sorted by name).
func encodeShard(pkgs []Package) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(256 * len(pkgs))
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if pkgs == nil {
		pkgs = []Package{}
	}
	if err := enc.Encode(pkgs); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func readShard(ctx context.Context, st *store.Store, i int) ([]Package, error) {
	b, err := getZstd(ctx, st, PackageShardKey(i))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	var pkgs []Package
	if err := json.Unmarshal(b, &pkgs); err != nil {
		return nil, fmt.Errorf("index: %s: %w", PackageShardKey(i), err)
	}
	return pkgs, nil
}

func writeShard(ctx context.Context, st *store.Store, i int, pkgs []Package) error {
	b, err := encodeShard(pkgs)
	if err != nil {
		return err
	}
	return putZstd(ctx, st, PackageShardKey(i), b)
}

// encodeState encodes state lines "<store path> narSize fileSize mod
// kind" (tab-separated) for records sorted by hash.
func encodeState(recs []pathRec) []byte {
	b := make([]byte, 0, len(recs)*110)
	for i := range recs {
		r := &recs[i]
		b = append(b, r.sp...)
		b = append(b, '\t')
		b = strconv.AppendUint(b, r.narSize, 10)
		b = append(b, '\t')
		b = strconv.AppendUint(b, r.fileSize, 10)
		b = append(b, '\t')
		b = strconv.AppendInt(b, r.mod, 10)
		b = append(b, '\t', r.kind, '\n')
	}
	return b
}

func decodeState(b []byte) ([]pathRec, error) {
	s := string(b)
	out := make([]pathRec, 0, strings.Count(s, "\n"))
	for line := range strings.Lines(s) {
		line = strings.TrimSuffix(line, "\n")
		var f [5]string
		rest := line
		for i := 0; i < 4; i++ {
			var ok bool
			f[i], rest, ok = strings.Cut(rest, "\t")
			if !ok {
				return nil, fmt.Errorf("bad state line %q", line)
			}
		}
		f[4] = rest
		var (
			r              pathRec
			err1, err2, e3 error
		)
		if len(f[0]) <= spHash+nix.HashPartLen+1 || !strings.HasPrefix(f[0], nix.StoreDir+"/") || len(f[4]) != 1 {
			return nil, fmt.Errorf("bad state line %q", line)
		}
		r.sp = f[0] // a substring of the shard: no allocation per path
		r.narSize, err1 = strconv.ParseUint(f[1], 10, 64)
		r.fileSize, err2 = strconv.ParseUint(f[2], 10, 64)
		r.mod, e3 = strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil || e3 != nil {
			return nil, fmt.Errorf("bad state line %q", line)
		}
		r.kind = f[4][0]
		out = append(out, r)
	}
	return out, nil
}

// stateShards splits hash-sorted records by the first hash character.
func stateShards(recs []pathRec) map[byte][]pathRec {
	out := map[byte][]pathRec{}
	for i := 0; i < len(recs); {
		c := recs[i].sp[spHash]
		j := i
		for j < len(recs) && recs[j].sp[spHash] == c {
			j++
		}
		out[c] = recs[i:j]
		i = j
	}
	return out
}

// persistFull writes a complete catalog: every package shard, every state
// shard of every repository, the snapshot pairs read in this run and the
// metadata, then the manifest. State of repositories no longer cataloged
// is deleted.
func persistFull(ctx context.Context, st *store.Store, m *manifest, pkgs []Package, all []repoPaths, cd *channelsData, meta map[string]pkgMeta, prev *manifest) error {
	pending := *m
	pending.Pending = true
	if prev != nil {
		pending.Generation = prev.Generation
	}
	if err := writeManifest(ctx, st, &pending); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	byShard := make([][]Package, PackageShards)
	for _, p := range pkgs {
		s := ShardOf(p.Name)
		byShard[s] = append(byShard[s], p)
		m.ShardStats[s].Packages++
		m.ShardStats[s].Versions += len(p.Versions)
	}
	type job struct {
		key string
		fn  func() error
	}
	var jobs []job
	for i := range PackageShards {
		jobs = append(jobs, job{PackageShardKey(i), func() error { return writeShard(ctx, st, i, byShard[i]) }})
	}
	for _, rp := range all {
		shards := stateShards(rp.recs)
		for c := range []byte(nix32Alphabet) {
			ch := nix32Alphabet[c]
			recs := shards[ch]
			key := stateShardKey(rp.name, ch)
			jobs = append(jobs, job{key, func() error { return putZstd(ctx, st, key, encodeState(recs)) }})
		}
	}
	for _, s := range cd.snaps {
		if s.fresh {
			key := snapshotPairsKey(s.repo, s.channel, s.info.ID)
			data := []byte(strings.Join(s.pairs, "\n") + "\n")
			jobs = append(jobs, job{key, func() error { return putZstd(ctx, st, key, data) }})
		}
	}
	mb, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	jobs = append(jobs, job{MetaKey, func() error { return putZstd(ctx, st, MetaKey, mb) }})
	err = parallel(ctx, len(jobs), max(4, runtime.GOMAXPROCS(0)), func(i int) error {
		if err := jobs[i].fn(); err != nil {
			return fmt.Errorf("index: write %s: %w", jobs[i].key, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := writeManifest(ctx, st, m); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	// Forget what is no longer cataloged.
	keep := map[string]bool{}
	for _, rp := range all {
		keep[rp.name] = true
	}
	if prev != nil {
		for _, r := range prev.Repos {
			if !keep[r.Name] {
				deletePrefix(ctx, st, CatalogPrefix+"state/"+r.Name+"/")
			}
		}
		current := map[string]bool{}
		for _, s := range cd.snaps {
			current[s.key] = true
		}
		for _, s := range prev.Snapshots {
			if !current[s.Key] && s.HasPairs {
				parts := strings.SplitN(s.Key, "/", 3)
				_ = st.Delete(ctx, snapshotPairsKey(parts[0], parts[1], parts[2]))
			}
		}
	}
	return nil
}

func deletePrefix(ctx context.Context, st *store.Store, prefix string) {
	var keys []string
	_ = st.List(ctx, prefix, false, func(ob store.Object) error {
		if !ob.Dir {
			keys = append(keys, ob.Key)
		}
		return nil
	})
	for _, k := range keys {
		_ = st.Delete(ctx, k)
	}
}

// ---------------------------------------------------------------------------
// Reading the persisted catalog

// ErrNoCatalog is returned when the bucket has no catalog yet.
var ErrNoCatalog = errors.New("no package catalog in the bucket (run nixrepo index)")

// Load reads the whole persisted catalog from the bucket.
func Load(ctx context.Context, st *store.Store) (*Catalog, error) {
	m, err := readManifest(ctx, st)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoCatalog
	}
	if err != nil {
		return nil, err
	}
	shards := make([][]Package, PackageShards)
	err = parallel(ctx, PackageShards, max(4, runtime.GOMAXPROCS(0)), func(i int) error {
		p, err := readShard(ctx, st, i)
		shards[i] = p
		return err
	})
	if err != nil {
		return nil, err
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
	return cat, nil
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
