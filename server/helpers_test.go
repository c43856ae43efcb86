package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/memblob"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/server"
)

// The sample cache (made by real Nix, see testdata/sample-cache.sh):
// hello-greeting → greeting-lib → greeting-data, hello-greeting → greeting-data.
const (
	dataHash  = "8yhfprxp9fym8hjpsb3z3hzsfbrk1z42"
	libHash   = "73jpyncq1iidbczv5idvcz9h35map68f"
	helloHash = "wp6h81bmqyf5awd57zi4icjq52bzb9kh"

	dataNar  = "nar/0gm6dydmdwj6mz63yrw4d1sy23lvqc7rc5df9w9lawh9mr0wrrfx.nar.xz"
	libNar   = "nar/0yw1fcqr630s52wb11bxvh6baxqkjm8iv5frg982w7miqi67ch0s.nar.xz"
	helloNar = "nar/01wv9y11qvsc9i4k557bd9ik7mk88ydz7d04xa1x2qdag9kx69h0.nar.xz"

	dataDrv  = "wpd22xs49p2ljfhwj1fsr45hkhaypxl9-greeting-data-2.1.drv"
	libDrv   = "yrpx9p1f1c9x7jm5yy49pmm3jpvzgl73-greeting-lib-0.3.drv"
	helloDrv = "xhdz6wp194z01aqw6ddmnlcfbrry5sxx-hello-greeting-1.0.drv"
)

// Credentials used throughout. Each token is configured by its SHA-256.
const (
	readSecret  = "read-secret"
	writeSecret = "write-secret"
	otherSecret = "other-secret"
	wrongSecret = "not-a-token"
)

// sampleFiles is the sample cache as a map of relative name → bytes.
var sampleFiles = func() map[string][]byte {
	root := filepath.Join("..", "testdata", "sample-cache")
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		panic(err)
	}
	return files
}()

func sample(t testing.TB, rel string) []byte {
	t.Helper()
	b, ok := sampleFiles[rel]
	if !ok {
		t.Fatalf("sample cache has no %s", rel)
	}
	return b
}

func mustKey(name string) nix.SecretKey {
	k, err := nix.GenerateKey(name, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

var (
	repoKey  = mustKey("test-1")
	otherKey = mustKey("other-1")
)

// defaultOptions: a private repository "r" (priority 41), a second private
// repository "other", and a read, a write and an other-repository token.
func defaultOptions() *server.Options {
	return &server.Options{
		Repos: []server.Repo{
			{Name: "r", Priority: 41, Key: repoKey},
			{Name: "other", Key: otherKey},
		},
		Tokens: []server.Token{
			{Name: "reader", SHA256: server.HashToken(readSecret), Read: []string{"r"}},
			{Name: "writer", SHA256: server.HashToken(writeSecret), Write: []string{"r"}},
			{Name: "stranger", SHA256: server.HashToken(otherSecret), Read: []string{"other"}, Write: []string{"other"}},
		},
	}
}

type env struct {
	t      testing.TB
	st     *store.Store
	srv    *server.Server
	ts     *httptest.Server
	client *http.Client
}

func memStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "mem://", "", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func fileStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "file://"+t.TempDir(), "", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newEnv serves st (a new memory store when nil) with opts (defaultOptions
// when nil) through an httptest server.
func newEnv(t testing.TB, st *store.Store, opts *server.Options) *env {
	t.Helper()
	if st == nil {
		st = memStore(t)
	}
	if opts == nil {
		opts = defaultOptions()
	}
	srv, err := server.New(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := serveFast(t, srv)
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true},
		// Report redirects as they are: a redirect is a status too.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       60 * time.Second,
	}
	t.Cleanup(client.CloseIdleConnections)
	return &env{t: t, st: st, srv: srv, ts: ts, client: client}
}

// serveFast serves srv the way "nixrepo serve" does (Server.Serve: the
// read fast path in front of net/http) on a loopback port, until the test
// ends.
func serveFast(t testing.TB, srv *server.Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(srv)
	ts.URL = "http://" + ts.Listener.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ts.Listener, ts.Config) }()
	t.Cleanup(func() {
		ts.Config.Close()
		if err := <-done; err != http.ErrServerClosed {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return ts
}

// cred is how a request authenticates.
type cred struct {
	name string
	user string
	pass string
	// raw, when set, is sent as the Authorization header instead.
	raw  string
	anon bool
}

var (
	anonymous = cred{name: "anonymous", anon: true}
	reader    = cred{name: "read", user: "nix", pass: readSecret}
	writer    = cred{name: "write", user: "nix", pass: writeSecret}
	stranger  = cred{name: "other-repo", user: "nix", pass: otherSecret}
	wrongPass = cred{name: "wrong-password", user: "nix", pass: wrongSecret}
)

func (c cred) apply(r *http.Request) {
	switch {
	case c.raw != "":
		r.Header.Set("Authorization", c.raw)
	case !c.anon:
		r.SetBasicAuth(c.user, c.pass)
	}
}

func (c cred) header() string {
	switch {
	case c.raw != "":
		return "Authorization: " + c.raw + "\r\n"
	case c.anon:
		return ""
	}
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(c.user+":"+c.pass)) + "\r\n"
}

// resp is a read response.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) String() string {
	b := r.body
	if len(b) > 300 {
		b = b[:300]
	}
	return fmt.Sprintf("%d %q", r.status, b)
}

// do sends one request. hdr holds extra headers ("Content-Encoding": "br").
func (e *env) do(method, path string, c cred, body []byte, hdr map[string]string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	c.apply(req)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return e.send(req)
}

func (e *env) send(req *http.Request) resp {
	e.t.Helper()
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL.Path, err)
	}
	r := resp{status: res.StatusCode, header: res.Header, body: b}
	if req.Method == http.MethodPut {
		checkPutStatus(e.t, req.URL.Path, r.status)
	}
	return r
}

