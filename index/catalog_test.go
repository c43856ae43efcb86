package index

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/ulikunitz/xz"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/memblob"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// fixture is a bucket filled with generated narinfos and channel state.
type fixture struct {
	t   testing.TB
	ctx context.Context
	st  *store.Store
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	st, err := store.Open(context.Background(), "mem://", "", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &fixture{t: t, ctx: context.Background(), st: st}
}

// hashOf derives a store path hash from a seed, so the same seed gives
// the same store path in every repository.
func hashOf(seed string) string {
	d := sha256.Sum256([]byte(seed))
	return nix.EncodeNix32(d[:20])
}

func storePath(name string) string { return nix.StoreDir + "/" + hashOf(name) + "-" + name }

// add writes a valid narinfo for /nix/store/<hashOf(seed)>-<name> to repo
// and returns the store path. seed "" means the name.
func (f *fixture) add(repo, name, seed string, narSize uint64) string {
	f.t.Helper()
	if seed == "" {
		seed = name
	}
	sp := nix.StoreDir + "/" + hashOf(seed) + "-" + name
	p, err := nix.ParseStorePath(sp)
	if err != nil {
		f.t.Fatal(err)
	}
	fh := sha256.Sum256([]byte("file " + sp))
	nh := sha256.Sum256([]byte("nar " + sp))
	ni := nix.NarInfo{
		StorePath: p, Compression: "xz",
		FileHash: nix.SHA256(fh[:]), FileSize: narSize / 3,
		NarHash: nix.SHA256(nh[:]), NarSize: narSize,
	}
	ni.URL = store.NarFile(ni.FileHash, ni.Compression)
	if err := f.st.Put(f.ctx, repo+"/"+p.HashPart()+".narinfo", ni.Bytes(), nil); err != nil {
		f.t.Fatal(err)
	}
	return sp
}

func (f *fixture) remove(repo, sp string) {
	f.t.Helper()
	h := strings.TrimPrefix(sp, nix.StoreDir+"/")[:nix.HashPartLen]
	if err := f.st.Delete(f.ctx, repo+"/"+h+".narinfo"); err != nil {
		f.t.Fatal(err)
	}
}

type testSnapshot struct {
	id         string
	uploaded   time.Time
	storePaths []string
	packages   map[string]any // packages.json "packages"
}

// channel writes R/channels/NAME/channel.json and the snapshots' files.
func (f *fixture) channel(repo, name string, snaps ...testSnapshot) {
	f.t.Helper()
	type snapJSON struct {
		ID       string    `json:"id"`
		Flavor   string    `json:"flavor"`
		NarHash  string    `json:"narHash"`
		Uploaded time.Time `json:"uploaded"`
		Files    []string  `json:"files"`
	}
	var c struct {
		Name      string     `json:"name"`
		Latest    string     `json:"latest"`
		Snapshots []snapJSON `json:"snapshots"`
	}
	c.Name = name
	for _, s := range snaps {
		dir := repo + "/channels/" + name + "/nixpkgs/" + s.id + "/"
		files := []string{"nixexprs.tar.xz"}
		f.put(dir+"nixexprs.tar.xz", []byte("not really a tarball"))
		if s.storePaths != nil {
			var buf bytes.Buffer
			w, err := xz.NewWriter(&buf)
			if err != nil {
				f.t.Fatal(err)
			}
			w.Write([]byte(strings.Join(s.storePaths, "\n") + "\n"))
			w.Close()
			f.put(dir+"store-paths.xz", buf.Bytes())
			files = append(files, "store-paths.xz")
		}
		if s.packages != nil {
			var buf bytes.Buffer
			w := brotli.NewWriter(&buf)
			json.NewEncoder(w).Encode(map[string]any{"version": 2, "packages": s.packages})
			w.Close()
			f.put(dir+"packages.json.br", buf.Bytes())
			files = append(files, "packages.json.br")
		}
		c.Snapshots = append(c.Snapshots, snapJSON{ID: s.id, Flavor: "nixpkgs", NarHash: "0000", Uploaded: s.uploaded, Files: files})
		c.Latest = s.id
	}
	b, _ := json.Marshal(c)
	f.put(repo+"/channels/"+name+"/channel.json", b)
}

func (f *fixture) put(key string, b []byte) {
	f.t.Helper()
	if err := f.st.Put(f.ctx, key, b, nil); err != nil {
		f.t.Fatal(err)
	}
}

func repoInfos(names ...string) []RepoInfo {
	var out []RepoInfo
	for _, n := range names {
		out = append(out, RepoInfo{Name: n, Type: "local"})
	}
	return out
}

func findPkg(t testing.TB, cat *Catalog, name string) *Package {
	t.Helper()
	for i := range cat.Packages {
		if cat.Packages[i].Name == name {
			return &cat.Packages[i]
		}
	}
	t.Fatalf("package %q not in the catalog", name)
	return nil
}

func versionsOf(p *Package) []string {
	var out []string
	for _, v := range p.Versions {
		out = append(out, v.Version)
	}
	return out
}

func TestBuildGroupsPathsIntoPackagesAndVersions(t *testing.T) {
	f := newFixture(t)
	for _, n := range []string{
		"hello-2.12.1", "hello-2.12", "hello-2.10",
		"openssl-3.0.8", "openssl-3.0.8-dev", "openssl-3.0.8-man", "openssl-1.1.1w",
		"foo-2023-01-01", "foo-2023-1-1",
		"greet-1.2", "greet-1.10", "greet-1.9",
		"hello-2.12.1.drv", "hello-2.12.1.tar.gz", "etc", "source",
	} {
		f.add("main", n, "", 3000)
	}
	f.add("staging", "hello-2.12.1", "", 3000) // the same path in two repos
	f.add("staging", "hello-2.13pre1", "", 3000)
	f.add("staging", "openssl-3.0.8", "rebuild", 3100) // a second build of one output

	cat, err := Build(f.ctx, f.st, repoInfos("staging", "main"), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantStats := Stats{Paths: 14, Derivations: 1, Sources: 2, Other: 1, Packages: 4, Versions: 11}
	if cat.Stats != wantStats {
		t.Errorf("stats = %+v, want %+v", cat.Stats, wantStats)
	}
	if got := []string{cat.Repos[0].Name, cat.Repos[1].Name}; !slices.Equal(got, []string{"main", "staging"}) {
		t.Errorf("repos = %v", got)
	}
	if cat.Repos[0].Paths != 16 || cat.Repos[1].Paths != 3 {
		t.Errorf("repo paths = %d, %d; want 16, 3", cat.Repos[0].Paths, cat.Repos[1].Paths)
	}
	var names []string
	for _, p := range cat.Packages {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"foo", "greet", "hello", "openssl"}) {
		t.Errorf("packages = %v", names)
	}

	tests := []struct {
		name      string
		latest    string
		versions  []string
		ambiguous []string
		repos     []string
	}{
		{"hello", "2.13pre1", []string{"2.13pre1", "2.12.1", "2.12", "2.10"}, nil, []string{"main", "staging"}},
		{"greet", "1.10", []string{"1.10", "1.9", "1.2"}, nil, []string{"main"}},
		{"openssl", "3.0.8", []string{"3.0.8", "1.1.1w"}, []string{"3.0.8"}, []string{"main", "staging"}},
		{"foo", "2023-01-01", []string{"2023-01-01", "2023-1-1"}, []string{"2023-01-01", "2023-1-1"}, []string{"main"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := findPkg(t, cat, tc.name)
			if p.Latest != tc.latest {
				t.Errorf("latest = %q, want %q", p.Latest, tc.latest)
			}
			if got := versionsOf(p); !slices.Equal(got, tc.versions) {
				t.Errorf("versions = %v, want %v", got, tc.versions)
			}
			var amb []string
			for _, v := range p.Versions {
				if v.Ambiguous {
					amb = append(amb, v.Version)
				}
			}
			if !slices.Equal(amb, tc.ambiguous) {
				t.Errorf("ambiguous = %v, want %v", amb, tc.ambiguous)
			}
			if !slices.Equal(p.Repos, tc.repos) {
				t.Errorf("repos = %v, want %v", p.Repos, tc.repos)
			}
		})
	}

	hello := findPkg(t, cat, "hello")
	v := hello.Versions[1]
	if len(v.Paths) != 1 || !slices.Equal(v.Paths[0].Repos, []string{"main", "staging"}) || !slices.Equal(v.Repos, []string{"main", "staging"}) {
		t.Errorf("hello 2.12.1 = %+v", v)
	}
	if p := v.Paths[0]; p.StorePath != storePath("hello-2.12.1") || p.Output != "out" || p.NarSize != 3000 || p.FileSize != 1000 || p.Uploaded.IsZero() {
		t.Errorf("hello 2.12.1 path = %+v", p)
	}
	ossl := findPkg(t, cat, "openssl")
	var outs []string
	for _, p := range ossl.Versions[0].Paths {
		outs = append(outs, p.Output)
	}
	if !slices.Equal(outs, []string{"dev", "man", "out", "out"}) {
		t.Errorf("openssl 3.0.8 outputs = %v", outs)
	}

	// The persisted catalog is the same.
	loaded, err := Load(f.ctx, f.st)
	if err != nil {
		t.Fatal(err)
	}
	assertSameCatalog(t, loaded, cat)
	p, err := LoadPackage(f.ctx, f.st, "greet")
	if err != nil || p.Latest != "1.10" {
		t.Errorf("LoadPackage(greet) = %+v, %v", p, err)
	}
	if _, err := LoadPackage(f.ctx, f.st, "nope"); !errors.Is(err, ErrNoPackage) {
		t.Errorf("LoadPackage(nope) err = %v", err)
	}
}

func assertSameCatalog(t *testing.T, got, want *Catalog) {
	t.Helper()
	g, w := *got, *want
	g.Generated, w.Generated = time.Time{}, time.Time{}
	gb, _ := json.MarshalIndent(g, "", " ")
	wb, _ := json.MarshalIndent(w, "", " ")
	if !bytes.Equal(gb, wb) {
		t.Errorf("catalogs differ:\n%s", diffLines(string(gb), string(wb)))
	}
}

func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			lo := max(0, i-8)
			return fmt.Sprintf("first difference at line %d:\ngot:  %s\nwant: %s\ncontext (got):\n%s", i+1, x, y, strings.Join(al[lo:min(len(al), i+4)], "\n"))
		}
	}
	return "(no line differs)"
}

