package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nixrepo/nixrepo/internal/work"

	"github.com/nixrepo/nixrepo/internal/store"
)

// UpdateReport says what Update did.
type UpdateReport struct {
	// Full is true when a full Build ran instead (no usable catalog in the
	// bucket, or an interrupted earlier update).
	Full       bool  `json:"full"`
	Generation int64 `json:"generation"`
	// Added and Removed count narinfos (per repository).
	Added   int `json:"added"`
	Removed int `json:"removed"`
	// Snapshots counts channel snapshots added or removed.
	Snapshots int `json:"snapshots"`
	// Changed are the packages recomputed, Deleted the packages gone.
	Changed []string `json:"changed"`
	Deleted []string `json:"deleted"`
	// IndexRebuilt: the search index was rebuilt from the bucket (missing,
	// unreadable or behind) rather than updated.
	IndexRebuilt bool  `json:"indexRebuilt"`
	Stats        Stats `json:"stats"`
	// Duration is the wall time; Seconds the same in seconds (JSON).
	Duration time.Duration `json:"-"`
	Seconds  float64       `json:"seconds"`

	changed []Package // (for the search index)
}

// Finish sets Duration and Seconds from start and makes the lists non-nil.
func (r *UpdateReport) Finish(start time.Time) {
	r.Duration = time.Since(start)
	r.Seconds = r.Duration.Seconds()
	if r.Changed == nil {
		r.Changed = []string{}
	}
	if r.Deleted == nil {
		r.Deleted = []string{}
	}
}

// Update brings the catalog in the bucket (and the search index, with
// IndexDir) up to date incrementally: it lists the repositories' narinfo
// keys, compares them with the state the last build or update left, reads
// only the new narinfos, and recomputes and re-indexes only the packages
// whose paths, channel snapshots or metadata changed. Without a catalog (or
// after an interrupted update) it runs Build. Another process's update
// running meanwhile is waited for, and an update that another finished
// first is redone from the catalog it left (claim.go).
func Update(ctx context.Context, st *store.Store, repos []RepoInfo, opts *BuildOptions) (*UpdateReport, error) {
	o := opts.withDefaults(st)
	start := time.Now()
	repos = sortedRepos(repos)
	var w waiter
	for attempt := 1; ; attempt++ {
		base, m, err := readManifestBytes(ctx, st)
		if err != nil && base == nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("index: %w", err)
		}
		if err == nil && m.Pending && !w.stale(m) {
			if err := w.wait(ctx, st, base, o.Logger); err != nil {
				return nil, err
			}
			continue
		}
		var rep *UpdateReport
		if err != nil || m.Pending {
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				o.Logger.Warn("rebuilding the catalog", "err", err)
			}
			var cat *Catalog
			var gen int64
			if cat, gen, err = build(ctx, st, repos, &o, base, m); err == nil {
				rep = fullReport(cat, gen, &o)
			}
		} else {
			u := &updater{ctx: ctx, st: st, o: &o, m: m, base: base, rep: &UpdateReport{Generation: m.Generation}, listedAt: time.Now()}
			err = u.run(repos)
			rep = u.rep
		}
		if retryable(err) && attempt < maxAttempts {
			o.Logger.Debug("the catalog changed during the update: starting again", "err", err)
			continue
		}
		if err != nil {
			return nil, err
		}
		rep.Finish(start)
		return rep, nil
	}
}

type updater struct {
	ctx context.Context
	st  *store.Store
	o   *BuildOptions
	m   *manifest
	rep *UpdateReport
	// base is the manifest's bytes m was read from; h the claim, once
	// taken.
	base []byte
	h    *holder

	// per repository, old and new state, sorted by hash
	names    []string
	oldState map[string][]pathRec
	newState map[string][]pathRec
	dirty    map[string]map[byte]bool // repo → state shards to rewrite
	listedAt time.Time                // before the narinfos were listed

	adds    map[string][]repoRec // package → paths added (repo, rec)
	removes map[string][]repoRec // package → paths removed
}

type repoRec struct {
	repo            string
	rec             pathRec
	version, output string // of the parsed store path
}