func (e *env) get(path string, c cred) resp {
	e.t.Helper()
	return e.do(http.MethodGet, path, c, nil, nil)
}

func (e *env) put(path string, c cred, body []byte) resp {
	e.t.Helper()
	return e.do(http.MethodPut, path, c, body, nil)
}

// checkPutStatus fails the test for a PUT answer Nix ≤ 2.32 cannot live
// with: any 5xx, 202, 408 or 429 (it retries the PUT with an empty body
// and hangs; docs §1.3).
func checkPutStatus(t testing.TB, path string, status int) {
	t.Helper()
	if status >= 500 || status == http.StatusAccepted || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests {
		t.Errorf("PUT %s answered %d: a PUT must never get 5xx, 202, 408 or 429", path, status)
	}
}

// wantStatus checks a response status and, for errors, that the body
// carries a reason.
func wantStatus(t testing.TB, what string, r resp, want ...int) {
	t.Helper()
	for _, w := range want {
		if r.status == w {
			if r.status >= 400 && len(bytes.TrimSpace(r.body)) == 0 {
				t.Errorf("%s: %d without a reason in the body", what, r.status)
			}
			return
		}
	}
	t.Errorf("%s: got %s, want status %v", what, r, want)
}

// snapshot is every object of the bucket: key → sha256 of its bytes.
// isJournal reports whether key is a path journal object.
func isJournal(key string) bool {
	rest, ok := strings.CutPrefix(key, store.Reserved+"repos/")
	_, rest, _ = strings.Cut(rest, "/")
	return ok && strings.HasPrefix(rest, "journal/")
}