func TestBuildRecordsChannelsAndMetadata(t *testing.T) {
	f := newFixture(t)
	f.add("main", "hello-2.12", "", 100)
	f.add("main", "hello-2.12.1", "", 100)
	f.add("main", "zlib-1.3", "", 100)
	t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.channel("main", "nixpkgs-unstable",
		testSnapshot{id: "s1", uploaded: t1, storePaths: []string{
			storePath("hello-2.12"), storePath("zlib-1.3"), storePath("zlib-1.3-dev"), storePath("glibc-2.40"), storePath("hello-2.12.drv"),
		}, packages: map[string]any{
			"hello": map[string]any{"name": "hello-2.12", "pname": "hello", "version": "2.12", "meta": map[string]any{"description": "old description"}},
		}},
		testSnapshot{id: "s2", uploaded: t1.Add(time.Hour), storePaths: []string{storePath("hello-2.12.1"), storePath("zlib-1.3")},
			packages: map[string]any{
				"hello": map[string]any{"name": "hello-2.12.1", "pname": "hello", "version": "2.12.1", "meta": map[string]any{
					"description": "A program that produces a familiar, friendly greeting",
					"homepage":    "https://www.gnu.org/software/hello/",
					"license":     map[string]any{"spdxId": "GPL-3.0-or-later", "fullName": "GNU GPL v3"},
				}},
				"pkgsStatic.hello": map[string]any{"name": "hello-static-2.12.1", "meta": map[string]any{"description": "static"}},
				"zlib":             map[string]any{"name": "zlib-1.3", "meta": map[string]any{"license": []any{map[string]any{"spdxId": "Zlib"}, "custom"}, "homepage": []any{"https://zlib.net"}}},
			}},
	)
	f.channel("main", "empty") // a channel without snapshots

	cat, err := Build(f.ctx, f.st, repoInfos("main"), nil)
	if err != nil {
		t.Fatal(err)
	}
	hello := findPkg(t, cat, "hello")
	if got := hello.Versions[0].Channels; !slices.Equal(got, []string{"main/nixpkgs-unstable/s2"}) {
		t.Errorf("hello 2.12.1 channels = %v", got)
	}
	if got := hello.Versions[1].Channels; !slices.Equal(got, []string{"main/nixpkgs-unstable/s1"}) {
		t.Errorf("hello 2.12 channels = %v", got)
	}
	zlib := findPkg(t, cat, "zlib")
	if got := zlib.Versions[0].Channels; !slices.Equal(got, []string{"main/nixpkgs-unstable/s1", "main/nixpkgs-unstable/s2"}) {
		t.Errorf("zlib channels = %v (want oldest first)", got)
	}
	if hello.Description != "A program that produces a familiar, friendly greeting" || hello.Homepage != "https://www.gnu.org/software/hello/" ||
		hello.License != "GPL-3.0-or-later" || hello.AttrPath != "hello" {
		t.Errorf("hello metadata = %q %q %q %q", hello.Description, hello.Homepage, hello.License, hello.AttrPath)
	}
	if zlib.License != "Zlib, custom" || zlib.Homepage != "https://zlib.net" {
		t.Errorf("zlib metadata = %q %q", zlib.License, zlib.Homepage)
	}
	if len(cat.Channels) != 2 {
		t.Fatalf("channels = %+v", cat.Channels)
	}
	ch := cat.Channels[1]
	if ch.Name != "nixpkgs-unstable" || ch.Latest != "s2" || len(ch.Snapshots) != 2 || ch.Snapshots[0].ID != "s2" ||
		ch.Snapshots[0].Paths != 2 || ch.Snapshots[1].Paths != 5 {
		t.Errorf("channel = %+v", ch)
	}
	// Filtering by repository keeps channels of allowed repositories only.
	if fp := FilterPackage(hello, func(r string) bool { return false }); fp != nil {
		t.Errorf("FilterPackage(none) = %+v", fp)
	}
	if fp := FilterPackage(hello, func(r string) bool { return r == "main" }); fp == nil || len(fp.Versions) != 2 || fp.Versions[0].Channels == nil {
		t.Errorf("FilterPackage(main) = %+v", fp)
	}
}