func (u *updater) run(repos []RepoInfo) error {
	ctx, st := u.ctx, u.st
	u.oldState, u.newState = map[string][]pathRec{}, map[string][]pathRec{}
	u.dirty = map[string]map[byte]bool{}
	u.adds, u.removes = map[string][]repoRec{}, map[string][]repoRec{}

	// Repositories now and before (a repository dropped from the
	// configuration loses all its paths).
	names := map[string]bool{}
	for _, r := range repos {
		names[r.Name] = true
	}
	for _, r := range u.m.Repos {
		names[r.Name] = true
	}
	u.names = slices.Sorted(maps.Keys(names))
	current := map[string]bool{}
	for _, r := range repos {
		current[r.Name] = true
	}
	for _, name := range u.names {
		if err := u.diffRepo(name, current[name]); err != nil {
			return err
		}
	}

	// Channels and metadata.
	cd, err := readChannels(ctx, st, repos, u.m, u.o, nil)
	if err != nil {
		return err
	}
	affected := map[string]bool{}
	for p := range u.adds {
		affected[p] = true
	}
	for p := range u.removes {
		affected[p] = true
	}
	chChanged, err := u.channelChanges(cd, affected)
	if err != nil {
		return err
	}
	metaChanged := !slices.Equal(cd.metaSources(), u.m.MetaSources)
	var newMeta, oldMeta map[string]pkgMeta
	if metaChanged {
		newMeta = readMeta(ctx, st, cd, u.o)
		oldMeta, _ = u.loadMeta()
		for n, pm := range newMeta {
			if oldMeta[n] != pm {
				affected[n] = true
			}
		}
		for n := range oldMeta {
			if _, ok := newMeta[n]; !ok {
				affected[n] = true
			}
		}
	}

	repoInfos := make([]RepoInfo, len(repos))
	copy(repoInfos, repos)
	for i := range repoInfos {
		repoInfos[i].Paths = len(u.newState[repoInfos[i].Name])
	}
	if len(affected) == 0 && len(u.dirty) == 0 && !chChanged && !metaChanged {
		// Nothing new in the catalog; keep descriptions and the like current.
		if !reflect.DeepEqual(repoInfos, u.m.Repos) || !reflect.DeepEqual(cd.infos, u.m.Channels) {
			u.m.Repos, u.m.Channels = repoInfos, cd.infos
			b, err := marshalManifest(u.m)
			if err != nil {
				return err
			}
			err = st.Update(ctx, store.CatalogManifest, manifestOpts, func(old []byte) ([]byte, error) {
				if !bytes.Equal(old, u.base) {
					return nil, errMoved
				}
				return b, nil
			})
			if err != nil {
				return err
			}
		}
		u.rep.Stats = u.m.Stats
		return u.syncIndex(u.m.Generation, nil, nil)
	}

	stats := u.pathStats()
	// Take the catalog's claim (marking it as being updated), then
	// rewrite what changed.
	h, err := acquire(ctx, st, u.base, *u.m, u.o.Logger)
	if err != nil {
		return err
	}
	u.h, u.ctx = h, h.ctx
	if err := u.apply(cd, affected, chChanged, metaChanged, newMeta, stats, repoInfos); err != nil {
		return h.release(h.err(err))
	}
	return u.syncIndex(u.m.Generation-1, u.rep.changed, u.rep.Deleted)
}

