package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/search"
	"github.com/nixrepo/nixrepo/server"
)

// putPath writes a narinfo for a store path called name into each repo
// and returns its hash part.
func putPath(t *testing.T, st *store.Store, name string, repos ...string) string {
	t.Helper()
	d := sha256.Sum256([]byte(name))
	sp, err := nix.ParseStorePath(nix.StoreDir + "/" + nix.EncodeNix32(d[:20]) + "-" + name)
	if err != nil {
		t.Fatal(err)
	}
	ni := nix.NarInfo{StorePath: sp, Compression: "none", FileHash: nix.SHA256(d[:]), FileSize: 10, NarHash: nix.SHA256(d[:]), NarSize: 10}
	ni.URL = store.NarFile(ni.FileHash, "none")
	for _, r := range repos {
		if err := st.Put(context.Background(), r+"/"+sp.HashPart()+".narinfo", ni.Bytes(), nil); err != nil {
			t.Fatal(err)
		}
	}
	return sp.HashPart()
}

const (
	allOnlySecret = "nxr_reads-only-the-virtual-repository"
	fullSecret    = "nxr_reads-the-virtual-repository-and-secret"
)

// virtualSearchEnv: a public repository pub, a private one secret, and a
// virtual repository all over both that is itself (mis)configured public,
// materialised as publish does (both members' paths under all/), with a
// catalog and search index; tokens that read all only, and all with
// secret.
func virtualSearchEnv(t *testing.T, opts server.Options) (*env, string) {
	t.Helper()
	st := memStore(t)
	putPath(t, st, "hello-2.12", "pub", "all")
	classified := putPath(t, st, "classified-1.0", "secret", "all")
	dir := t.TempDir()
	repos := []index.RepoInfo{{Name: "pub", Type: "local"}, {Name: "secret", Type: "local"}, {Name: "all", Type: "virtual"}}
	if _, err := index.Build(context.Background(), st, repos, &index.BuildOptions{IndexDir: dir}); err != nil {
		t.Fatal(err)
	}
	eng := search.NewEngine(st, dir)
	t.Cleanup(func() { eng.Close() })
	opts.Repos = []server.Repo{{Name: "pub", Public: true}, {Name: "secret"}, {Name: "all", Public: true, Members: []string{"pub", "secret"}}}
	opts.Tokens = []server.Token{
		{Name: "allonly", SHA256: server.HashToken(allOnlySecret), Read: []string{"all"}},
		{Name: "full", SHA256: server.HashToken(fullSecret), Read: []string{"all", "secret"}},
	}
	opts.Search = eng
	return newEnv(t, st, &opts), classified
}

// TestVirtualRepositoryNeedsEveryMemberReadable: a public virtual
// repository over a private member serves nothing to an anonymous reader,
// nor to a token granted only the virtual repository, through the binary
// cache routes and the search API alike.
func TestVirtualRepositoryNeedsEveryMemberReadable(t *testing.T) {
	e, classified := virtualSearchEnv(t, server.Options{})
	allOnly, full := cred{name: "allonly", user: "nix", pass: allOnlySecret}, cred{name: "full", user: "nix", pass: fullSecret}
	for _, tc := range []struct {
		path   string
		c      cred
		status int
		reason string
	}{
		{"/api/nix/all/" + classified + ".narinfo", anonymous, 401, "virtual repository all serves from repositories that are not public"},
		{"/api/nix/all/nix-cache-info", anonymous, 401, "virtual repository all serves from repositories that are not public"},
		{"/api/nix/all/" + classified + ".narinfo", allOnly, 403, "token allonly may not read every repository virtual repository all serves from"},
		{"/api/nix/all/" + classified + ".narinfo", full, 200, ""},
		{"/api/nix/pub/nix-cache-info", anonymous, 200, ""},
		{"/api/search?q=hello&repo=all", anonymous, 401, "virtual repository all serves from repositories that are not public"},
		{"/api/search?q=hello&repo=all", allOnly, 403, "may not read every repository virtual repository all serves from"},
	} {
		r := e.get(tc.path, tc.c)
		if r.status != tc.status || !strings.Contains(string(r.body), tc.reason) {
			t.Errorf("GET %s as %v = %s, want %d %q", tc.path, tc.c, r, tc.status, tc.reason)
		}
	}
	searchRepos := func(q string, c cred) map[string][]string {
		t.Helper()
		r := e.get("/api/search?q="+q, c)
		if r.status != 200 {
			t.Fatalf("search %s: %s", q, r)
		}
		var resp search.Response
		if err := json.Unmarshal(r.body, &resp); err != nil {
			t.Fatal(err)
		}
		out := map[string][]string{}
		for _, res := range resp.Results {
			out[res.Name] = res.Repos
		}
		return out
	}
	for _, c := range []cred{anonymous, allOnly} {
		if got := searchRepos("classified", c); len(got) != 0 {
			t.Errorf("search classified as %v = %v, want nothing", c, got)
		}
		if got := searchRepos("hello", c); !slices.Equal(got["hello"], []string{"pub"}) {
			t.Errorf("search hello as %v: repos %v, want [pub] (not all)", c, got["hello"])
		}
		if r := e.get("/api/packages/classified", c); r.status != 404 {
			t.Errorf("package classified as %v = %s, want 404", c, r)
		}
		if r := e.get("/api/packages/hello", c); r.status != 200 || strings.Contains(string(r.body), `"all"`) {
			t.Errorf("package hello as %v = %s, want 200 without all", c, r)
		}
	}
	if got := searchRepos("classified", full); !slices.Equal(got["classified"], []string{"all", "secret"}) {
		t.Errorf("search classified with read on all and secret = %v", got)
	}
}

