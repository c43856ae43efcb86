package site

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nixrepo/nixrepo/index"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

func loadCatalog(t testing.TB) *index.Catalog {
	t.Helper()
	data, err := os.ReadFile("testdata/catalog.json")
	if err != nil {
		t.Fatal(err)
	}
	var cat index.Catalog
	if err := json.Unmarshal(data, &cat); err != nil {
		t.Fatal(err)
	}
	return &cat
}

func render(t testing.TB, cat *index.Catalog, opts Options) map[string]File {
	t.Helper()
	files, err := Render(cat, opts)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]File{}
	for _, f := range files {
		if _, dup := m[f.Path]; dup {
			t.Fatalf("file %s rendered twice", f.Path)
		}
		if f.Path == "" || strings.HasPrefix(f.Path, "/") || path.Clean(f.Path) != f.Path || strings.HasPrefix(f.Path, "../") {
			t.Fatalf("bad path %q", f.Path)
		}
		if f.ContentType == "" {
			t.Fatalf("%s has no content type", f.Path)
		}
		m[f.Path] = f
	}
	return m
}

var goldenCases = []struct {
	name string
	opts Options
}{
	// Defaults and no base URL: placeholders.
	{"default", Options{}},
	// A base URL, a separate server, tiny pages and shards: pagination and
	// split shards.
	{"paged", Options{BaseURL: "https://cache.example.org/", ServerURL: "https://nix.example.org:8443", Title: "Example", PageSize: 2, ShardSize: 1}},
}