// apply recomputes the affected packages and writes them, the state and
// the manifest, under the claim.
func (u *updater) apply(cd *channelsData, affected map[string]bool, chChanged, metaChanged bool, newMeta map[string]pkgMeta,
	stats Stats, repoInfos []RepoInfo) error {
	ctx, st := u.ctx, u.st
	var err error
	var ci *channelIndex
	chans := func(name, version string) []string { return nil }
	if chChanged || len(cd.snaps) > 0 {
		// Versions new to the catalog need the snapshots' pairs; load
		// them once, lazily.
		loaded := false
		chans = func(name, version string) []string {
			if !loaded {
				loaded = true
				ci, err = newChannelIndex(ctx, st, cd)
				if err != nil {
					u.o.Logger.Warn("channel snapshots unreadable", "err", err)
				}
			}
			return ci.lookup(name, version)
		}
	}
	metaLoaded := metaChanged
	metaFor := func(name string, old *Package) func(*Package) {
		if metaChanged || old == nil {
			if !metaLoaded {
				metaLoaded = true
				newMeta, _ = u.loadMeta()
			}
			pm, ok := newMeta[name]
			return metaFunc(pm, ok)
		}
		return func(p *Package) {
			p.Description, p.Homepage, p.License, p.AttrPath = old.Description, old.Homepage, old.License, old.AttrPath
		}
	}

	changed, deleted, err := u.applyPackages(affected, chChanged, chans, metaFor)
	if err != nil {
		return err
	}
	if err := u.writeState(cd, newMeta, metaChanged); err != nil {
		return err
	}
	for _, s := range u.m.ShardStats {
		stats.Packages += s.Packages
		stats.Versions += s.Versions
	}
	prevGen := u.m.Generation
	for i := range u.m.ShardStats {
		if u.m.ShardStats[i].Gen == 0 {
			// Written by a version that did not record it: at the
			// latest by the previous generation.
			u.m.ShardStats[i].Gen = prevGen
		}
	}
	u.m.Generation++
	u.m.Generated = u.o.Now().UTC()
	u.m.Repos, u.m.Channels, u.m.Stats = repoInfos, cd.infos, stats
	u.m.Snapshots, u.m.MetaSources = cd.records(), cd.metaSources()
	if err := u.h.commit(u.m); err != nil {
		return err
	}
	u.rep.Generation, u.rep.Stats = u.m.Generation, stats
	for _, p := range changed {
		u.rep.Changed = append(u.rep.Changed, p.Name)
	}
	u.rep.changed = changed
	u.rep.Deleted = deleted
	return nil
}

// syncIndex brings the search index to the catalog's generation: it
// applies this update's changes to an index at the generation the update
// started from, catches up an index that is further behind (followIndex),
// and rebuilds it from the bucket when neither works.
func (u *updater) syncIndex(from int64, changed []Package, deleted []string) error {
	dir := u.o.IndexDir
	if dir == "" {
		return nil
	}
	rebuilt, err := syncIndex(context.WithoutCancel(u.ctx), u.st, dir, u.m, from, changed, deleted, u.o)
	u.rep.IndexRebuilt = rebuilt
	return err
}

// syncIndex brings the search index in dir to the generation of m, the
// catalog's committed manifest; changed and deleted are the packages an
// update from generation from changed (none when from is m's generation).
func syncIndex(ctx context.Context, st *store.Store, dir string, m *manifest, from int64, changed []Package, deleted []string,
	o *BuildOptions) (rebuilt bool, err error) {
	to := m.Generation
	g, gerr := IndexGeneration(dir)
	if gerr == nil && g == to {
		return false, nil
	}
	if gerr == nil && g == from && from != to {
		err := updateIndex(dir, from, to, changed, deleted)
		if err == nil {
			return false, nil
		}
		if !errors.Is(err, errIndexStale) && !errors.Is(err, ErrNoIndex) {
			o.Logger.Warn("rebuilding the search index", "err", err)
		}
	} else if gerr == nil && g < to {
		err := followIndex(ctx, st, dir, m, g, o)
		if err == nil {
			return false, nil
		}
		if !errors.Is(err, errIndexStale) && !errors.Is(err, ErrNoIndex) {
			o.Logger.Warn("rebuilding the search index", "err", err)
		}
	}
	return true, RebuildIndex(ctx, st, dir, o.IndexShards)
}