// TestSearchAPIRefusesOversizedInput: every reader-controlled input of the
// search API is bounded, with a 400 naming the bound (a 3000-character
// query used to cost hundreds of MB and end in a 500).
func TestSearchAPIRefusesOversizedInput(t *testing.T) {
	e, _ := virtualSearchEnv(t, server.Options{})
	long := strings.Repeat("a", 3000)
	for _, tc := range []struct {
		path, reason string
	}{
		{"/api/search?q=" + long, "search query is 3000 characters long; the limit is 256 characters ([search] max_query_length)"},
		{"/api/search?q=" + url.QueryEscape(strings.Repeat("hellp ", 500)), "the limit is 256 characters"},
		{"/api/search?q=" + url.QueryEscape(strings.Repeat("ab ", 17)), "search query has 17 words; the limit is 16 words ([search] max_terms)"},
		{"/api/search?q=hello&repo=" + strings.Repeat("r", 100), "repo= is 100 bytes long; repository names have at most 63 characters"},
		{"/api/search?q=hello&q=world", "q= is given 2 times; give it once"},
		{"/api/search?q=hello&repo=pub&repo=all", "repo= is given 2 times"},
		{"/api/search?q=hello&limit=1001", "limit must be a number from 1 to 1000"},
		{"/api/search?q=hello&limit=" + strings.Repeat("9", 100), "limit must be a number from 1 to 1000"},
		{"/api/packages/" + strings.Repeat("p", 212), "package name is 212 bytes long; the limit is 211"},
	} {
		for _, c := range []cred{anonymous, {name: "full", user: "nix", pass: fullSecret}} {
			r := e.get(tc.path, c)
			if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), tc.reason) {
				t.Errorf("GET %.60s… as %v = %.200s, want 400 %q", tc.path, c, r, tc.reason)
			}
		}
	}
	for _, path := range []string{"/api/search?q=" + strings.Repeat("a", 256), "/api/search?q=" + url.QueryEscape(strings.Repeat("ab ", 16)), "/api/packages/" + strings.Repeat("p", 211)} {
		if r := e.get(path, anonymous); r.status != 200 && r.status != 404 {
			t.Errorf("GET %.60s… = %s, want 200 or 404 (within the limits)", path, r)
		}
	}

	// The limits are the server's options.
	e, _ = virtualSearchEnv(t, server.Options{SearchLimits: search.Limits{MaxQueryLength: 4, MaxWords: 1}})
	for _, tc := range []struct{ q, reason string }{
		{"hello", "search query is 5 characters long; the limit is 4 characters"},
		{"a+b", "search query has 2 words; the limit is 1 word"},
	} {
		if r := e.get("/api/search?q="+url.QueryEscape(tc.q), anonymous); r.status != 400 || !strings.Contains(string(r.body), tc.reason) {
			t.Errorf("search %q with tight limits = %s, want 400 %q", tc.q, r, tc.reason)
		}
	}
	if r := e.get("/api/search?q=hell", anonymous); r.status != 200 {
		t.Errorf("search hell with max_query_length 4 = %s, want 200", r)
	}
}

// TestChannelPutToVirtualRepositoryRefused: a virtual repository takes no
// channel snapshot (it would live only in the virtual prefix): 405 with
// the reason, and nothing stored.
func TestChannelPutToVirtualRepositoryRefused(t *testing.T) {
	st := memStore(t)
	srv, err := server.New(st, &server.Options{
		Repos:  []server.Repo{{Name: "r", Public: true}, {Name: "all", Public: true, Members: []string{"r"}}},
		Tokens: []server.Token{{Name: "w", SHA256: server.HashToken("secret"), Write: []string{"*"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := serveFast(t, srv)
	for _, rel := range []string{"channels/team/nixpkgs/1.0", "channels/team/nixpkgs/1.0/nixexprs.tar.xz", "channels/team/nixpkgs/1.0/git-revision"} {
		status, body := putChannel(t, hs.URL+"/api/nix/all/"+rel, tinyChannel(t, "team"))
		checkPutStatus(t, rel, status)
		if status != http.StatusMethodNotAllowed || !strings.Contains(body, "repository all is a virtual repository: push channels to a local repository") {
			t.Errorf("PUT all/%s = %d %q, want 405 with the reason", rel, status, body)
		}
	}
	var keys []string
	st.List(context.Background(), "all/", false, func(o store.Object) error {
		keys = append(keys, o.Key)
		return nil
	})
	if len(keys) != 0 {
		t.Errorf("a refused channel upload stored %v", keys)
	}
	if status, body := putChannel(t, hs.URL+"/api/nix/r/channels/team/nixpkgs/1.0", tinyChannel(t, "team")); status != 200 {
		t.Errorf("PUT r/channels/team/nixpkgs/1.0 = %d %q", status, body)
	}
}