func snapshot(t testing.TB, st *store.Store) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	err := st.List(ctx, "", false, func(o store.Object) error {
		if isJournal(o.Key) {
			return nil // written asynchronously: see TestJournalNotesAcceptedUploadsOnly
		}
		b, err := st.Get(ctx, o.Key)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[o.Key] = fmt.Sprintf("%x", sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func keysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sameSnapshot fails when the bucket changed since before.
func sameSnapshot(t testing.TB, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range after {
		if w, ok := before[k]; !ok {
			t.Errorf("%s: wrote %s", what, k)
		} else if w != v {
			t.Errorf("%s: changed %s", what, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("%s: removed %s", what, k)
		}
	}
}

// checkVisible fails unless the repository prefix holds exactly want
// (relative names) and every _nixrepo/ key is the measurement of one of
// the accepted NAR files in acceptedNars (relative names "nar/…").
func checkVisible(t testing.TB, st *store.Store, repo string, want []string, acceptedNars []string) {
	t.Helper()
	all := keysOf(snapshot(t, st))
	var got []string
	okMeta := map[string]bool{}
	for _, n := range acceptedNars {
		fh, _, ok := ingest.ParseNarName(n)
		if !ok {
			t.Fatalf("bad NAR name %s", n)
		}
		okMeta[st.Repo(repo).NarMetaKey(fh)] = true
	}
	for _, k := range all {
		switch {
		case strings.HasPrefix(k, repo+"/"):
			got = append(got, strings.TrimPrefix(k, repo+"/"))
		case strings.HasPrefix(k, store.Reserved):
			if !okMeta[k] {
				t.Errorf("bookkeeping %s does not belong to an accepted NAR (accepted: %v)", k, acceptedNars)
			}
		default:
			t.Errorf("object %s outside the repository prefix %s/", k, repo)
		}
	}
	want = append([]string(nil), want...)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("repository %s holds\n  %v\nwant\n  %v", repo, got, want)
	}
}

// uploadSample uploads sample paths (hash parts) NAR first, then narinfo,
// in the order given, as nix copy does; every PUT must get 200.
func (e *env) uploadSample(hashes ...string) {
	e.t.Helper()
	for _, h := range hashes {
		ni := sampleNarInfo(e.t, h)
		if r := e.put("/api/nix/r/"+ni.URL, writer, sample(e.t, ni.URL)); r.status != 200 {
			e.t.Fatalf("PUT %s: %s", ni.URL, r)
		}
		if r := e.put("/api/nix/r/"+h+".narinfo", writer, sample(e.t, h+".narinfo")); r.status != 200 {
			e.t.Fatalf("PUT %s.narinfo: %s", h, r)
		}
	}
}

func sampleNarInfo(t testing.TB, hash string) *nix.NarInfo {
	t.Helper()
	ni, err := nix.ParseNarInfo(sample(t, hash+".narinfo"))
	if err != nil {
		t.Fatal(err)
	}
	return ni
}

// metricValue finds the sample of name whose labels include every
// label="value" pair in labels, in the /metrics text exposition. ok is
// false when there is none.
func metricValue(text, name string, labels map[string]string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		lbl := ""
		if strings.HasPrefix(rest, "{") {
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				continue
			}
			lbl, rest = rest[1:end], rest[end+1:]
		} else if !strings.HasPrefix(rest, " ") {
			continue // a longer metric name
		}
		match := true
		for k, v := range labels {
			if !strings.Contains(","+lbl+",", ","+k+"=\""+v+"\",") {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			continue
		}
		return f, true
	}
	return 0, false
}

func (e *env) metrics() string {
	e.t.Helper()
	r := e.get("/metrics", anonymous)
	if r.status != 200 {
		e.t.Fatalf("/metrics: %s", r)
	}
	return string(r.body)
}

func (e *env) metric(name string, labels map[string]string) float64 {
	e.t.Helper()
	v, _ := metricValue(e.metrics(), name, labels)
	return v
}

// rawExchange sends raw bytes on a fresh TCP connection and returns the
// status of the response (0 when none arrived before the connection ended
// or timeout) and the whole response text.
func rawExchange(t testing.TB, addr string, raw []byte, timeout time.Duration) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(raw); err != nil {
		t.Fatal(err)
	}
	return readRawResponse(conn)
}

func readRawResponse(conn net.Conn) (int, string) {
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Status + "\n" + string(b)
}

func (e *env) addr() string { return strings.TrimPrefix(e.ts.URL, "http://") }

// ---- generated store paths ----

// narString appends a NAR string: u64le length, bytes, zero padding to 8.
func narString(b *bytes.Buffer, s []byte) {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
	b.Write(n[:])
	b.Write(s)
	if pad := (8 - len(s)%8) % 8; pad > 0 {
		b.Write(make([]byte, pad))
	}
}

// makeNar serialises a store path that is one regular file (protocols doc §6.1).
func makeNar(contents []byte, executable bool) []byte {
	var b bytes.Buffer
	for _, s := range []string{"nix-archive-1", "(", "type", "regular"} {
		narString(&b, []byte(s))
	}
	if executable {
		narString(&b, []byte("executable"))
		narString(&b, nil)
	}
	narString(&b, []byte("contents"))
	narString(&b, contents)
	narString(&b, []byte(")"))
	return b.Bytes()
}

// genPath is a generated store path uploaded uncompressed.
type genPath struct {
	hash    string
	path    nix.StorePath
	nar     []byte
	narRel  string
	narinfo []byte
	refs    []int // indexes of referenced genPaths
}

func randomHashPart() string {
	var b [20]byte
	rand.Read(b[:])
	return nix.EncodeNix32(b[:])
}

// genPaths makes n store paths; path i references up to three earlier
// paths (and sometimes itself), so uploading in index order is a valid
// topological order.
func genPaths(t testing.TB, n int) []*genPath {
	t.Helper()
	out := make([]*genPath, n)
	for i := range out {
		h := randomHashPart()
		sp, err := nix.ParseStorePath(fmt.Sprintf("%s/%s-gen-%d", nix.StoreDir, h, i))
		if err != nil {
			t.Fatal(err)
		}
		contents := make([]byte, 64+i*7%500)
		rand.Read(contents)
		nar := makeNar(contents, i%3 == 0)
		sum := sha256.Sum256(nar)
		hash := nix.SHA256(sum[:])
		g := &genPath{hash: h, path: sp, nar: nar, narRel: store.NarFile(hash, "none")}
		refs := map[int]bool{}
		for j := 0; j < 3 && i > 0; j++ {
			var r [1]byte
			rand.Read(r[:])
			refs[int(r[0])%i] = true
		}
		ni := &nix.NarInfo{
			StorePath:   sp,
			URL:         g.narRel,
			Compression: "none",
			FileHash:    hash,
			FileSize:    uint64(len(nar)),
			NarHash:     hash,
			NarSize:     uint64(len(nar)),
			Deriver:     randomHashPart() + fmt.Sprintf("-gen-%d.drv", i),
		}
		for r := range refs {
			g.refs = append(g.refs, r)
		}
		sort.Ints(g.refs)
		for _, r := range g.refs {
			ni.References = append(ni.References, out[r].path)
		}
		if i%5 == 0 {
			ni.References = append(ni.References, sp) // self-reference
		}
		g.narinfo = ni.Bytes()
		if _, err := nix.ParseNarInfo(g.narinfo); err != nil {
			t.Fatalf("generated narinfo does not parse: %v\n%s", err, g.narinfo)
		}
		out[i] = g
	}
	return out
}