// diffRepo compares a repository's listing with its recorded state and
// reads the narinfos that are new (or were replaced).
func (u *updater) diffRepo(repo string, present bool) error {
	ctx, st := u.ctx, u.st
	old, err := u.loadState(repo)
	if err != nil {
		return err
	}
	u.oldState[repo] = old
	// Narinfos are write-once (docs/layout.md): a hash already recorded
	// is the same narinfo, so a folder bucket's listing need not stat
	// every file. (Object stores list modification times for free; a
	// narinfo replaced in place there is read again.)
	var ls []listed
	if present {
		if ls, err = listNarInfos(ctx, st, repo, false, u.o.Workers); err != nil {
			return err
		}
	}
	var toRead []listed
	var removed []pathRec
	i, j := 0, 0
	for i < len(old) || j < len(ls) {
		switch {
		case j == len(ls) || i < len(old) && old[i].hash() < ls[j].hash:
			removed = append(removed, old[i])
			i++
		case i == len(old) || ls[j].hash < old[i].hash():
			toRead = append(toRead, ls[j])
			j++
		default:
			if ls[j].mod != 0 && ls[j].mod != old[i].mod {
				removed = append(removed, old[i])
				toRead = append(toRead, ls[j])
			}
			i++
			j++
		}
	}
	var added []pathRec
	if len(toRead) > journalThreshold {
		// Many new paths: their journal notes spare reading each narinfo.
		jr, _, _ := readJournal(ctx, st, repo, u.o)
		added, _, err = readWithJournal(ctx, st, repo, toRead, jr, u.o)
	} else {
		added, err = readListed(ctx, st, repo, toRead, u.o)
	}
	if err != nil {
		return err
	}
	if len(added) == 0 && len(removed) == 0 {
		u.newState[repo] = old
		u.compactJournal(repo, old)
		return nil
	}
	// New state: old minus removed plus added, sorted by hash.
	gone := map[string]bool{}
	for _, r := range removed {
		gone[r.hash()] = true
	}
	ns := make([]pathRec, 0, len(old)+len(added))
	for _, r := range old {
		if !gone[r.hash()] {
			ns = append(ns, r)
		}
	}
	ns = append(ns, added...)
	sort.Slice(ns, func(a, b int) bool { return ns[a].hash() < ns[b].hash() })
	// A replaced narinfo with the same content is no change at all.
	u.newState[repo] = ns
	u.compactJournal(repo, ns)
	d := map[byte]bool{}
	for _, r := range removed {
		d[r.sp[spHash]] = true
		u.note(u.removes, repo, r)
	}
	for _, r := range added {
		d[r.sp[spHash]] = true
		u.note(u.adds, repo, r)
	}
	u.dirty[repo] = d
	u.rep.Added += len(added)
	u.rep.Removed += len(removed)
	return nil
}

// compactJournal replaces a repository's journal with one object holding
// its current paths once writers have left more than journalCompactAt
// objects (one per ingest run or server flush), so the journal stays a few
// objects however long the server runs between full builds.
func (u *updater) compactJournal(repo string, recs []pathRec) {
	keys, err := u.st.JournalObjects(u.ctx, repo)
	if err != nil || len(keys) <= journalCompactAt {
		return
	}
	keys = store.JournalWrittenBefore(keys, u.listedAt)
	if err := u.st.CompactJournal(u.ctx, repo, journalRecords(recs), keys); err != nil {
		u.o.Logger.Warn("could not compact the path journal", "repo", repo, "err", err)
	}
}

// journalCompactAt is the number of journal objects above which an update
// compacts the journal.
const journalCompactAt = 32

// journalThreshold is the number of new narinfos from which an update
// reads the path journal rather than each narinfo.
const journalThreshold = 64

func (u *updater) note(m map[string][]repoRec, repo string, r pathRec) {
	if r.kind != 'p' {
		return
	}
	e, err := ParseEntry(r.sp)
	if err != nil {
		return
	}
	m[e.Package] = append(m[e.Package], repoRec{repo, r, e.Version, e.Output})
}

