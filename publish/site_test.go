package publish

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/memblob"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/site"
)

func siteCatalog(names ...string) *index.Catalog {
	cat := &index.Catalog{
		Generated: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
		Repos:     []index.RepoInfo{{Name: "nix-local", Type: "local", Priority: 30, PublicKey: "nix-local-1:6q1Kz3WbqHFx0m2lHPNa3o8CWQKZ5nqkqLNlBOa0bFY=", Paths: len(names)}},
	}
	sort.Strings(names)
	for _, n := range names {
		cat.Packages = append(cat.Packages, index.Package{
			Name: n, Latest: "1.0", Repos: []string{"nix-local"},
			Versions: []index.Version{{Version: "1.0", Repos: []string{"nix-local"}, Paths: []index.PathInfo{{
				StorePath: "/nix/store/0c9w0lp3wi8hmyyk8h5gg2hqvkljmw6j-" + n + "-1.0", Output: "out", NarSize: 1000, FileSize: 500, Repos: []string{"nix-local"},
			}}}},
		})
	}
	cat.Stats.Packages = len(names)
	return cat
}

func siteKeys(t *testing.T, st *store.Store) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	if err := st.List(context.Background(), "", false, func(o store.Object) error {
		keys[o.Key] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestSiteWritesChangesAndDeletesStale(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, "file://"+dir, "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Something that is not the site's.
	if err := st.Put(ctx, "nix-local/nix-cache-info", []byte("StoreDir: /nix/store\n"), nil); err != nil {
		t.Fatal(err)
	}
	opts := site.Options{BaseURL: "https://cache.example.org"}

	cat := siteCatalog("hello", "index", "weird?name=1", "zlib")
	files, err := site.Render(cat, opts)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Site(ctx, st, cat, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(files) {
		t.Errorf("first publish wrote %d objects, want %d", n, len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, "_site", filepath.FromSlash(f.Path)))
		if err != nil {
			t.Errorf("%s: %v", f.Path, err)
		} else if string(b) != string(f.Data) {
			t.Errorf("%s differs from the rendered file", f.Path)
		}
	}

	// Unchanged: nothing written.
	if n, err := Site(ctx, st, cat, opts); err != nil || n != 0 {
		t.Errorf("publishing again wrote %d objects (%v), want 0", n, err)
	}

	// A stray object under _site/ and a package that left the catalog are
	// deleted; what is not the site's stays.
	if err := st.Put(ctx, "_site/search/s/old.json", []byte("[]"), nil); err != nil {
		t.Fatal(err)
	}
	cat2 := siteCatalog("hello", "index", "weird?name=1")
	cat2.Packages[0].Description = "changed"
	n, err = Site(ctx, st, cat2, opts)
	if err != nil {
		t.Fatal(err)
	}
	keys := siteKeys(t, st)
	for _, gone := range []string{"_site/packages/zlib.html", "_site/search/s/old.json", "_site/search/s/z.json", "_site/search/n/z.json"} {
		if keys[gone] {
			t.Errorf("%s was not deleted", gone)
		}
	}
	if !keys["nix-local/nix-cache-info"] {
		t.Error("publishing the site deleted nix-local/nix-cache-info")
	}
	files2, _ := site.Render(cat2, opts)
	want := 0
	for _, f := range files2 {
		if !keys["_site/"+f.Path] {
			t.Errorf("%s missing", f.Path)
		}
	}
	for _, f := range files2 {
		for _, g := range files {
			if g.Path == f.Path && string(g.Data) != string(f.Data) {
				want++
			}
		}
	}
	want += 4 // the deletions
	if n != want {
		t.Errorf("second publish changed %d objects, want %d", n, want)
	}
	if keys["_site/packages/hello.html"] {
		b, _ := st.Get(ctx, "_site/packages/hello.html")
		if !strings.Contains(string(b), "changed") {
			t.Error("the changed package page was not rewritten")
		}
	}

	// The bucket served by a plain static file server is the site.
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	for _, p := range []string{"/_site/index.html", "/_site/packages/~69ndex.html", "/_site/packages/weird~3Fname~3D1.html", "/_site/search/manifest.json", "/_site/assets/search.js"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %s", p, resp.Status)
		}
	}
}

func TestSiteObjectsCarryContentTypes(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://", "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := Site(ctx, st, siteCatalog("hello"), site.Options{}); err != nil {
		t.Fatal(err)
	}
	for key, ct := range map[string]string{
		"_site/index.html":           site.ContentTypeHTML,
		"_site/packages/hello.html":  site.ContentTypeHTML,
		"_site/assets/site.css":      site.ContentTypeCSS,
		"_site/assets/search.js":     site.ContentTypeJS,
		"_site/search/manifest.json": site.ContentTypeJSON,
	} {
		a, err := st.Stat(ctx, key)
		if err != nil {
			t.Errorf("%s: %v", key, err)
			continue
		}
		if a.ContentType != ct {
			t.Errorf("%s has content type %q, want %q", key, a.ContentType, ct)
		}
	}
}

func TestSiteFailsWhenCanceled(t *testing.T) {
	st, err := store.Open(context.Background(), "mem://", "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Site(ctx, st, siteCatalog("hello", "zlib"), site.Options{}); err == nil {
		t.Error("a canceled publish succeeded")
	}
}
