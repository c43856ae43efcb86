package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/andybalholm/brotli"

	"github.com/nixrepo/nixrepo/internal/compress"
	"github.com/nixrepo/nixrepo/internal/store"
)

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
