package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "gocloud.dev/blob/memblob"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/internal/upstreamtest"
	"github.com/nixrepo/nixrepo/server"
)

const (
	upDataHash  = "8yhfprxp9fym8hjpsb3z3hzsfbrk1z42" // greeting-data, no references
	upLibHash   = "73jpyncq1iidbczv5idvcz9h35map68f" // greeting-lib → data
	upHelloHash = "wp6h81bmqyf5awd57zi4icjq52bzb9kh" // hello → lib, data
)

type remoteFixture struct {
	up       *upstreamtest.Server
	upKey    nix.SecretKey
	virtKey  nix.SecretKey
	localKey nix.SecretKey
	st       *store.Store
	hs       *httptest.Server
	sample   string
}

func genKey(t *testing.T, name string) nix.SecretKey {
	k, err := nix.GenerateKey(name, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newRemoteFixture(t *testing.T) *remoteFixture {
	t.Helper()
	f := &remoteFixture{upKey: genKey(t, "upstream-1"), virtKey: genKey(t, "virtual-1"), localKey: genKey(t, "local-1"),
		sample: filepath.Join("..", "testdata", "sample-cache")}
	f.up = upstreamtest.New(f.sample, f.upKey)
	t.Cleanup(f.up.Close)
	st, err := store.Open(context.Background(), "mem://", "", false)
	if err != nil {
		t.Fatal(err)
	}
	f.st = st
	t.Cleanup(func() { st.Close() })
	up := ingest.NewUpstream(f.up.URL, []nix.PublicKey{f.upKey.Public()})
	up.Client.Timeout = 2 * time.Second
	srv, err := server.New(st, &server.Options{Repos: []server.Repo{
		{Name: "remote", Public: true, Upstream: up, NegativeTTL: 50 * time.Millisecond},
		{Name: "local", Public: true, Key: f.localKey},
		{Name: "virtual", Public: true, Key: f.virtKey, Members: []string{"local", "remote"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	f.hs = serveFast(t, srv)
	return f
}

func (f *remoteFixture) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(f.hs.URL + path)
	if err != nil {
		return 0, nil // a broken transfer
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1, b // body cut short
	}
	return resp.StatusCode, b
}

func (f *remoteFixture) narinfo(t *testing.T, hash string) *nix.NarInfo {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.sample, hash+".narinfo"))
	if err != nil {
		t.Fatal(err)
	}
	ni, err := nix.ParseNarInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	return ni
}

func (f *remoteFixture) stored(t *testing.T, repo string) []string {
	t.Helper()
	var keys []string
	f.st.List(context.Background(), repo+"/", false, func(o store.Object) error {
		keys = append(keys, strings.TrimPrefix(o.Key, repo+"/"))
		return nil
	})
	return keys
}

// pull fetches a path's narinfo then NAR through repo, as Nix does.
func (f *remoteFixture) pull(t *testing.T, repo, hash string) (int, int) {
	t.Helper()
	s1, b := f.get(t, "/api/nix/"+repo+"/"+hash+".narinfo")
	if s1 != 200 {
		return s1, 0
	}
	ni, err := nix.ParseNarInfo(b)
	if err != nil {
		t.Fatalf("served narinfo does not parse: %v\n%s", err, b)
	}
	s2, nar := f.get(t, "/api/nix/"+repo+"/"+ni.URL)
	if s2 == 200 {
		want, _ := os.ReadFile(filepath.Join(f.sample, f.narinfo(t, hash).URL))
		if !bytes.Equal(nar, want) {
			t.Fatalf("NAR served through %s differs from upstream", repo)
		}
	}
	return s1, s2
}

func TestRemotePullThrough(t *testing.T) {
	f := newRemoteFixture(t)
	for _, h := range []string{upDataHash, upLibHash, upHelloHash} {
		if s1, s2 := f.pull(t, "remote", h); s1 != 200 || s2 != 200 {
			t.Fatalf("%s: narinfo %d, NAR %d", h, s1, s2)
		}
	}
	// Everything is stored, closed under references, upstream-signed.
	rep, err := ingest.Verify(context.Background(), f.st.Repo("remote"), &ingest.VerifyOptions{Keys: []nix.PublicKey{f.upKey.Public()}})
	if err != nil || rep.Checked != 3 || rep.Failed != 0 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	// Upstream gone: still served from the stored copy.
	f.up.Close()
	for _, h := range []string{upDataHash, upLibHash, upHelloHash} {
		if s1, s2 := f.pull(t, "remote", h); s1 != 200 || s2 != 200 {
			t.Fatalf("offline %s: narinfo %d, NAR %d", h, s1, s2)
		}
	}
	// A path upstream never had is 404, and remembered.
	if s, _ := f.get(t, "/api/nix/remote/00000000000000000000000000000000.narinfo"); s != 404 {
		t.Fatalf("missing path: %d", s)
	}
}

func TestRemoteLocalRepoNeverPullsThrough(t *testing.T) {
	f := newRemoteFixture(t)
	if s, _ := f.get(t, "/api/nix/local/"+upDataHash+".narinfo"); s != 404 {
		t.Fatalf("local repo answered %d for an upstream path", s)
	}
	if n := f.up.Requests(".narinfo"); n != 0 {
		t.Fatalf("a local repository probe caused %d upstream requests", n)
	}
}

func TestRemoteFaultyUpstreamLooksMissingAndStoresNothing(t *testing.T) {
	tests := []struct {
		name  string
		fault upstreamtest.Fault
		match string
	}{
		{"wrong signature", upstreamtest.WrongSig, ".narinfo"},
		{"wrong NarHash", upstreamtest.WrongNarHash, ".narinfo"},
		{"truncated NAR", upstreamtest.Truncate, "/nar/"},
		{"500 on narinfo", upstreamtest.Status500, ".narinfo"},
		{"500 on NAR", upstreamtest.Status500, "/nar/"},
		{"timeout", upstreamtest.Slow, ".narinfo"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newRemoteFixture(t)
			f.up.Delay = 5 * time.Second
			f.up.SetFault(tc.match, tc.fault)
			start := time.Now()
			s1, s2 := f.pull(t, "remote", upDataHash)
			if s1 == 200 && s2 == 200 {
				t.Fatalf("faulty upstream served: narinfo %d, NAR %d", s1, s2)
			}
			if s1 != 200 && s1 != 404 {
				t.Fatalf("narinfo answered %d; a failing upstream must look missing (404)", s1)
			}
			if time.Since(start) > 4*time.Second {
				t.Fatalf("took %s: the server must not hang on upstream", time.Since(start))
			}
			for _, k := range f.stored(t, "remote") {
				t.Errorf("faulty upstream left %s", k)
			}
			// The server keeps serving: the fault cleared, the path works.
			f.up.SetFault(tc.match, upstreamtest.None)
			time.Sleep(60 * time.Millisecond) // negative cache TTL
			if s1, s2 := f.pull(t, "remote", upDataHash); s1 != 200 || s2 != 200 {
				t.Fatalf("after the fault: narinfo %d, NAR %d", s1, s2)
			}
		})
	}
}

func TestRemoteCoalescesConcurrentMisses(t *testing.T) {
	f := newRemoteFixture(t)
	f.up.Delay = 300 * time.Millisecond
	f.up.SetFault("/nar/", upstreamtest.Slow) // keep the first fetch in flight
	s, b := f.get(t, "/api/nix/remote/"+upDataHash+".narinfo")
	if s != 200 {
		t.Fatal(s)
	}
	ni, _ := nix.ParseNarInfo(b)
	want, _ := os.ReadFile(filepath.Join(f.sample, f.narinfo(t, upDataHash).URL))
	var wg sync.WaitGroup
	errs := make(chan string, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, nar := f.get(t, "/api/nix/remote/"+ni.URL)
			if s != 200 || !bytes.Equal(nar, want) {
				errs <- "bad response"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if n := f.up.Requests(".nar.xz"); n != 1 {
		t.Fatalf("50 concurrent clients caused %d upstream NAR fetches, want 1", n)
	}
}

func TestVirtualRepoServesMembersSignedWithItsKey(t *testing.T) {
	f := newRemoteFixture(t)
	ctx := context.Background()
	// greeting-data lives in the local repository, the rest upstream.
	src, err := store.Open(ctx, f.sample, "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	only, err := store.Open(ctx, "mem://", "", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{upDataHash + ".narinfo", f.narinfo(t, upDataHash).URL} {
		b, _ := os.ReadFile(filepath.Join(f.sample, k))
		only.Put(ctx, k, b, nil)
	}
	if rep, err := ingest.Run(ctx, f.st.Repo("local"), only.Root(), &ingest.Options{Key: f.localKey, Workers: 1}); err != nil || rep.Accepted != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
	for _, h := range []string{upHelloHash, upLibHash, upDataHash} {
		s, b := f.get(t, "/api/nix/virtual/"+h+".narinfo")
		if s != 200 {
			t.Fatalf("%s: %d", h, s)
		}
		ni, _ := nix.ParseNarInfo(b)
		if !ni.Verify([]nix.PublicKey{f.virtKey.Public()}) {
			t.Fatalf("virtual narinfo not signed by the virtual key:\n%s", b)
		}
	}
	for _, h := range []string{upDataHash, upLibHash, upHelloHash} {
		if s1, s2 := f.pull(t, "virtual", h); s1 != 200 || s2 != 200 {
			t.Fatalf("virtual %s: narinfo %d, NAR %d", h, s1, s2)
		}
	}
	// The local member wins for its path (the remote member may still
	// fetch it upstream to keep its own closure complete).
	if _, b := f.get(t, "/api/nix/virtual/"+upDataHash+".narinfo"); !strings.Contains(string(b), "Sig: local-1:") || strings.Contains(string(b), "upstream-1:") {
		t.Fatalf("virtual repository served the wrong member's narinfo:\n%s", b)
	}
	if s, _ := f.get(t, "/api/nix/virtual/nix-cache-info"); s != 200 {
		t.Fatal("virtual nix-cache-info")
	}
	req, _ := http.NewRequest(http.MethodPut, f.hs.URL+"/api/nix/virtual/"+upDataHash+".narinfo", strings.NewReader("x"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("PUT to a virtual repository: %d", resp.StatusCode)
	}
}
