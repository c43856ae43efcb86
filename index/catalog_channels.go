package index

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/nixrepo/nixrepo/internal/compress"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/internal/work"
)

// ---------------------------------------------------------------------------
// Channels and packages.json metadata

// snapshotFileKey is the bucket key of a snapshot's file (store.SnapshotFileRel).
func snapshotFileKey(st *store.Store, repo, channel, flavor, id, file string) string {
	return st.Repo(repo).Key(store.SnapshotFileRel(channel, flavor, id, file))
}

type snapshotData struct {
	key, repo, channel string
	info               SnapshotInfo
	hasPaths           bool
	pairs              []string // "pname\tversion", sorted, unique; loaded lazily on updates
	loaded             bool
	fresh              bool // read from store-paths.xz in this run
}

type channelsData struct {
	infos []ChannelInfo
	snaps []*snapshotData // oldest upload first
	// metaSnaps are the snapshots whose packages.json.br give the
	// metadata (each channel's newest that has one), oldest upload first.
	metaSnaps []*snapshotData
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
// their pairs load lazily from the catalog's snapshot files. withMeta, when
// set, runs while the store paths are read, once the snapshots (and so the
// metadata sources) are known.
func readChannels(ctx context.Context, st *store.Store, repos []RepoInfo, prev *manifest, o *BuildOptions, withMeta func(*channelsData)) (*channelsData, error) {
	known := map[string]snapshotRec{}
	if prev != nil {
		for _, s := range prev.Snapshots {
			known[s.Key] = s
		}
	}
	cd := &channelsData{}
	var (
		fresh   []*snapshotData   // store-paths.xz to read
		snapsOf [][]*snapshotData // per cd.infos entry, its snapshots
	)
	for _, r := range repos {
		repo := st.Repo(r.Name)
		names, err := repo.ListChannels(ctx)
		if err != nil {
			return nil, fmt.Errorf("index: list channels of %s: %w", r.Name, err)
		}
		for _, name := range names {
			c, err := repo.ReadChannel(ctx, name)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if errors.Is(err, store.ErrTooLarge) {
				o.Logger.Warn("skipping oversized channel state", "repo", r.Name, "channel", name, "err", err)
				continue
			}
			if errors.Is(err, store.ErrCorrupt) {
				o.Logger.Warn("skipping corrupt channel state", "repo", r.Name, "channel", name, "err", err)
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("index: %w", err)
			}
			ci := ChannelInfo{Repo: r.Name, Name: name, Latest: c.Latest}
			var newest *snapshotData
			for _, s := range c.Snapshots {
				sd := &snapshotData{
					key: r.Name + "/" + name + "/" + s.ID, repo: r.Name, channel: name,
					info:     SnapshotInfo{ID: s.ID, Flavor: s.Flavor, NarHash: s.NarHash, Uploaded: s.Uploaded},
					hasPaths: slices.Contains(s.Files, store.ChannelStorePaths),
				}
				if k, ok := known[sd.key]; ok && k.Uploaded.Equal(s.Uploaded) {
					sd.info.Paths, sd.hasPaths = k.Paths, k.HasPairs
				} else if sd.hasPaths {
					fresh = append(fresh, sd)
				}
				cd.snaps = append(cd.snaps, sd)
				if slices.Contains(s.Files, store.ChannelPackages) && (newest == nil || !s.Uploaded.Before(newest.info.Uploaded)) {
					newest = sd
				}
			}
			cd.infos = append(cd.infos, ci)
			snapsOf = append(snapsOf, slices.Clone(cd.snaps[len(cd.snaps)-len(c.Snapshots):])) // cd.snaps is sorted below
			if newest != nil {
				cd.metaSnaps = append(cd.metaSnaps, newest)
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
	sort.SliceStable(cd.metaSnaps, func(i, j int) bool {
		return cd.metaSnaps[i].info.Uploaded.Before(cd.metaSnaps[j].info.Uploaded)
	})

	// Read the new snapshots' store paths (several at once: each is a
	// download and an xz decode), and the metadata meanwhile when asked.
	metaDone := make(chan struct{})
	go func() {
		if withMeta != nil {
			withMeta(cd)
		}
		close(metaDone)
	}()
	work.Each(ctx, 4, len(fresh), func(i int) error {
		sd := fresh[i]
		key := snapshotFileKey(st, sd.repo, sd.channel, sd.info.Flavor, sd.info.ID, store.ChannelStorePaths)
		pairs, n, err := readStorePaths(ctx, st, key, maxStorePaths)
		if err != nil {
			o.Logger.Warn("skipping unreadable store-paths.xz", "key", key, "err", err)
			sd.hasPaths = false
		} else {
			sd.pairs, sd.info.Paths, sd.loaded, sd.fresh = pairs, n, true, true
		}
		return nil
	})
	<-metaDone
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i := range cd.infos {
		// In the channel's own order, newest first (store.Channel.InOrder).
		ch := store.Channel{Snapshots: make([]store.Snapshot, len(snapsOf[i]))}
		byID := map[string]SnapshotInfo{}
		for j, sd := range snapsOf[i] {
			ch.Snapshots[j] = store.Snapshot{ID: sd.info.ID}
			byID[sd.info.ID] = sd.info
		}
		for _, s := range ch.InOrder() {
			cd.infos[i].Snapshots = append(cd.infos[i].Snapshots, byID[s.ID])
		}
	}
	return cd, nil
}

// maxStorePaths bounds a store-paths.xz as decoded (a variable so that
// tests can lower it).
var maxStorePaths int64 = nix.MaxStorePathsSize

// maxStorePathLine bounds one of its lines (a store path is at most 255
// bytes).
const maxStorePathLine = 4096

// readStorePaths reads a store-paths.xz and returns the (pname, version)
// pairs of its package paths, and the number of store paths it lists. It
// streams: past limit decoded bytes it fails with an error wrapping
// compress.ErrTooLarge, so a list is read whole or not at all (the caller
// then skips the snapshot's store paths with a warning), never cut short.
func readStorePaths(ctx context.Context, st *store.Store, key string, limit int64) ([]string, int, error) {
	rd, err := st.NewReader(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	defer rd.Close()
	r, err := compress.NewReaderOptions(rd, "xz", compress.Options{SizeHint: rd.Size(), MaxOutput: limit})
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	set := map[string]struct{}{}
	n, lines := 0, 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxStorePathLine)
	for sc.Scan() {
		lines++
		line := strings.TrimSpace(sc.Text())
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
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return nil, 0, fmt.Errorf("line %d is longer than %d bytes, more than a store path can be", lines+1, maxStorePathLine)
	}
	if err := sc.Err(); err != nil {
		return nil, 0, err
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
	b, err := getCompressed(ctx, st, store.CatalogSnapshotPairs(s.key))
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

// pairsData is the content of the snapshot's pairs file.
func (s *snapshotData) pairsData() []byte { return []byte(strings.Join(s.pairs, "\n") + "\n") }

// stalePairs are the pairs files of snapshots in prev that are gone now.
func (c *channelsData) stalePairs(prev []snapshotRec) []string {
	now := map[string]bool{}
	for _, s := range c.snaps {
		now[s.key] = true
	}
	var keys []string
	for _, old := range prev {
		if !now[old.Key] && old.HasPairs {
			keys = append(keys, store.CatalogSnapshotPairs(old.Key))
		}
	}
	return keys
}

// metaSources are the keys of metaSnaps, as the manifest records them.
func (c *channelsData) metaSources() []string {
	keys := make([]string, len(c.metaSnaps))
	for i, s := range c.metaSnaps {
		keys[i] = s.key
	}
	return keys
}

// readMeta reads the packages.json.br of the source snapshots, oldest
// first, so newer snapshots win. An unreadable one is skipped with a
// warning.
func readMeta(ctx context.Context, st *store.Store, cd *channelsData, o *BuildOptions) map[string]pkgMeta {
	meta := map[string]pkgMeta{}
	for _, s := range cd.metaSnaps {
		key := snapshotFileKey(st, s.repo, s.channel, s.info.Flavor, s.info.ID, store.ChannelPackages)
		m, err := readPackagesJSON(ctx, st, key)
		if err != nil {
			o.Logger.Warn("skipping unreadable packages.json.br", "key", key, "err", err)
			continue
		}
		for name, pm := range m {
			meta[name] = pm
		}
	}
	return meta
}

// readPackagesJSON streams a brotli packages.json ({"packages": {attrPath:
// {name, pname, version, meta}}}) into metadata by package name: the pname
// SplitName gives for its "name", which is what store paths carry. Among
// attribute paths with the same name the shortest wins ("hello" over
// "pkgsStatic.hello"). nixpkgs' file is large (100k+ packages, most of
// each entry meta this skips), so it is tokenized with jsontext, which
// skips unwanted values without decoding them.
func readPackagesJSON(ctx context.Context, st *store.Store, key string) (map[string]pkgMeta, error) {
	rd, err := st.NewReader(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	br, err := compress.NewContentReader(rd, "br", compress.Options{MaxOutput: maxPackagesJSON})
	if err != nil {
		return nil, err
	}
	defer br.Close()
	return parsePackagesJSON(br)
}

// maxPackagesJSON bounds a decoded packages.json (a channel snapshot file
// an uploader or upstream provides); nixpkgs' is a few hundred MB.
const maxPackagesJSON = 4 << 30

// parsePackagesJSON is readPackagesJSON after decompression.
func parsePackagesJSON(r io.Reader) (map[string]pkgMeta, error) {
	dec := jsontext.NewDecoder(r, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	out := map[string]pkgMeta{}
	err := eachMember(dec, func(name string) error {
		if name != "packages" {
			return dec.SkipValue()
		}
		return eachMember(dec, func(attr string) error {
			name, pm, err := readPackageEntry(dec)
			if err != nil {
				return fmt.Errorf("package %s: %w", attr, err)
			}
			if name == "" {
				return nil
			}
			if old, ok := out[name]; ok && !betterAttr(attr, old.AttrPath) {
				return nil
			}
			pm.AttrPath = attr
			out[name] = pm
			return nil
		})
	})
	if err == nil { // one value, then only white space
		if _, e := dec.ReadToken(); e != io.EOF {
			err = fmt.Errorf("data after the top-level object")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("packages.json: %w", err)
	}
	return out, nil
}

// eachMember reads a JSON object, calling fn with each member name; fn
// must consume the member's value.
func eachMember(dec *jsontext.Decoder, fn func(name string) error) error {
	if err := expectToken(dec, '{'); err != nil {
		return err
	}
	for dec.PeekKind() == '"' {
		t, err := dec.ReadToken()
		if err != nil {
			return err
		}
		if err := fn(t.String()); err != nil {
			return err
		}
	}
	return expectToken(dec, '}')
}

func expectToken(dec *jsontext.Decoder, k jsontext.Kind) error {
	t, err := dec.ReadToken()
	if err != nil {
		return err
	}
	if t.Kind() != k {
		return fmt.Errorf("expected %v at %s, got %v", k, dec.StackPointer(), t.Kind())
	}
	return nil
}

// readPackageEntry reads one package of packages.json: its package name
// (from "name", else "pname") and metadata.
func readPackageEntry(dec *jsontext.Decoder) (string, pkgMeta, error) {
	var (
		full, pname string
		pm          pkgMeta
	)
	if dec.PeekKind() == 'n' { // null: no package
		return "", pm, dec.SkipValue()
	}
	err := eachMember(dec, func(name string) error {
		switch name {
		case "name":
			return readString(dec, &full)
		case "pname":
			return readString(dec, &pname)
		case "meta":
			if dec.PeekKind() == 'n' {
				return dec.SkipValue()
			}
			return eachMember(dec, func(name string) error {
				var to *string
				render := jsonText
				switch name {
				case "description":
					to = &pm.Description
				case "homepage":
					to, render = &pm.Homepage, firstText
				case "license":
					to, render = &pm.License, licenseText
				default:
					return dec.SkipValue()
				}
				v, err := dec.ReadValue()
				if err != nil {
					return err
				}
				*to = render(json.RawMessage(v))
				return nil
			})
		}
		return dec.SkipValue()
	})
	if err != nil {
		return "", pm, err
	}
	name, _ := SplitName(full)
	if name == "" {
		name = pname
	}
	return name, pm, nil
}

// readString reads a JSON string (null reads as "").
func readString(dec *jsontext.Decoder, to *string) error {
	t, err := dec.ReadToken()
	if err != nil {
		return err
	}
	switch t.Kind() {
	case '"':
		*to = t.String()
	case 'n':
		*to = ""
	default:
		return fmt.Errorf("%s: expected a string, got %v", dec.StackPointer(), t.Kind())
	}
	return nil
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

// jsonText is raw as a string, "" if it is not one.
func jsonText(raw json.RawMessage) string {
	var s string
	if firstByte(raw) == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

// firstText is raw as a string, or the first string of a list.
func firstText(raw json.RawMessage) string {
	switch firstByte(raw) {
	case '"':
		return jsonText(raw)
	case '[':
		var l []string
		if json.Unmarshal(raw, &l) == nil && len(l) > 0 {
			return l[0]
		}
	}
	return ""
}

// licenseText renders nixpkgs' meta.license: a string, a license attrset
// ({spdxId, shortName, fullName}) or a list of either.
func licenseText(raw json.RawMessage) string {
	one := func(raw json.RawMessage) string {
		switch firstByte(raw) {
		case '"':
			return jsonText(raw)
		case '{':
			var l struct{ SpdxID, ShortName, FullName string }
			if json.Unmarshal(raw, &l) == nil {
				for _, s := range []string{l.SpdxID, l.ShortName, l.FullName} {
					if s != "" {
						return s
					}
				}
			}
		}
		return ""
	}
	if firstByte(raw) != '[' {
		return one(raw)
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return ""
	}
	var parts []string
	for _, r := range list {
		if s := one(r); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ", ")
}

// firstByte is the first byte of a JSON value after white space (0 if none).
func firstByte(raw []byte) byte {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}
