package server_test

import (
	"context"
	"crypto/rand"
	"slices"
	"testing"

	_ "gocloud.dev/blob/fileblob"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/nixtest"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/search"
	"github.com/nixrepo/nixrepo/server"
)

// greetExpr builds greet-1.2, greet-1.10 and greet-1.9 with real Nix.
const greetExpr = `let mk = v: derivation {
  name = "greet-${v}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo ${v} > $out" ];
}; in [ (mk "1.2") (mk "1.10") (mk "1.9") ]`

// TestSearchAPIFindsNixBuiltVersions: versions of one package built by Nix, uploaded with
// nix copy and ingested, are all found, with the right latest version, by
// Search and by the HTTP API.
func TestSearchAPIFindsNixBuiltVersions(t *testing.T) {
	env := nixtest.Require(t)
	ctx := context.Background()
	paths := env.Build(t, greetExpr)
	if len(paths) != 3 {
		t.Fatalf("nix-build printed %v", paths)
	}
	staging := t.TempDir()
	env.CopyTo(t, "file://"+staging, paths...)

	src, err := store.Open(ctx, "file://"+staging, "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	st, err := store.Open(ctx, "file://"+t.TempDir(), "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, err := nix.GenerateKey("e2e-1", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ingest.Run(ctx, st.Repo("main"), src.Root(), &ingest.Options{Key: key, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accepted != 3 {
		t.Fatalf("ingest accepted %d paths: %+v", rep.Accepted, rep)
	}

	dir := t.TempDir()
	cat, err := index.Build(ctx, st, []index.RepoInfo{{Name: "main", Type: "local"}}, &index.BuildOptions{IndexDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Packages) != 1 || cat.Packages[0].Name != "greet" || cat.Packages[0].Latest != "1.10" {
		t.Fatalf("catalog = %+v", cat.Packages)
	}
	for _, v := range cat.Packages[0].Versions {
		if len(v.Paths) != 1 || !slices.Contains(paths, v.Paths[0].StorePath) || v.Paths[0].NarSize == 0 || v.Paths[0].Uploaded.IsZero() {
			t.Errorf("version %s = %+v", v.Version, v)
		}
	}

	want := []string{"1.10", "1.9", "1.2"}
	x, err := index.OpenIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := search.Search(x, "greet", nil)
	x.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Latest != "1.10" || !slices.Equal(res[0].Versions, want) || res[0].Match != search.MatchExact {
		t.Errorf("Search(greet) = %+v", res)
	}

	srv, err := server.New(st, &server.Options{Repos: []server.Repo{{Name: "main", Public: true}}})
	if err != nil {
		t.Fatal(err)
	}
	eng := search.NewEngine(st, dir)
	defer eng.Close()
	var resp search.Response
	if code := getJSON(t, srv.SearchAPI(eng), "/api/search?q=gre", "", &resp); code != 200 {
		t.Fatalf("/api/search: %d", code)
	}
	if len(resp.Results) != 1 || resp.Results[0].Latest != "1.10" || !slices.Equal(resp.Results[0].Versions, want) {
		t.Errorf("/api/search?q=gre = %+v", resp)
	}
	var p index.Package
	if code := getJSON(t, srv.SearchAPI(eng), "/api/packages/greet", "", &p); code != 200 || p.Latest != "1.10" || len(p.Versions) != 3 {
		t.Errorf("/api/packages/greet = %d %+v", code, p)
	}
}