func TestUpdateIncrementalEqualsFullBuild(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	opts := &BuildOptions{IndexDir: dir, IndexShards: 2}
	for i := 0; i < 50; i++ {
		f.add("main", fmt.Sprintf("pkg%02d-1.%d", i, i%7), "", 100)
		f.add("main", fmt.Sprintf("pkg%02d-1.%d-dev", i, i%7), "", 100)
	}
	f.add("main", "hello-2.12", "", 100)
	f.add("other", "hello-2.12", "", 100)
	f.add("other", "world-1.0", "", 100)
	repos := repoInfos("main", "other")
	if _, err := Build(f.ctx, f.st, repos, opts); err != nil {
		t.Fatal(err)
	}
	gen0, _ := Generation(f.ctx, f.st)

	steps := []struct {
		name        string
		do          func()
		repos       []RepoInfo
		changed     []string
		deleted     []string
		added, gone int
	}{
		{"nothing new", func() {}, repos, nil, nil, 0, 0},
		{"one new path", func() { f.add("main", "hello-2.13", "", 100) }, repos, []string{"hello"}, nil, 1, 0},
		{"same path in another repo", func() { f.add("other", "hello-2.13", "", 100) }, repos, []string{"hello"}, nil, 1, 0},
		{"new package", func() { f.add("main", "brandnew-0.1", "", 100) }, repos, []string{"brandnew"}, nil, 1, 0},
		{"derivation only", func() { f.add("main", "brandnew-0.1.drv", "", 100) }, repos, nil, nil, 1, 0},
		{"path removed", func() { f.remove("main", storePath("pkg03-1.3-dev")) }, repos, []string{"pkg03"}, nil, 0, 1},
		{"package removed", func() { f.remove("main", storePath("brandnew-0.1")) }, repos, nil, []string{"brandnew"}, 0, 1},
		{"new channel snapshot", func() {
			f.channel("main", "unstable", testSnapshot{id: "a", uploaded: time.Now().UTC(), storePaths: []string{storePath("hello-2.13"), storePath("notours-1.0")},
				packages: map[string]any{"world": map[string]any{"name": "world-1.0", "meta": map[string]any{"description": "the world"}}}})
		}, repos, []string{"hello", "world"}, nil, 0, 0},
		{"repository dropped", func() {}, repoInfos("main"), []string{"hello"}, []string{"world"}, 0, 3},
	}
	for _, s := range steps {
		s.do()
		rep, err := Update(f.ctx, f.st, s.repos, opts)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if rep.Full || rep.IndexRebuilt {
			t.Errorf("%s: full %v, index rebuilt %v; want incremental", s.name, rep.Full, rep.IndexRebuilt)
		}
		if !slices.Equal(rep.Changed, s.changed) || !slices.Equal(rep.Deleted, s.deleted) || rep.Added != s.added || rep.Removed != s.gone {
			t.Errorf("%s: changed %v deleted %v added %d removed %d; want %v %v %d %d", s.name, rep.Changed, rep.Deleted, rep.Added, rep.Removed,
				s.changed, s.deleted, s.added, s.gone)
		}
		// The incremental result equals a build from scratch.
		got, err := Load(f.ctx, f.st)
		if err != nil {
			t.Fatal(err)
		}
		ig, err := IndexGeneration(dir)
		if err != nil || ig != rep.Generation {
			t.Errorf("%s: index generation %d (%v), catalog %d", s.name, ig, err, rep.Generation)
		}
		want, err := Build(f.ctx, f.st, s.repos, &BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		assertSameCatalog(t, got, want)
		if rep.Stats != want.Stats {
			t.Errorf("%s: stats %+v, want %+v", s.name, rep.Stats, want.Stats)
		}
		// Build bumped the generation without touching the index: bring
		// the index back in line the way a real run would (rebuild).
		if err := RebuildIndex(f.ctx, f.st, dir, 2); err != nil {
			t.Fatal(err)
		}
	}
	if g, _ := Generation(f.ctx, f.st); g <= gen0 {
		t.Errorf("generation did not grow: %d → %d", gen0, g)
	}

	// The index has the new version.
	x, err := OpenIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	sums, err := x.Summaries([]string{"hello", "world", "brandnew"})
	if err != nil {
		t.Fatal(err)
	}
	if h := sums["hello"]; h.Latest() != "2.13" || !slices.Equal(h.Repos(), []string{"main"}) {
		t.Errorf("hello summary = %+v", h)
	}
	if _, ok := sums["world"]; ok {
		t.Errorf("world still indexed")
	}
}

// writeManifest replaces the manifest as it is (no claim).
func writeManifest(ctx context.Context, st *store.Store, m *manifest) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return st.Put(ctx, store.CatalogManifest, b, nil)
}