// TestRenderMatchesGolden compares every rendered page and search file (not the
// embedded assets) with testdata/golden; go test ./site -update rewrites them.
func TestRenderMatchesGolden(t *testing.T) {
	cat := loadCatalog(t)
	for _, gc := range goldenCases {
		t.Run(gc.name, func(t *testing.T) {
			dir := filepath.Join("testdata", "golden", gc.name)
			files := render(t, cat, gc.opts)
			want := map[string]bool{}
			if *update {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
			}
			for p, f := range files {
				if strings.HasPrefix(p, "assets/") {
					continue
				}
				want[p] = true
				gp := filepath.Join(dir, filepath.FromSlash(p))
				if *update {
					if err := os.MkdirAll(filepath.Dir(gp), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(gp, f.Data, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				g, err := os.ReadFile(gp)
				if err != nil {
					t.Errorf("%s: %v (run go test ./site -update)", p, err)
					continue
				}
				if !bytes.Equal(g, f.Data) {
					t.Errorf("%s differs from %s (run go test ./site -update and review the diff):\n%s", p, gp, firstDiff(g, f.Data))
				}
			}
			err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				rel, _ := filepath.Rel(dir, p)
				if !want[filepath.ToSlash(rel)] {
					t.Errorf("golden file %s is no longer rendered", p)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, x, y)
		}
	}
	return "(no line differs)"
}

func TestPagesListVersionsHighestFirst(t *testing.T) {
	files := render(t, loadCatalog(t), Options{BaseURL: "https://cache.example.org"})
	for _, p := range []string{
		"index.html", "packages/index.html", "channels.html", "setup/nix-local.html", "setup/upstream.html",
		"packages/hello.html", "packages/openssl.html", "packages/~69ndex.html", "packages/weird~3Fname~3D1.html",
		"packages/python3.12-requests.html", "assets/site.css", "assets/search.js", "search/manifest.json",
	} {
		if _, ok := files[p]; !ok {
			t.Errorf("%s not rendered", p)
		}
	}
	contains := func(p string, subs ...string) {
		t.Helper()
		s := string(files[p].Data)
		for _, sub := range subs {
			if !strings.Contains(s, sub) {
				t.Errorf("%s lacks %q", p, sub)
			}
		}
	}
	contains("index.html",
		"extra-substituters = https://cache.example.org/nix-local?priority=30",
		"extra-trusted-public-keys = nix-local-1:6q1Kz3WbqHFx0m2lHPNa3o8CWQKZ5nqkqLNlBOa0bFY=",
		`href="setup/nix-local.html"`, `href="packages/index.html"`, `href="channels.html"`, `id="search"`, `name="q"`)
	contains("setup/nix-local.html",
		"extra-substituters = https://cache.example.org/api/nix/nix-local?priority=30",
		"machine cache.example.org login nixrepo password TOKEN",
		"nix copy --to 'https://cache.example.org/api/upload/nix-local' ./result",
		"nix-channel --add https://cache.example.org/nix-local/channels/team/nixexprs.tar.xz team",
		"nix-channel --add https://cache.example.org/api/nix/nix-local/channels/team team",
		`url = "https://cache.example.org/nix-local/channels/team/nixpkgs/2026.11.27/nixexprs.tar.xz";`,
		`sha256 = "0v1iqmwgs5cbqn9kwlb2ldxy2k9gmnhfhlv8m0a5dmywy7zmzwzn";`)
	contains("channels.html", "1a2s1qv6ykx3xxhzxagq6qiyqq7j7pjxkf4dqmri5f0mq4s0d6f8",
		"https://cache.example.org/api/nix/nix-local/channels/team/nixpkgs/2026.11.01/nixexprs.tar.xz")
	contains("packages/openssl.html", "3.4.0", "3.0.15", "ambiguous", "latest", "/nix/store/5i6xvddz3xd3fpx9pw4y7v0v9mr2f8fj-openssl-3.4.0-dev",
		"6.5 MiB", "3.2 MiB", `href="../channels.html#s-nix-local~2Fteam~2F2026.11.27"`)

	// Versions are listed highest first, as the catalog orders them.
	h := string(files["packages/hello.html"].Data)
	i1, i2, i3 := strings.Index(h, `id="v-2.12.1"`), strings.Index(h, `id="v-2.12"`), strings.Index(h, `id="v-2.10"`)
	if !(i1 > 0 && i1 < i2 && i2 < i3) {
		t.Errorf("hello versions out of order: %d %d %d", i1, i2, i3)
	}
	// The setup lines of a placeholder base URL.
	files = render(t, loadCatalog(t), Options{})
	contains("setup/upstream.html", "extra-substituters = https://YOUR-HOST/upstream?priority=40", "upstream-1:PUBLIC-KEY", "machine YOUR-HOST login")
}

func TestEncodeName(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"hello", "hello"},
		{"python3.12-requests_2+x", "python3.12-requests_2+x"},
		{"a?b=c", "a~3Fb~3Dc"},
		{"index", "~69ndex"},
		{"Index", "Index"},
		{"", "~"},
		{".hidden", "~2Ehidden"},
		{"a/b", "a~2Fb"},
		{"~", "~7E"},
		{"é", "~C3~A9"},
		{"<script>", "~3Cscript~3E"},
	} {
		if got := EncodeName(c.in); got != c.want {
			t.Errorf("EncodeName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	long := strings.Repeat("?", 100)
	e := EncodeName(long)
	if len(e) > 200 || !strings.Contains(e, "~~") || e == EncodeName(long+"?") {
		t.Errorf("long name encodes to %q", e)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9._+~-]+$`).MatchString(e) {
		t.Errorf("long name encodes to unsafe %q", e)
	}
}

func TestSearchKey(t *testing.T) {
	for in, want := range map[string]string{"OpenSSL-3": "openssl_3", "a.b+c_d": "a_b_c_d", "é": "_", "x😀y": "x_y"} {
		if got := searchKey(in); got != want {
			t.Errorf("searchKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	a := render(t, loadCatalog(t), Options{})
	b := render(t, loadCatalog(t), Options{})
	for p, f := range a {
		if !bytes.Equal(f.Data, b[p].Data) {
			t.Errorf("%s differs between two renders", p)
		}
	}
}

func hostileCatalog() *index.Catalog {
	evil := `<script>alert("x")</script>`
	p := func(name string) index.Package {
		return index.Package{
			Name: name, Latest: `1"><img src=x onerror=alert(1)>`, Repos: []string{"r"},
			Description: evil + " & friends", Homepage: `javascript:alert(1)`, License: evil, AttrPath: evil,
			Versions: []index.Version{{
				Version: `1"><img src=x onerror=alert(1)>`, Repos: []string{"r", evil}, Channels: []string{evil, "r/c/</script>"}, Ambiguous: true,
				Paths: []index.PathInfo{{StorePath: "/nix/store/x-" + evil, Output: evil, NarSize: 1, FileSize: 1, Repos: []string{evil}}},
			}},
		}
	}
	return &index.Catalog{
		Generated: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Repos:     []index.RepoInfo{{Name: "r", Type: evil, Description: evil, PublicKey: evil}},
		Channels: []index.ChannelInfo{{Repo: "r", Name: "c", Latest: evil, Snapshots: []index.SnapshotInfo{
			{ID: evil, Flavor: evil, NarHash: evil}}}},
		Packages: []index.Package{p(evil), p("</script><script>alert(2)</script>"), p("ok'\"&<>"), p("../../etc/passwd"), p("a\nb\tc")},
	}
}

// TestHostileNamesAreEscaped renders hostile names and metadata: nothing may come out as
// markup, a javascript: URL, or a path outside the site.
func TestHostileNamesAreEscaped(t *testing.T) {
	files := render(t, hostileCatalog(), Options{BaseURL: `https://x.example/"><script>alert(3)</script>`})
	for p, f := range files {
		if strings.HasPrefix(p, "assets/") {
			continue
		}
		s := string(f.Data)
		for _, bad := range []string{"<script>alert", "</script><script>", "<img", `href="javascript`, `"><script`, `"><img`, "ZgotmplZ"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains unescaped %q", p, bad)
			}
		}
		if strings.HasSuffix(p, ".json") && strings.ContainsAny(s, "<>") {
			t.Errorf("%s contains raw < or >", p)
		}
		if strings.HasPrefix(p, "packages/") && !regexp.MustCompile(`^packages/[A-Za-z0-9._+~-]+\.html$`).MatchString(p) {
			t.Errorf("unsafe package page path %q", p)
		}
	}
	checkLinks(t, files)
}

var (
	attrRE = regexp.MustCompile(`\s(href|src|id|data-manifest)="([^"]*)"`)
)

// checkLinks fails for every internal link (href, src, the search
// manifest, and the links search.js builds from the search files) that
// does not resolve to a rendered file, or to an id on it.
func checkLinks(t *testing.T, files map[string]File) {
	t.Helper()
	ids := map[string]map[string]bool{}
	type link struct{ from, to string }
	var links []link
	for p, f := range files {
		if f.ContentType != ContentTypeHTML {
			continue
		}
		ids[p] = map[string]bool{}
		for _, m := range attrRE.FindAllStringSubmatch(string(f.Data), -1) {
			v := html.UnescapeString(m[2])
			if m[1] == "id" {
				if ids[p][v] {
					t.Errorf("%s: duplicate id %q", p, v)
				}
				ids[p][v] = true
				continue
			}
			links = append(links, link{p, v})
		}
	}
	checked := 0
	for _, l := range links {
		u, err := url.Parse(l.to)
		if err != nil {
			t.Errorf("%s: bad link %q: %v", l.from, l.to, err)
			continue
		}
		if u.Scheme != "" || u.Host != "" {
			continue // external
		}
		target := l.from
		if u.Path != "" {
			target = path.Join(path.Dir(l.from), u.Path)
		}
		if _, ok := files[target]; !ok {
			t.Errorf("%s links to %q: %s is not rendered", l.from, l.to, target)
			continue
		}
		if u.Fragment != "" && files[target].ContentType == ContentTypeHTML && !ids[target][u.Fragment] {
			t.Errorf("%s links to %q: %s has no id %q", l.from, l.to, target, u.Fragment)
		}
		checked++
	}
	if checked == 0 {
		t.Error("no internal links found")
	}
	// The links search.js builds.
	var m searchManifestJSON
	if err := json.Unmarshal(files[searchManifest].Data, &m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	// checkRows: every row of a search file links an existing package page
	// (the row's file name is at fileCol when present, else its name).
	checkRows := func(kind, key, path string, fileCol int) {
		f, ok := files[path]
		if !ok {
			t.Errorf("manifest names %s %s, which is not rendered", kind, key)
			return
		}
		var rows [][]any
		if err := json.Unmarshal(f.Data, &rows); err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			file := r[0].(string)
			if len(r) > fileCol {
				file = r[fileCol].(string)
			}
			if _, ok := files["packages/"+file+".html"]; !ok {
				t.Errorf("%s %s links package %q to missing packages/%s.html", kind, key, r[0], file)
			}
		}
	}
	for k := range m.Shards {
		checkRows("shard", k, "search/s/"+k+".json", 5)
	}
	for c := range m.Names {
		checkRows("names list", c, "search/n/"+c+".json", 3)
	}
}

func TestInternalLinksResolve(t *testing.T) {
	for _, gc := range goldenCases {
		t.Run(gc.name, func(t *testing.T) {
			checkLinks(t, render(t, loadCatalog(t), gc.opts))
		})
	}
}

// TestLargeCatalogPaginatesAndShards checks pagination, the letter index and the shard sizes
// on a few thousand packages.
func TestLargeCatalogPaginatesAndShards(t *testing.T) {
	cat := SyntheticCatalog(2500, 1)
	files := render(t, cat, Options{PageSize: 400, ShardSize: 150})
	checkLinks(t, files)
	pages := 0
	for p := range files {
		if p == "packages/index.html" || strings.HasPrefix(p, "packages/~page") {
			pages++
		}
	}
	if want := (len(cat.Packages) + 399) / 400; pages != want {
		t.Errorf("%d list pages, want %d", pages, want)
	}
	var m searchManifestJSON
	if err := json.Unmarshal(files[searchManifest].Data, &m); err != nil {
		t.Fatal(err)
	}
	total := 0
	for k, v := range m.Shards {
		n := int(v[0].(float64))
		total += n
		if n > 150 && len(k) < maxShardDepth {
			t.Errorf("shard %s holds %d packages", k, n)
		}
	}
	if total != len(cat.Packages) || m.Packages != len(cat.Packages) {
		t.Errorf("shards hold %d packages, manifest says %d, want %d", total, m.Packages, len(cat.Packages))
	}
	// Every package is in exactly the shard its key leads to.
	split := map[string]bool{}
	for _, s := range m.Split {
		split[s] = true
	}
	for _, name := range []string{cat.Packages[0].Name, cat.Packages[len(cat.Packages)/2].Name, cat.Packages[len(cat.Packages)-1].Name} {
		k := searchKey(name)
		shard := k
		for d := 1; d <= len(k); d++ {
			if !split[k[:d]] {
				shard = k[:d]
				break
			}
		}
		if !strings.Contains(string(files["search/s/"+shard+".json"].Data), `"`+name+`"`) {
			t.Errorf("%s is not in shard %s", name, shard)
		}
	}
	// The list pages stay small.
	for p, f := range files {
		if strings.HasPrefix(p, "packages/~page") && len(f.Data) > 400*400 {
			t.Errorf("%s is %d bytes", p, len(f.Data))
		}
	}
}

func TestLateFilesComeLast(t *testing.T) {
	files, err := Render(loadCatalog(t), Options{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	var late []string
	seenLate := false
	for _, f := range files {
		if f.Late() {
			late = append(late, f.Path)
			seenLate = true
		} else if seenLate {
			t.Errorf("%s comes after a late file", f.Path)
		}
	}
	sort.Strings(late)
	want := []string{"index.html", "packages/index.html", "packages/~page2.html", "packages/~page3.html", "search/manifest.json"}
	if strings.Join(late, " ") != strings.Join(want, " ") {
		t.Errorf("late files %v, want %v", late, want)
	}
}

func TestDuplicatePackageNameRefused(t *testing.T) {
	cat := loadCatalog(t)
	cat.Packages = append(cat.Packages, cat.Packages[0])
	if _, err := Render(cat, Options{}); err == nil {
		t.Error("a duplicate package name rendered")
	}
}
