package server_test

import (
	"archive/tar"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/server"
)

// TestRepositoryNameOracle: a request that may not read a repository
// cannot tell it from one that does not exist. For each principal that
// may not read the private repository "priv", every request to it gets
// exactly (status, headers but Date, body with the name swapped) what the
// same request to the unknown "nope" gets. A reader of priv gets its
// answers; a public repository answers everyone.
func TestRepositoryNameOracle(t *testing.T) {
	o := &server.Options{
		Repos: []server.Repo{
			{Name: "priv", Key: repoKey},
			{Name: "publ", Key: repoKey, Public: true},
			{Name: "othr", Key: otherKey},
		},
		Tokens: []server.Token{
			{Name: "privreader", SHA256: server.HashToken(readSecret), Read: []string{"priv"}},
			{Name: "stranger", SHA256: server.HashToken(otherSecret), Read: []string{"othr"}, Write: []string{"othr"}},
		},
	}
	e := newEnv(t, nil, o)
	authFixture(t, e.st) // fills r/
	for _, repo := range []string{"priv", "publ"} {
		copyRepo(t, e.st, "r", repo)
	}
	privReader := cred{name: "privreader", user: "nix", pass: readSecret}
	bearer := cred{name: "bearer", raw: "Bearer " + readSecret}
	requests := []struct {
		method, rel string
		present     bool // a reader of priv gets 200
	}{
		{http.MethodGet, "nix-cache-info", true},
		{http.MethodHead, dataHash + ".narinfo", true},
		{http.MethodGet, dataHash + ".narinfo", true},
		{http.MethodGet, helloHash + ".narinfo", false},
		{http.MethodGet, dataNar, true},
		{http.MethodGet, "log/" + dataDrv, true},
		{http.MethodGet, "channels/c", false},
		{http.MethodGet, "no-such-object", false},
		{http.MethodPut, "nix-cache-info", false},
		{http.MethodPut, helloNar, false},
		{http.MethodPost, "nix-cache-info", false},
	}
	// What a principal that may not read priv gets, whatever the request.
	hidden := map[string]int{
		anonymous.name: http.StatusUnauthorized,
		wrongPass.name: http.StatusForbidden,
		stranger.name:  http.StatusNotFound,
		bearer.name:    http.StatusUnauthorized,
	}
	for _, p := range []cred{anonymous, wrongPass, stranger, bearer, privReader} {
		for _, q := range requests {
			what := p.name + " " + q.method + " " + q.rel
			var body []byte
			if q.method == http.MethodPut {
				body = []byte("StoreDir: /nix/store\n")
			}
			unknown := e.do(q.method, "/api/nix/nope/"+q.rel, p, body, nil)
			private := e.do(q.method, "/api/nix/priv/"+q.rel, p, body, nil)
			public := e.do(q.method, "/api/nix/publ/"+q.rel, p, body, nil)
			if p.name == privReader.name {
				if unknown.status != http.StatusNotFound || q.present && private.status != http.StatusOK {
					t.Errorf("%s: unknown %s, private %s; want 404 and the reader's own answer", what, unknown, private)
				}
				continue
			}
			if want := hidden[p.name]; unknown.status != want {
				t.Errorf("%s: unknown repository answered %s, want %d", what, unknown, want)
			}
			swap := func(s string) string { return strings.ReplaceAll(s, "priv", "nope") }
			if private.status != unknown.status || swap(string(private.body)) != string(unknown.body) {
				t.Errorf("%s: private %s, unknown %s: they must not differ", what, private, unknown)
			}
			for _, k := range headerNames(private.header, unknown.header) {
				if k == "Date" {
					continue
				}
				if pv, uv := swap(strings.Join(private.header.Values(k), ", ")), strings.Join(unknown.header.Values(k), ", "); pv != uv {
					t.Errorf("%s: header %s: private %q, unknown %q", what, k, pv, uv)
				}
			}
			if p.anon && q.method != http.MethodPut && q.method != http.MethodPost && public.status == http.StatusUnauthorized {
				t.Errorf("%s: the public repository refused an anonymous read: %s", what, public)
			}
		}
	}
}

func headerNames(hs ...http.Header) []string {
	seen := map[string]bool{}
	var names []string
	for _, h := range hs {
		for k := range h {
			if !seen[k] {
				seen[k] = true
				names = append(names, k)
			}
		}
	}
	return names
}

