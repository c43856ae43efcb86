package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	_ "gocloud.dev/blob/memblob"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/search"
	"github.com/nixrepo/nixrepo/server"
)

// ---------------------------------------------------------------------------
// Engine and HTTP API over a bucket

func addNarInfo(t *testing.T, st *store.Store, repo, name string) {
	t.Helper()
	d := sha256.Sum256([]byte(name))
	sp, err := nix.ParseStorePath(nix.StoreDir + "/" + nix.EncodeNix32(d[:20]) + "-" + name)
	if err != nil {
		t.Fatal(err)
	}
	ni := nix.NarInfo{StorePath: sp, Compression: "none", FileHash: nix.SHA256(d[:]), FileSize: 10, NarHash: nix.SHA256(d[:]), NarSize: 10}
	ni.URL = store.NarFile(ni.FileHash, "none")
	if err := st.Put(context.Background(), repo+"/"+sp.HashPart()+".narinfo", ni.Bytes(), nil); err != nil {
		t.Fatal(err)
	}
}

func getJSON(t *testing.T, h http.Handler, url, token string, v any) int {
	t.Helper()
	req := httptest.NewRequest("GET", url, nil)
	if token != "" {
		req.SetBasicAuth("nix", token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code == http.StatusOK && v != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
			t.Fatalf("%s: %v: %s", url, err, rec.Body)
		}
	}
	return rec.Code
}

func TestSearchAPIAnswersByRepositoryAccess(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://", "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, n := range []string{"hello-2.12", "hello-2.10", "zlib-1.3"} {
		addNarInfo(t, st, "pub", n)
	}
	addNarInfo(t, st, "secret", "hello-2.13")
	addNarInfo(t, st, "secret", "classified-1.0")
	repos := []index.RepoInfo{{Name: "pub"}, {Name: "secret"}}
	dir := t.TempDir()
	if _, err := index.Build(ctx, st, repos, &index.BuildOptions{IndexDir: dir}); err != nil {
		t.Fatal(err)
	}
	token, sum, _ := server.NewToken()
	var h [32]byte
	fmt.Sscanf(sum, "%x", &h)
	srv, err := server.New(st, &server.Options{
		Repos:  []server.Repo{{Name: "pub", Public: true}, {Name: "secret"}},
		Tokens: []server.Token{{Name: "ci", SHA256: server.HashToken(token), Read: []string{"secret"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	eng := search.NewEngine(st, dir)
	defer eng.Close()
	api := srv.SearchAPI(eng)

	var resp search.Response
	if code := getJSON(t, api, "/api/search?q=hello", "", &resp); code != 200 {
		t.Fatalf("anonymous search: %d", code)
	}
	if len(resp.Results) != 1 || resp.Results[0].Latest != "2.12" || !slices.Equal(resp.Results[0].Versions, []string{"2.12", "2.10"}) {
		t.Errorf("anonymous hello = %+v", resp.Results)
	}
	if code := getJSON(t, api, "/api/search?q=classified", "", &resp); code != 200 || len(resp.Results) != 0 {
		t.Errorf("anonymous sees a private package: %d %+v", code, resp.Results)
	}
	if code := getJSON(t, api, "/api/search?q=hello", token, &resp); code != 200 || resp.Results[0].Latest != "2.13" || resp.Results[0].NumVersions != 3 {
		t.Errorf("token hello = %d %+v", code, resp.Results)
	}
	if code := getJSON(t, api, "/api/search?q=hello&repo=secret", token, &resp); code != 200 || resp.Results[0].Latest != "2.13" || resp.Results[0].NumVersions != 1 {
		t.Errorf("token hello in secret = %d %+v", code, resp.Results)
	}
	var p index.Package
	if code := getJSON(t, api, "/api/packages/hello", "", &p); code != 200 || p.Latest != "2.12" || len(p.Versions) != 2 || len(p.Versions[0].Paths) != 1 {
		t.Errorf("anonymous package = %d %+v", code, p)
	}
	if code := getJSON(t, api, "/api/packages/hello", token, &p); code != 200 || p.Latest != "2.13" {
		t.Errorf("token package = %d %+v", code, p)
	}
	for _, c := range []struct {
		url, token string
		code       int
	}{
		{"/api/search?q=hello&repo=secret", "", 401},
		// An unknown repository answers as a private one does (the
		// server does not tell which names exist), with a token too.
		{"/api/search?q=hello&repo=nope", "", 401},
		{"/api/search?q=hello&repo=nope", token, 404},
		{"/api/search?q=hello", "wrong", 403},
		{"/api/search", "", 400},
		{"/api/search?q=x&limit=0", "", 400},
		{"/api/packages/classified", "", 404},
		{"/api/packages/classified", token, 200},
		{"/api/packages/nope", token, 404},
		{"/api/other", "", 404},
	} {
		if code := getJSON(t, api, c.url, c.token, nil); code != c.code {
			t.Errorf("GET %s (token %q) = %d, want %d", c.url, c.token, code, c.code)
		}
	}
	// The engine follows index updates made by another writer.
	addNarInfo(t, st, "pub", "hello-2.14")
	if _, err := index.Update(ctx, st, repos, &index.BuildOptions{IndexDir: dir}); err != nil {
		t.Fatal(err)
	}
	eng.Refresh()
	if code := getJSON(t, api, "/api/search?q=hello", "", &resp); code != 200 || resp.Results[0].Latest != "2.14" {
		t.Errorf("after update = %d %+v", code, resp.Results)
	}
	// Real HTTP, for the content type.
	ts := httptest.NewServer(api)
	defer ts.Close()
	r, err := http.Get(ts.URL + "/api/search?q=zlib")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(body), `"name":"zlib"`) {
		t.Errorf("GET /api/search?q=zlib: %s %s", r.Header.Get("Content-Type"), body)
	}
}

func TestSearchAPIWithoutCatalogIsUnavailable(t *testing.T) {
	st, err := store.Open(context.Background(), "mem://", "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := server.New(st, &server.Options{Repos: []server.Repo{{Name: "pub", Public: true}}})
	if err != nil {
		t.Fatal(err)
	}
	eng := search.NewEngine(st, t.TempDir())
	defer eng.Close()
	if code := getJSON(t, srv.SearchAPI(eng), "/api/search?q=hello", "", nil); code != http.StatusServiceUnavailable {
		t.Errorf("search without a catalog = %d, want 503", code)
	}
	if code := getJSON(t, srv.SearchAPI(eng), "/api/packages/hello", "", nil); code != http.StatusNotFound {
		t.Errorf("package without a catalog = %d, want 404", code)
	}
}