func TestUpdateWithoutCatalogBuilds(t *testing.T) {
	f := newFixture(t)
	f.add("main", "hello-1.0", "", 10)
	rep, err := Update(f.ctx, f.st, repoInfos("main"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Full || rep.Stats.Packages != 1 {
		t.Errorf("report = %+v", rep)
	}
	// An interrupted update (pending manifest) is redone in full.
	m, _ := readManifest(f.ctx, f.st)
	m.Pending = true
	writeManifest(f.ctx, f.st, m)
	f.add("main", "hello-1.1", "", 10)
	rep, err = Update(f.ctx, f.st, repoInfos("main"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Full || rep.Stats.Versions != 2 {
		t.Errorf("report after pending = %+v", rep)
	}
}

// A catalog of another format (or an interrupted build's leftovers) is
// replaced whole: Update rebuilds, the generation moves on, and no object
// of the old catalog stays behind.
func TestOldFormatCatalogReplaced(t *testing.T) {
	f := newFixture(t)
	f.add("main", "hello-1.0", "", 10)
	old := []string{
		store.CatalogPrefix + "packages/00.json.zst",
		store.CatalogPrefix + "state/main/0.tsv.zst",
		store.CatalogPrefix + "snapshots/main/nixos/1.tsv.zst",
		store.CatalogPrefix + "meta.json.zst",
	}
	for _, k := range old {
		f.put(k, []byte("zstd bytes"))
	}
	f.put(store.CatalogManifest, []byte(`{"format":1,"generation":7}`))
	if _, err := Load(f.ctx, f.st); err == nil || !strings.Contains(err.Error(), "format 1, want 2") {
		t.Fatalf("Load of a format-1 catalog: err = %v", err)
	}
	rep, err := Update(f.ctx, f.st, repoInfos("main"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Full || rep.Generation != 8 || rep.Stats.Packages != 1 {
		t.Errorf("report = %+v, want a full build at generation 8", rep)
	}
	for _, k := range old {
		if _, err := f.st.Get(f.ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err = %v, want it deleted", k, err)
		}
	}
	cat, err := Load(f.ctx, f.st)
	if err != nil {
		t.Fatal(err)
	}
	findPkg(t, cat, "hello")
	// An incremental update keeps what the build wrote.
	f.add("main", "hello-1.1", "", 10)
	if rep, err = Update(f.ctx, f.st, repoInfos("main"), nil); err != nil || rep.Full || rep.Generation != 9 {
		t.Fatalf("update: %+v, %v", rep, err)
	}
	if cat, err = Load(f.ctx, f.st); err != nil || len(findPkg(t, cat, "hello").Versions) != 2 {
		t.Fatalf("after update: %v", err)
	}
}

func TestSkipsBadNarInfos(t *testing.T) {
	f := newFixture(t)
	f.add("main", "hello-1.0", "", 10)
	f.put("main/"+hashOf("junk")+".narinfo", []byte("this is not a narinfo\n"))
	f.put("main/"+hashOf("other")+".narinfo", mustNarInfo(t, "hello-9.9")) // named after another path
	f.put("main/nix-cache-info", []byte("StoreDir: /nix/store\n"))
	cat, err := Build(f.ctx, f.st, repoInfos("main"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cat.Stats.Paths != 1 || cat.Repos[0].Paths != 1 {
		t.Errorf("stats = %+v", cat.Stats)
	}
}

func mustNarInfo(t *testing.T, name string) []byte {
	sp, err := nix.ParseStorePath(storePath(name))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte(name))
	ni := nix.NarInfo{StorePath: sp, Compression: "none", FileHash: nix.SHA256(h[:]), FileSize: 1, NarHash: nix.SHA256(h[:]), NarSize: 1}
	ni.URL = store.NarFile(ni.FileHash, "none")
	return ni.Bytes()
}

// TestFolderFastPathsMatchGocloudListing runs the folder fast paths (directory listing, direct
// reads) against the gocloud listing they replace.
func TestFolderFastPathsMatchGocloudListing(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(context.Background(), "file://"+dir, "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := &fixture{t: t, ctx: context.Background(), st: st}
	for i := 0; i < 30; i++ {
		f.add("main", fmt.Sprintf("p%d-1.%d", i%5, i), "", 10)
	}
	os.WriteFile(filepath.Join(dir, "main", hashOf("x")+".narinfo.0123abcd.tmp"), []byte("partial"), 0o644)
	ls, err := listNarInfos(f.ctx, st, "main", true, 2)
	if err != nil {
		t.Fatal(err)
	}
	var viaGocloud []listed
	err = st.List(f.ctx, "main/", true, func(o store.Object) error {
		if h, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, "main/"), ".narinfo"); ok {
			viaGocloud = append(viaGocloud, listed{h, o.ModTime.UnixNano()})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ls, viaGocloud) {
		t.Errorf("listing differs:\n%v\n%v", ls, viaGocloud)
	}
	cat, err := Build(f.ctx, st, repoInfos("main", "absent"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cat.Stats.Paths != 30 || cat.Stats.Packages != 5 {
		t.Errorf("stats = %+v", cat.Stats)
	}
	if cat.Packages[0].Versions[0].Paths[0].Uploaded.IsZero() {
		t.Errorf("no upload time")
	}
}

// TestBuildUsesJournal: a full build takes what the path journal notes
// for listed narinfos, reads the narinfos it lacks, ignores notes whose
// narinfo is gone, and leaves one compacted journal object with every
// path (so the next build reads no narinfo).
func TestBuildUsesJournal(t *testing.T) {
	f := newFixture(t)
	noted := f.add("main", "noted-1.0", "", 300)
	unnoted := f.add("main", "unnoted-2.0", "", 600)
	r := f.st.Repo("main")
	// The note says 301 bytes: a build that reads it reports 301.
	r.Note(store.JournalRecord{StorePath: noted, NarSize: 301, FileSize: 100, Time: 5e18})
	r.Note(store.JournalRecord{StorePath: storePath("gone-3.0"), NarSize: 1, FileSize: 1, Time: 5e18})
	if err := f.st.FlushJournal(f.ctx); err != nil {
		t.Fatal(err)
	}
	r.Note(store.JournalRecord{StorePath: storePath("gone-3.0"), NarSize: 1, FileSize: 1, Time: 6e18})
	if err := f.st.FlushJournal(f.ctx); err != nil {
		t.Fatal(err)
	}
	cat, err := Build(f.ctx, f.st, repoInfos("main"), nil)
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]uint64{}
	for _, p := range cat.Packages {
		for _, v := range p.Versions {
			for _, pi := range v.Paths {
				sizes[pi.StorePath] = pi.NarSize
			}
		}
	}
	if len(sizes) != 2 || sizes[noted] != 301 || sizes[unnoted] != 600 {
		t.Fatalf("catalog sizes %v: want the noted path from the journal (301), the other from its narinfo (600), nothing else", sizes)
	}
	recs, keys, _, err := f.st.ReadJournal(f.ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || len(recs) != 2 || recs[hashOf("unnoted-2.0")].NarSize != 600 {
		t.Errorf("journal after the build: %d objects, %+v", len(keys), recs)
	}
	// A damaged journal only costs reading the narinfos.
	if err := f.st.Put(f.ctx, store.JournalPrefix("main")+"99999999999999999999-bad.zst", []byte("junk"), nil); err != nil {
		t.Fatal(err)
	}
	cat, err = Build(f.ctx, f.st, repoInfos("main"), nil)
	if err != nil || cat.Stats.Paths != 2 {
		t.Fatalf("build with a damaged journal: %v, %+v", err, cat)
	}
	if _, keys, damaged, err := f.st.ReadJournal(f.ctx, "main"); err != nil || len(keys) != 1 || len(damaged) != 0 {
		t.Errorf("the build did not replace the damaged journal object: keys %v, damaged %v, err %v", keys, damaged, err)
	}
}

// TestUpdateCompactsJournal: once writers have left many journal objects,
// an update replaces them with one holding the repository's paths; objects
// written after the update listed the narinfos are kept.
func TestUpdateCompactsJournal(t *testing.T) {
	f := newFixture(t)
	f.add("main", "a-1.0", "", 10)
	if _, err := Build(f.ctx, f.st, repoInfos("main"), nil); err != nil {
		t.Fatal(err)
	}
	r := f.st.Repo("main")
	for i := range 40 {
		sp := f.add("main", fmt.Sprintf("p%d-1.0", i), "", 10)
		r.Note(store.JournalRecord{StorePath: sp, NarSize: 10, FileSize: 3, Time: time.Now().UnixNano()})
		if err := f.st.FlushJournal(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	future := fmt.Sprintf("%s%020d-later.zst", store.JournalPrefix("main"), time.Now().Add(time.Hour).UnixNano())
	if err := f.st.Put(f.ctx, future, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Update(f.ctx, f.st, repoInfos("main"), nil); err != nil {
		t.Fatal(err)
	}
	keys, err := f.st.JournalObjects(f.ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[1] != future {
		t.Fatalf("journal after the update: %v, want one compacted object and the later one", keys)
	}
	recs, _, _, err := f.st.ReadJournal(f.ctx, "main")
	if err != nil || len(recs) != 41 {
		t.Fatalf("compacted journal: %d notes, %v; want 41", len(recs), err)
	}
}

// TestChannelSnapshotsStayWithTheirChannel: snapshots of several channels
// uploaded in interleaved order are listed under their own channel, newest
// first, with their own path counts.
func TestChannelSnapshotsStayWithTheirChannel(t *testing.T) {
	f := newFixture(t)
	f.add("main", "hello-2.12", "", 100)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	f.channel("main", "a", testSnapshot{id: "a1", uploaded: at(1), storePaths: []string{storePath("hello-2.12")}},
		testSnapshot{id: "a2", uploaded: at(4), storePaths: []string{storePath("hello-2.12"), storePath("zlib-1.3")}})
	f.channel("main", "b", testSnapshot{id: "b1", uploaded: at(2), storePaths: []string{storePath("hello-2.12")}},
		testSnapshot{id: "b2", uploaded: at(3)})
	f.channel("staging", "c", testSnapshot{id: "c1", uploaded: at(0), storePaths: []string{storePath("a-1"), storePath("b-1"), storePath("c-1")}})
	cat, err := Build(f.ctx, f.st, repoInfos("main", "staging"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range cat.Channels {
		var ids []string
		for _, s := range c.Snapshots {
			ids = append(ids, fmt.Sprintf("%s:%d", s.ID, s.Paths))
		}
		got[c.Repo+"/"+c.Name] = strings.Join(ids, " ")
	}
	want := map[string]string{"main/a": "a2:2 a1:1", "main/b": "b2:0 b1:1", "staging/c": "c1:3"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("channel snapshots = %v, want %v", got, want)
	}
	if hello := findPkg(t, cat, "hello"); !reflect.DeepEqual(hello.Versions[0].Channels, []string{"main/a/a1", "main/b/b1", "main/a/a2"}) {
		t.Errorf("hello 2.12 channels = %v", hello.Versions[0].Channels)
	}
}