func (u *updater) loadState(repo string) ([]pathRec, error) {
	known := false
	for _, r := range u.m.Repos {
		known = known || r.Name == repo
	}
	if !known {
		return nil, nil
	}
	parts := make([][]pathRec, len(nix32Alphabet))
	err := work.Each(u.ctx, max(4, runtime.GOMAXPROCS(0)), len(nix32Alphabet), func(i int) error {
		b, err := getCompressed(u.ctx, u.st, store.CatalogState(repo, nix32Alphabet[i]))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("index: %w", err)
		}
		recs, err := decodeState(b)
		if err != nil {
			return fmt.Errorf("index: %s: %w", store.CatalogState(repo, nix32Alphabet[i]), err)
		}
		parts[i] = recs
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []pathRec
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, nil
}

func (u *updater) loadMeta() (map[string]pkgMeta, error) {
	meta := map[string]pkgMeta{}
	b, err := getCompressed(u.ctx, u.st, store.CatalogMeta)
	if errors.Is(err, store.ErrNotFound) {
		return meta, nil
	}
	if err != nil {
		return meta, err
	}
	return meta, json.Unmarshal(b, &meta)
}

// channelChanges finds snapshots added or removed since the manifest and
// marks the packages they carried as affected.
func (u *updater) channelChanges(cd *channelsData, affected map[string]bool) (bool, error) {
	now := map[string]*snapshotData{}
	for _, s := range cd.snaps {
		now[s.key] = s
	}
	changed := false
	mark := func(pairs []string) {
		for _, p := range pairs {
			name, _, _ := strings.Cut(p, "\t")
			affected[name] = true
		}
	}
	for _, s := range cd.snaps {
		if s.fresh {
			changed = true
			u.rep.Snapshots++
			mark(s.pairs)
		}
	}
	for _, old := range u.m.Snapshots {
		s, ok := now[old.Key]
		if ok && !s.fresh {
			continue
		}
		changed = true
		if !ok {
			u.rep.Snapshots++
		}
		if old.HasPairs {
			b, err := getCompressed(u.ctx, u.st, store.CatalogSnapshotPairs(old.Key))
			if err == nil {
				mark(splitLines(b))
			} else if !errors.Is(err, store.ErrNotFound) {
				return false, fmt.Errorf("index: %w", err)
			}
		}
	}
	// Snapshot order decides Version.Channels order; a changed set of
	// keys (not only content) must recompute too — covered above.
	return changed, nil
}

// pathStats counts distinct store paths by kind across the new states.
func (u *updater) pathStats() Stats {
	all := make([]repoPaths, 0, len(u.names))
	for _, n := range u.names {
		all = append(all, repoPaths{name: n, recs: u.newState[n]})
	}
	var s Stats
	for m := range mergedPaths(all) {
		s.count(m.rec.kind)
	}
	return s
}

// applyPackages recomputes the affected packages from their shard, the
// path additions and removals, and writes the changed shards.
func (u *updater) applyPackages(affected map[string]bool, chChanged bool, chans func(string, string) []string,
	metaFor func(string, *Package) func(*Package)) ([]Package, []string, error) {
	byShard := map[int][]string{}
	for n := range affected {
		s := ShardOf(n)
		byShard[s] = append(byShard[s], n)
	}
	shardIDs := make([]int, 0, len(byShard))
	for s := range byShard {
		shardIDs = append(shardIDs, s)
	}
	sort.Ints(shardIDs)
	loaded := make([][]Package, len(shardIDs))
	err := work.Each(u.ctx, max(4, runtime.GOMAXPROCS(0)), len(shardIDs), func(i int) error {
		p, err := readShard(u.ctx, u.st, shardIDs[i])
		loaded[i] = p
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	var changed []Package
	var deleted []string
	writes := map[int][]Package{}
	for k, sid := range shardIDs {
		pkgs := loaded[k]
		byName := make(map[string]int, len(pkgs))
		for i := range pkgs {
			byName[pkgs[i].Name] = i
		}
		names := byShard[sid]
		sort.Strings(names)
		touched := false
		for _, name := range names {
			var old *Package
			if i, ok := byName[name]; ok {
				old = &pkgs[i]
			}
			np, ok := u.recompute(name, old, chChanged, chans, metaFor(name, old))
			switch {
			case !ok && old == nil:
				continue
			case !ok:
				deleted = append(deleted, name)
				old.Name = "" // tombstone
				touched = true
			case old != nil && reflect.DeepEqual(*old, np):
				continue
			default:
				if old != nil {
					*old = np
				} else {
					pkgs = append(pkgs, np)
					byName[name] = len(pkgs) - 1
				}
				changed = append(changed, np)
				touched = true
			}
		}
		if !touched {
			continue
		}
		out := pkgs[:0:0]
		for _, p := range pkgs {
			if p.Name != "" {
				out = append(out, p)
			}
		}
		sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
		writes[sid] = out
		var ss shardStat
		for _, p := range out {
			ss.Packages++
			ss.Versions += len(p.Versions)
		}
		ss.Gen = u.m.Generation + 1
		u.m.ShardStats[sid] = ss
	}
	ids := make([]int, 0, len(writes))
	for s := range writes {
		ids = append(ids, s)
	}
	u.h.wrote = u.h.wrote || len(ids) > 0
	err = work.Each(u.ctx, max(4, runtime.GOMAXPROCS(0)), len(ids), func(i int) error {
		if err := writeShard(u.ctx, u.st, ids[i], writes[ids[i]]); err != nil {
			return fmt.Errorf("index: write %s: %w", store.CatalogPackageShard(ids[i]), err)
		}
		return nil
	})
	sort.Slice(changed, func(a, b int) bool { return changed[a].Name < changed[b].Name })
	sort.Strings(deleted)
	return changed, deleted, err
}

// recompute applies the package's path changes to its previous state and
// reassembles it; ok is false when no path is left.
func (u *updater) recompute(name string, old *Package, chChanged bool, chans func(string, string) []string, meta func(*Package)) (Package, bool) {
	var ps []pathEntry
	oldChans := map[string][]string{}
	if old != nil {
		for _, v := range old.Versions {
			oldChans[v.Version] = v.Channels
			for _, p := range v.Paths {
				ps = append(ps, pathEntry{PathInfo: p, version: v.Version})
			}
		}
	}
	find := func(sp string) int {
		for i := range ps {
			if ps[i].StorePath == sp {
				return i
			}
		}
		return -1
	}
	for _, rr := range u.removes[name] {
		i := find(rr.rec.sp)
		if i < 0 {
			continue
		}
		ps[i].Repos = slices.DeleteFunc(slices.Clone(ps[i].Repos), func(r string) bool { return r == rr.repo })
		if len(ps[i].Repos) == 0 {
			ps = slices.Delete(ps, i, i+1)
		}
	}
	for _, ra := range u.adds[name] {
		up := time.Unix(0, ra.rec.mod).UTC()
		if i := find(ra.rec.sp); i >= 0 {
			ps[i].Repos = unionSorted(ps[i].Repos, []string{ra.repo})
			if up.Before(ps[i].Uploaded) {
				ps[i].Uploaded, ps[i].NarSize, ps[i].FileSize = up, ra.rec.narSize, ra.rec.fileSize
			}
			continue
		}
		ps = append(ps, pathEntry{
			PathInfo: PathInfo{StorePath: ra.rec.sp, Output: ra.output, NarSize: ra.rec.narSize, FileSize: ra.rec.fileSize,
				Uploaded: up, Repos: []string{ra.repo}},
			version: ra.version,
		})
	}
	if len(ps) == 0 {
		return Package{}, false
	}
	cf := chans
	if !chChanged {
		cf = func(n, v string) []string {
			if c, ok := oldChans[v]; ok {
				return c
			}
			return chans(n, v)
		}
	}
	return assemble(name, ps, cf, meta), true
}

// writeState writes the changed state shards, new snapshot pair files and
// metadata, and forgets removed repositories and snapshots.
func (u *updater) writeState(cd *channelsData, meta map[string]pkgMeta, metaChanged bool) error {
	ctx, st := u.ctx, u.st
	type job struct {
		key  string
		data []byte
		del  bool
	}
	var jobs []job
	u.h.wrote = true
	for _, repo := range u.names {
		d := u.dirty[repo]
		if len(d) == 0 {
			continue
		}
		shards := stateShards(u.newState[repo])
		for c := range d {
			jobs = append(jobs, job{key: store.CatalogState(repo, c), data: encodeState(shards[c])})
		}
	}
	for _, s := range cd.snaps {
		if s.fresh { // (read in this run, so it has paths)
			jobs = append(jobs, job{key: store.CatalogSnapshotPairs(s.key), data: s.pairsData()})
		}
	}
	for _, key := range cd.stalePairs(u.m.Snapshots) {
		jobs = append(jobs, job{key: key, del: true})
	}
	if metaChanged {
		b, err := json.Marshal(meta)
		if err != nil {
			return err
		}
		jobs = append(jobs, job{key: store.CatalogMeta, data: b})
	}
	err := work.Each(ctx, max(4, runtime.GOMAXPROCS(0)), len(jobs), func(i int) error {
		j := jobs[i]
		if j.del {
			if err := st.Delete(ctx, j.key); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("index: %w", err)
			}
			return nil
		}
		if err := putCompressed(ctx, st, j.key, j.data); err != nil {
			return fmt.Errorf("index: write %s: %w", j.key, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, repo := range u.names {
		if len(u.newState[repo]) == 0 && len(u.oldState[repo]) > 0 {
			deletePrefix(ctx, st, store.CatalogStatePrefix(repo))
		}
	}
	return nil
}
