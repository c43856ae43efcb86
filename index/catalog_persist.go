package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"github.com/nixrepo/nixrepo/internal/work"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// ---------------------------------------------------------------------------
// Persistence

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
	b, err := st.Get(ctx, store.CatalogManifest)
	if err != nil {
		return nil, err
	}
	return parseManifest(b)
}

// parseManifest decodes a manifest; one of another format is an error,
// with its format and generation in the manifest returned.
func parseManifest(b []byte) (*manifest, error) {
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("index: %s: %w", store.CatalogManifest, err)
	}
	if m.Format != catalogFormat {
		// Only the generation carries over (a rebuild continues it, so
		// readers see the catalog move forward).
		return &manifest{Format: m.Format, Generation: m.Generation},
			fmt.Errorf("index: %s: format %d, want %d", store.CatalogManifest, m.Format, catalogFormat)
	}
	if len(m.ShardStats) != PackageShards {
		m.ShardStats = make([]shardStat, PackageShards)
	}
	return &m, nil
}

// encodeShard encodes a package shard (packages sorted by name) as a JSON
// array, byte for byte what encoding/json writes (see catalog_json.go).
func encodeShard(pkgs []Package) []byte {
	return appendPackages(make([]byte, 0, 1024+2048*len(pkgs)), pkgs)
}

func readShard(ctx context.Context, st *store.Store, i int) ([]Package, error) {
	b, err := getCompressed(ctx, st, store.CatalogPackageShard(i))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	var pkgs []Package
	if err := json.Unmarshal(b, &pkgs); err != nil {
		return nil, fmt.Errorf("index: %s: %w", store.CatalogPackageShard(i), err)
	}
	return pkgs, nil
}

func writeShard(ctx context.Context, st *store.Store, i int, pkgs []Package) error {
	return putEncoded(ctx, st, store.CatalogPackageShard(i), func(b []byte) []byte { return appendPackages(b, pkgs) })
}

// encodeState encodes state lines (see appendState).
func encodeState(recs []pathRec) []byte {
	return appendState(make([]byte, 0, len(recs)*110), recs)
}

// appendState appends state lines "<store path> narSize fileSize mod
// kind" (tab-separated) for records sorted by hash.
func appendState(b []byte, recs []pathRec) []byte {
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

// persistFull writes a complete catalog under the claim h: every package
// shard, every state shard of every repository, the snapshot pairs read in
// this run and the metadata; then it deletes what is no longer part of the
// catalog (state of repositories no longer cataloged, an older format's
// objects) and commits the manifest m. Deleting before the commit, while
// the claim is held, keeps a later build's new objects safe from this
// build's sweep.
func persistFull(h *holder, st *store.Store, m *manifest, pkgs []Package, all []repoPaths, cd *channelsData, meta map[string]pkgMeta, prev *manifest) error {
	ctx := h.ctx
	byShard := make([][]Package, PackageShards)
	for _, p := range pkgs {
		s := ShardOf(p.Name)
		byShard[s] = append(byShard[s], p)
		m.ShardStats[s].Packages++
		m.ShardStats[s].Versions += len(p.Versions)
	}
	for i := range m.ShardStats {
		m.ShardStats[i].Gen = m.Generation
	}
	type job struct {
		key string
		fn  func() error
	}
	var jobs []job
	for i := range PackageShards {
		jobs = append(jobs, job{store.CatalogPackageShard(i), func() error { return writeShard(ctx, st, i, byShard[i]) }})
	}
	for _, rp := range all {
		shards := stateShards(rp.recs)
		for c := range []byte(nix32Alphabet) {
			ch := nix32Alphabet[c]
			recs := shards[ch]
			key := store.CatalogState(rp.name, ch)
			jobs = append(jobs, job{key, func() error { return putEncoded(ctx, st, key, func(b []byte) []byte { return appendState(b, recs) }) }})
		}
	}
	for _, s := range cd.snaps {
		if s.fresh {
			key, data := store.CatalogSnapshotPairs(s.key), s.pairsData()
			jobs = append(jobs, job{key, func() error { return putCompressed(ctx, st, key, data) }})
		}
	}
	mb, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	jobs = append(jobs, job{store.CatalogMeta, func() error { return putCompressed(ctx, st, store.CatalogMeta, mb) }})
	h.wrote = true
	err = work.Each(ctx, max(4, runtime.GOMAXPROCS(0)), len(jobs), func(i int) error {
		if err := jobs[i].fn(); err != nil {
			return fmt.Errorf("index: write %s: %w", jobs[i].key, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if prev == nil || prev.Format != catalogFormat || prev.Pending {
		// No complete catalog of this format before: whatever else lies
		// under the prefix (an older format's objects, an interrupted
		// build's) is not part of this one.
		written := make(map[string]bool, len(jobs)+1)
		written[store.CatalogManifest] = true
		for _, j := range jobs {
			written[j.key] = true
		}
		for _, s := range cd.snaps {
			written[store.CatalogSnapshotPairs(s.key)] = true
		}
		sweepCatalog(ctx, st, written)
	} else {
		// Forget what is no longer cataloged.
		keep := map[string]bool{}
		for _, rp := range all {
			keep[rp.name] = true
		}
		for _, r := range prev.Repos {
			if !keep[r.Name] {
				deletePrefix(ctx, st, store.CatalogStatePrefix(r.Name))
			}
		}
		for _, key := range cd.stalePairs(prev.Snapshots) {
			_ = st.Delete(ctx, key)
		}
	}
	if err := h.commit(m); err != nil {
		return err
	}
	return nil
}

// sweepCatalog deletes every object under store.CatalogPrefix but those kept.
// Failures are left for the next full build.
func sweepCatalog(ctx context.Context, st *store.Store, keep map[string]bool) {
	var stale []string
	_ = st.List(ctx, store.CatalogPrefix, false, func(ob store.Object) error {
		if !ob.Dir && !keep[ob.Key] {
			stale = append(stale, ob.Key)
		}
		return nil
	})
	_ = work.Each(ctx, 4, len(stale), func(i int) error {
		_ = st.Delete(ctx, stale[i])
		return nil
	})
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