// copyRepo copies every object of repository from into repository to.
func copyRepo(t *testing.T, st *store.Store, from, to string) {
	t.Helper()
	ctx := context.Background()
	for k := range snapshot(t, st) {
		if rel, ok := strings.CutPrefix(k, from+"/"); ok {
			b, err := st.Get(ctx, k)
			if err == nil {
				err = st.Put(ctx, to+"/"+rel, b, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestChannelRedirectIgnoresHost: channel redirects never echo the Host
// header: the Location is relative (and resolves to the snapshot), the
// Link names the configured public URL or is left out, and the release
// page names no host but the public URL.
func TestChannelRedirectIgnoresHost(t *testing.T) {
	const evil = "evil.example"
	for _, public := range []string{"", "https://nix.example.org"} {
		hs := channelServerWith(t, public)
		if status, body := putChannel(t, hs.URL+"/api/nix/r/channels/c/nixpkgs/1.0", tinyChannel(t, "c")); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for _, tc := range []struct{ path, target string }{
			{"/api/nix/r/channels/c", "/api/nix/r/channels/c/nixpkgs/1.0"},
			{"/api/nix/r/channels/c/nixexprs.tar.xz", "/api/nix/r/channels/c/nixpkgs/1.0/nixexprs.tar.xz"},
			{"/api/nix/r/channels/c/nixpkgs/1.0", ""},
		} {
			req, _ := http.NewRequest(http.MethodGet, hs.URL+tc.path, nil)
			req.Host = evil
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			body.ReadFrom(resp.Body)
			resp.Body.Close()
			what := public + " " + tc.path
			for k, vs := range resp.Header {
				if strings.Contains(strings.Join(vs, " "), evil) {
					t.Errorf("%s: header %s echoes the Host: %q", what, k, vs)
				}
			}
			if strings.Contains(body.String(), evil) {
				t.Errorf("%s: the body echoes the Host", what)
			}
			if tc.target == "" {
				if resp.StatusCode != 200 || public != "" && !strings.Contains(body.String(), public+"/api/nix/r/channels/c/nixpkgs/1.0/nixexprs.tar.xz") {
					t.Errorf("%s: release page %d does not name the public tarball URL:\n%s", what, resp.StatusCode, body.String())
				}
				continue
			}
			loc, err := resp.Location()
			if resp.StatusCode != http.StatusFound || err != nil || loc.Path != tc.target || loc.Host != req.URL.Host {
				t.Errorf("%s: %d Location %v (%v), want %s on the requested host", what, resp.StatusCode, loc, err, tc.target)
			}
			wantLink := ""
			if public != "" {
				wantLink = "<" + public + "/api/nix/r/channels/c/nixpkgs/1.0/nixexprs.tar.xz>; rel=\"immutable\""
			}
			if got := resp.Header.Get("Link"); got != wantLink {
				t.Errorf("%s: Link %q, want %q", what, got, wantLink)
			}
		}
	}
}

func channelServerWith(t *testing.T, publicURL string) *httptest.Server {
	t.Helper()
	st := memStore(t)
	srv, err := server.New(st, &server.Options{
		Repos:     []server.Repo{{Name: "r", Public: true}},
		Tokens:    []server.Token{{Name: "w", SHA256: server.HashToken("secret"), Write: []string{"r"}}},
		PublicURL: publicURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	return serveFast(t, srv)
}

// TestChannelUploadErrorNamesNoServerPath: a channel tarball that fails to
// unpack is refused with a reason that names the archive entry, not the
// server's temporary folder.
func TestChannelUploadErrorNamesNoServerPath(t *testing.T) {
	hs, st := channelServer(t)
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	def := "{ ... }: { }\n"
	tw.WriteHeader(&tar.Header{Name: "c/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "c/default.nix", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(def))})
	tw.Write([]byte(def))
	// A file, then an entry below it as if it were a folder.
	tw.WriteHeader(&tar.Header{Name: "c/a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.WriteHeader(&tar.Header{Name: "c/a/b", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("y"))
	tw.Close()
	var txz bytes.Buffer
	w, _ := xz.NewWriter(&txz)
	w.Write(tb.Bytes())
	w.Close()
	status, body := putChannel(t, hs.URL+"/api/nix/r/channels/c/nixpkgs/1", txz.Bytes())
	t.Logf("%d %q", status, body)
	if status < 400 || status >= 500 {
		t.Errorf("tarball with an entry below a file: %d %q, want a 4xx", status, body)
	}
	for _, leak := range []string{os.TempDir() + "/", "nixrepo-unpack"} {
		if strings.Contains(body, leak) {
			t.Errorf("the reason names a server path (%s): %q", leak, body)
		}
	}
	if k := channelKeys(t, st); len(k) != 0 {
		t.Errorf("refused upload left %v", k)
	}
}

// TestStoredContentNotSniffed: every response that serves stored bytes
// (and every other one) says X-Content-Type-Options: nosniff, on the read
// fast path and through net/http, for memory and folder buckets.
func TestStoredContentNotSniffed(t *testing.T) {
	for _, kind := range []string{"mem", "file"} {
		st := memStore(t)
		if kind == "file" {
			st = fileStore(t)
		}
		o := defaultOptions()
		o.Repos[0].Public = true
		e := newEnv(t, st, o)
		authFixture(t, e.st)
		if status, body := putChannelTo(t, e, "/api/nix/r/channels/c/nixpkgs/1.0", tinyChannel(t, "c")); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
		for _, rel := range []string{
			"nix-cache-info", dataHash + ".narinfo", helloHash + ".narinfo", dataNar, helloNar, dataHash + ".ls",
			"log/" + dataDrv, realisationA, "channels/c", "channels/c/channel.json", "channels/c/nixpkgs/1.0",
			"channels/c/nixpkgs/1.0/nixexprs.tar.xz", "channels/c/nixexprs.tar.xz", "no-such-object",
		} {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				for _, c := range []cred{anonymous, reader} {
					r := e.do(method, "/api/nix/r/"+rel, c, nil, nil)
					if got := r.header.Values("X-Content-Type-Options"); len(got) != 1 || got[0] != "nosniff" {
						t.Errorf("%s %s %s %s: %d with X-Content-Type-Options %q, want nosniff", kind, c.name, method, rel, r.status, got)
					}
				}
			}
		}
	}
}

func putChannelTo(t *testing.T, e *env, path string, body []byte) (int, string) {
	t.Helper()
	r := e.put(path, writer, body)
	return r.status, string(r.body)
}
