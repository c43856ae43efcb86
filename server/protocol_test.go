package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/server"
)

// storeKinds runs f against a memory bucket and a file bucket (whose
// objects the server serves from their files).
func storeKinds(t *testing.T, f func(t *testing.T, st *store.Store)) {
	t.Run("mem", func(t *testing.T) { f(t, memStore(t)) })
	t.Run("file", func(t *testing.T) { f(t, fileStore(t)) })
}

// TestHeadAnswersLikeGetForEveryKind: HEAD answers like GET without a body, for every kind.
func TestHeadAnswersLikeGetForEveryKind(t *testing.T) {
	storeKinds(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st, nil)
		authFixture(t, e.st)
		for _, rc := range routeCases(t) {
			g := e.get("/api/nix/r/"+rc.present, reader)
			h := e.do(http.MethodHead, "/api/nix/r/"+rc.present, reader, nil, nil)
			if g.status != 200 || h.status != 200 {
				t.Errorf("%s: GET %d, HEAD %d; want 200", rc.kind, g.status, h.status)
				continue
			}
			if len(h.body) != 0 {
				t.Errorf("%s: HEAD has a body", rc.kind)
			}
			if cl := h.header.Get("Content-Length"); cl != strconv.Itoa(len(g.body)) {
				t.Errorf("%s: HEAD Content-Length %q, GET body %d bytes", rc.kind, cl, len(g.body))
			}
			if h.header.Get("Content-Type") != g.header.Get("Content-Type") || h.header.Get("Content-Type") == "" {
				t.Errorf("%s: HEAD Content-Type %q, GET %q", rc.kind, h.header.Get("Content-Type"), g.header.Get("Content-Type"))
			}
			if rc.missing != "" {
				if m := e.do(http.MethodHead, "/api/nix/r/"+rc.missing, reader, nil, nil); m.status != 404 {
					t.Errorf("%s: HEAD of a missing object: %d, want 404", rc.kind, m.status)
				}
			}
		}
		// Content types Nix expects.
		for rel, want := range map[string]string{
			"nix-cache-info":      "text/x-nix-cache-info",
			dataHash + ".narinfo": "text/x-nix-narinfo",
			dataNar:               "application/x-nix-nar",
			dataHash + ".ls":      "application/json",
			"log/" + dataDrv:      "text/plain; charset=utf-8",
			realisationA:          "application/json",
		} {
			if got := e.get("/api/nix/r/"+rel, reader).header.Get("Content-Type"); got != want {
				t.Errorf("%s: Content-Type %q, want %q", rel, got, want)
			}
		}
	})
}

// TestNarServesByteRanges: NARs support Range (Nix resumes interrupted downloads).
func TestNarServesByteRanges(t *testing.T) {
	storeKinds(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st, nil)
		authFixture(t, e.st)
		nar := sample(t, dataNar)
		full := e.get("/api/nix/r/"+dataNar, reader)
		if full.status != 200 || !bytes.Equal(full.body, nar) || full.header.Get("Accept-Ranges") != "bytes" {
			t.Fatalf("GET NAR: %d, %d bytes, Accept-Ranges %q", full.status, len(full.body), full.header.Get("Accept-Ranges"))
		}
		for _, c := range []struct {
			rng   string
			from  int
			to    int // exclusive
			crang string
		}{
			{"bytes=10-19", 10, 20, fmt.Sprintf("bytes 10-19/%d", len(nar))},
			{"bytes=-5", len(nar) - 5, len(nar), fmt.Sprintf("bytes %d-%d/%d", len(nar)-5, len(nar)-1, len(nar))},
			{"bytes=270-", 270, len(nar), fmt.Sprintf("bytes 270-%d/%d", len(nar)-1, len(nar))},
		} {
			r := e.do(http.MethodGet, "/api/nix/r/"+dataNar, reader, nil, map[string]string{"Range": c.rng})
			if r.status != http.StatusPartialContent {
				t.Errorf("%s: got %s, want 206", c.rng, r)
				continue
			}
			if !bytes.Equal(r.body, nar[c.from:c.to]) {
				t.Errorf("%s: got bytes %x, want %x", c.rng, r.body, nar[c.from:c.to])
			}
			if r.header.Get("Accept-Ranges") != "bytes" {
				t.Errorf("%s: Accept-Ranges %q", c.rng, r.header.Get("Accept-Ranges"))
			}
			if r.header.Get("Content-Range") != c.crang {
				t.Errorf("%s: Content-Range %q, want %q", c.rng, r.header.Get("Content-Range"), c.crang)
			}
			if r.header.Get("Content-Encoding") != "" {
				t.Errorf("%s: Content-Encoding %q on a NAR", c.rng, r.header.Get("Content-Encoding"))
			}
		}
		r := e.do(http.MethodGet, "/api/nix/r/"+dataNar, reader, nil, map[string]string{"Range": "bytes=1000-2000"})
		if r.status != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("unsatisfiable range: got %s, want 416", r)
		}
		if r := e.do(http.MethodGet, "/api/nix/r/"+helloNar, reader, nil, map[string]string{"Range": "bytes=10-19"}); r.status != 404 {
			t.Errorf("range of a missing NAR: got %s, want 404", r)
		}
	})
}

// TestNarInfoServedAsStored: a narinfo GET returns the stored bytes
// exactly, as text/x-nix-narinfo, without Content-Encoding (Nix 2.8 fails
// on "identity" and decodes others itself), also from the server's cache
// and when the client offers encodings.
func TestNarInfoServedAsStored(t *testing.T) {
	storeKinds(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st, nil)
		e.uploadSample(dataHash, libHash, helloHash)
		for _, h := range []string{dataHash, libHash, helloHash} {
			stored, err := e.st.Get(context.Background(), "r/"+h+".narinfo")
			if err != nil {
				t.Fatal(err)
			}
			for i, hdr := range []map[string]string{nil, nil, {"Accept-Encoding": "gzip, br, zstd, xz"}} {
				r := e.do(http.MethodGet, "/api/nix/r/"+h+".narinfo", reader, nil, hdr)
				if r.status != 200 || !bytes.Equal(r.body, stored) {
					t.Errorf("%s GET #%d: %d, body differs from the stored narinfo", h, i, r.status)
				}
				if ct := r.header.Get("Content-Type"); ct != "text/x-nix-narinfo" {
					t.Errorf("%s: Content-Type %q", h, ct)
				}
				if _, ok := r.header["Content-Encoding"]; ok {
					t.Errorf("%s: Content-Encoding %q", h, r.header.Get("Content-Encoding"))
				}
			}
		}
		// No kind is ever served with a Content-Encoding.
		for _, rel := range []string{"nix-cache-info", dataNar, dataHash + ".ls"} {
			r := e.do(http.MethodGet, "/api/nix/r/"+rel, reader, nil, map[string]string{"Accept-Encoding": "gzip, br"})
			if _, ok := r.header["Content-Encoding"]; ok || r.status != 200 {
				t.Errorf("%s: %d with Content-Encoding %q", rel, r.status, r.header.Get("Content-Encoding"))
			}
		}
	})
}

// TestCacheInfoAnswersStoreDirAndPriority: nix-cache-info is served although nothing wrote it, with
// the configured priority.
func TestCacheInfoAnswersStoreDirAndPriority(t *testing.T) {
	o := defaultOptions()
	o.Repos = append(o.Repos, server.Repo{Name: "pub", Public: true, Priority: 7})
	e := newEnv(t, nil, o)
	for _, c := range []struct {
		repo string
		who  cred
		want string
	}{
		{"r", reader, "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 41\n"},
		{"other", stranger, "StoreDir: /nix/store\nWantMassQuery: 1\n"},
		{"pub", anonymous, "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 7\n"},
	} {
		r := e.get("/api/nix/"+c.repo+"/nix-cache-info", c.who)
		if r.status != 200 || string(r.body) != c.want {
			t.Errorf("%s: got %s, want %q", c.repo, r, c.want)
		}
		if ct := r.header.Get("Content-Type"); ct != "text/x-nix-cache-info" {
			t.Errorf("%s: Content-Type %q", c.repo, ct)
		}
		info, err := nix.ParseCacheInfo(r.body)
		if err != nil || info.StoreDir != nix.StoreDir || !info.WantMassQuery {
			t.Errorf("%s: %+v, %v", c.repo, info, err)
		}
	}
	if keys := keysOf(snapshot(t, e.st)); len(keys) != 0 {
		t.Errorf("the bucket is not empty: %v", keys)
	}
	// nix copy PUTs nix-cache-info when it thinks there is none; an
	// agreeing one is acknowledged, and the served one does not change.
	if r := e.put("/api/nix/r/nix-cache-info", writer, []byte("StoreDir: /nix/store\nPriority: 99\n")); r.status != 200 {
		t.Errorf("PUT nix-cache-info: %s", r)
	}
	if r := e.get("/api/nix/r/nix-cache-info", reader); !strings.Contains(string(r.body), "Priority: 41\n") {
		t.Errorf("nix-cache-info changed by an upload: %q", r.body)
	}
}

// TestUploadedNarInfoSigned: an accepted narinfo is signed by the
// repository key and keeps the signatures it came with.
func TestUploadedNarInfoSigned(t *testing.T) {
	e := newEnv(t, nil, nil)
	upstream := mustKey("upstream-1")
	e.put("/api/nix/r/"+dataNar, writer, sample(t, dataNar))
	ni := sampleNarInfo(t, dataHash)
	if err := ni.Sign(upstream); err != nil {
		t.Fatal(err)
	}
	upSig := ni.Sigs[0]
	if r := e.put("/api/nix/r/"+dataHash+".narinfo", writer, ni.Bytes()); r.status != 200 {
		t.Fatalf("PUT: %s", r)
	}
	e.uploadSample(libHash) // unsigned upload
	for _, h := range []string{dataHash, libHash} {
		r := e.get("/api/nix/r/"+h+".narinfo", reader)
		got, err := nix.ParseNarInfo(r.body)
		if err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		if !got.Verify([]nix.PublicKey{repoKey.Public()}) {
			t.Errorf("%s: not signed by the repository key: %v", h, got.Sigs)
		}
		if got.Verify([]nix.PublicKey{otherKey.Public()}) {
			t.Errorf("%s: verifies with another repository's key", h)
		}
		want := sampleNarInfo(t, h)
		if got.StorePath != want.StorePath || !got.NarHash.Equal(want.NarHash) || got.NarSize != want.NarSize ||
			got.URL != want.URL || !got.FileHash.Equal(want.FileHash) || got.FileSize != want.FileSize || got.Deriver != want.Deriver {
			t.Errorf("%s: stored narinfo differs from the upload:\n%s", h, r.body)
		}
		if h == dataHash {
			if !got.Verify([]nix.PublicKey{upstream.Public()}) || !strings.Contains(string(r.body), "Sig: "+upSig+"\n") {
				t.Errorf("the upload's own signature was dropped: %v", got.Sigs)
			}
			if len(got.Sigs) != 2 {
				t.Errorf("signatures %v, want the upstream one and the repository's", got.Sigs)
			}
		} else if len(got.Sigs) != 1 {
			t.Errorf("%s: signatures %v, want exactly the repository's", h, got.Sigs)
		}
	}
}

// TestReuploadOfPresentPathChangesNothing: uploading a present path again (what a second
// nix copy with a cold disk cache may do) answers 200 and changes nothing.
func TestReuploadOfPresentPathChangesNothing(t *testing.T) {
	storeKinds(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st, nil)
		e.uploadSample(dataHash, libHash, helloHash)
		before := snapshot(t, e.st)
		served := e.get("/api/nix/r/"+helloHash+".narinfo", reader).body
		e.uploadSample(dataHash, libHash, helloHash)
		sameSnapshot(t, "re-upload", before, snapshot(t, e.st))
		if again := e.get("/api/nix/r/"+helloHash+".narinfo", reader).body; !bytes.Equal(served, again) {
			t.Errorf("served narinfo changed after a re-upload")
		}
		if v := e.metric("nixrepo_uploads_total", map[string]string{"route": "narinfo", "outcome": "present"}); v != 3 {
			t.Errorf("narinfo uploads with outcome present = %v, want 3", v)
		}
	})
}

// TestNixCopySequence replays the request sequence of `nix copy --to`
// with write-nar-listing and logs (protocols doc §1.2), then substitution
// (§2.1).
func TestNixCopySequence(t *testing.T) {
	e := newEnv(t, nil, nil)
	step := func(method, rel string, body []byte, want int) resp {
		t.Helper()
		r := e.do(method, "/api/nix/r/"+rel, writer, body, nil)
		if r.status != want {
			t.Errorf("%s %s: got %s, want %d", method, rel, r, want)
		}
		return r
	}
	step("GET", "nix-cache-info", nil, 200)
	for _, h := range []string{dataHash, libHash, helloHash} {
		step("GET", h+".narinfo", nil, 404)
	}
	for _, h := range []string{dataHash, libHash, helloHash} {
		ni := sampleNarInfo(t, h)
		step("PUT", h+".ls", []byte(`{"version":1,"root":{"type":"directory","entries":{}}}`), 200)
		step("HEAD", ni.URL, nil, 404)
		step("PUT", ni.URL, sample(t, ni.URL), 200)
		step("HEAD", ni.URL, nil, 200)
		step("PUT", h+".narinfo", sample(t, h+".narinfo"), 200)
		step("PUT", "log/"+ni.Deriver, []byte("log of "+ni.Deriver+"\n"), 200)
	}
	// Substitution.
	for _, h := range []string{helloHash, libHash, dataHash} {
		r := e.get("/api/nix/r/"+h+".narinfo", reader)
		ni, err := nix.ParseNarInfo(r.body)
		if err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		nr := e.get("/api/nix/r/"+ni.URL, reader)
		if nr.status != 200 || !bytes.Equal(nr.body, sample(t, ni.URL)) {
			t.Errorf("%s: NAR %s: %d", h, ni.URL, nr.status)
		}
		if lr := e.get("/api/nix/r/log/"+ni.Deriver, reader); lr.status != 200 {
			t.Errorf("log of %s: %d", ni.Deriver, lr.status)
		}
	}
	checkVisible(t, e.st, "r", []string{
		dataNar, libNar, helloNar,
		dataHash + ".narinfo", libHash + ".narinfo", helloHash + ".narinfo",
		dataHash + ".ls", libHash + ".ls", helloHash + ".ls",
		"log/" + dataDrv, "log/" + libDrv, "log/" + helloDrv,
	}, []string{dataNar, libNar, helloNar})
}

func TestHealthzAnswersGetAndHead(t *testing.T) {
	e := newEnv(t, nil, nil)
	r := e.get("/healthz", anonymous)
	if r.status != 200 {
		t.Errorf("/healthz: %s", r)
	}
	if r := e.do(http.MethodHead, "/healthz", anonymous, nil, nil); r.status != 200 {
		t.Errorf("HEAD /healthz: %s", r)
	}
}

func TestOtherMethodsAre405AndWriteNothing(t *testing.T) {
	e := newEnv(t, nil, nil)
	authFixture(t, e.st)
	before := snapshot(t, e.st)
	for _, m := range []string{"POST", "DELETE", "PATCH", "OPTIONS"} {
		r := e.do(m, "/api/nix/r/"+dataHash+".narinfo", writer, []byte("x"), nil)
		if r.status != http.StatusMethodNotAllowed || !strings.Contains(r.header.Get("Allow"), "PUT") {
			t.Errorf("%s: got %s (Allow %q), want 405", m, r, r.header.Get("Allow"))
		}
	}
	sameSnapshot(t, "other methods", before, snapshot(t, e.st))
}

// TestMetricsCountWhatHappened: the counters count what happened.
func TestMetricsCountWhatHappened(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.uploadSample(dataHash)                                                       // nar accepted, narinfo accepted
	e.uploadSample(dataHash)                                                       // nar accepted (again), narinfo present
	e.put("/api/nix/r/"+libHash+".narinfo", writer, sample(t, libHash+".narinfo")) // refused: NAR missing (422)
	e.put("/api/nix/r/"+libNar, anonymous, sample(t, libNar))                      // denied (401)
	e.put("/api/nix/r/"+libNar, reader, sample(t, libNar))                         // denied (403)
	e.get("/api/nix/r/"+dataHash+".narinfo", reader)                               // 200
	e.get("/api/nix/r/"+dataHash+".narinfo", reader)                               // 200 (cached)
	e.get("/api/nix/r/"+libHash+".narinfo", reader)                                // 404
	e.get("/api/nix/r/"+libHash+".narinfo", anonymous)                             // 401
	e.do(http.MethodHead, "/api/nix/r/"+dataNar, reader, nil, nil)                 // 200
	text := e.metrics()
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"nixrepo_uploads_total", map[string]string{"route": "nar", "outcome": "accepted"}, 2},
		{"nixrepo_uploads_total", map[string]string{"route": "narinfo", "outcome": "accepted"}, 1},
		{"nixrepo_uploads_total", map[string]string{"route": "narinfo", "outcome": "present"}, 1},
		{"nixrepo_uploads_total", map[string]string{"route": "narinfo", "outcome": "refused"}, 1},
		{"nixrepo_uploads_total", map[string]string{"route": "nar", "outcome": "denied"}, 2},
		{"nixrepo_http_requests_total", map[string]string{"route": "narinfo", "method": "GET", "code": "200"}, 2},
		{"nixrepo_http_requests_total", map[string]string{"route": "narinfo", "method": "GET", "code": "404"}, 1},
		{"nixrepo_http_requests_total", map[string]string{"route": "narinfo", "method": "GET", "code": "401"}, 1},
		{"nixrepo_http_requests_total", map[string]string{"route": "narinfo", "method": "PUT", "code": "200"}, 2},
		{"nixrepo_http_requests_total", map[string]string{"route": "narinfo", "method": "PUT", "code": "422"}, 1},
		{"nixrepo_http_requests_total", map[string]string{"route": "nar", "method": "PUT", "code": "200"}, 2},
		{"nixrepo_http_requests_total", map[string]string{"route": "nar", "method": "PUT", "code": "401"}, 1},
		{"nixrepo_http_requests_total", map[string]string{"route": "nar", "method": "PUT", "code": "403"}, 1},
		{"nixrepo_http_requests_total", map[string]string{"route": "nar", "method": "HEAD", "code": "200"}, 1},
	} {
		got, ok := metricValue(text, c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	for _, name := range []string{"nixrepo_http_request_duration_seconds_bucket", "nixrepo_http_response_bytes_total", "nixrepo_http_upload_bytes_total"} {
		if !strings.Contains(text, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// TestMetricsMethodLabelBounded: the method label takes client input; an
// unauthenticated client must not be able to create a new time series per
// request with made-up methods.
func TestMetricsMethodLabelBounded(t *testing.T) {
	e := newEnv(t, nil, nil)
	for i := 0; i < 50; i++ {
		m := fmt.Sprintf("X%04d", i)
		if r := e.do(m, "/api/nix/r/nix-cache-info", reader, nil, nil); r.status != http.StatusMethodNotAllowed {
			t.Errorf("%s: %s", m, r)
		}
	}
	text := e.metrics()
	series := regexp.MustCompile(`(?m)^nixrepo_http_requests_total\{.*method="X\d{4}"`).FindAllString(text, -1)
	if len(series) > 1 {
		t.Errorf("BUG: 50 requests with made-up methods created %d nixrepo_http_requests_total series (unbounded label cardinality from client input; metrics.go observe uses r.Method verbatim; see report)", len(series))
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestInternalErrorBody: a failing bucket gives 500 on GET with an error id
// and no internal detail in the body; the detail goes to the log under the
// same id.
func TestInternalErrorBody(t *testing.T) {
	const secret = "AccessDenied for s3://secret-bucket (token AKIAEXAMPLE)"
	for _, mode := range []string{"closed", "failing"} {
		t.Run(mode, func(t *testing.T) {
			st, hb := hookStore(t)
			var logs syncBuffer
			o := defaultOptions()
			o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			e := newEnv(t, st, o)
			e.uploadSample(dataHash)
			if mode == "closed" {
				st.Close()
			} else {
				hb.setHook(func(context.Context, string, string) error { return errors.New(secret) })
			}
			for _, rel := range []string{libHash + ".narinfo", dataNar, dataHash + ".ls", "log/" + dataDrv, realisationA} {
				for _, method := range []string{http.MethodGet, http.MethodHead} {
					r := e.do(method, "/api/nix/r/"+rel, reader, nil, nil)
					if r.status != http.StatusInternalServerError {
						t.Errorf("%s %s: got %s, want 500", method, rel, r)
						continue
					}
					if method == http.MethodHead {
						continue
					}
					body := string(r.body)
					for _, leak := range []string{"secret", "AKIA", "closed", "Bucket", "blob", "r/", rel, "s3://"} {
						if strings.Contains(body, leak) {
							t.Errorf("GET %s: 500 body %q contains %q", rel, body, leak)
						}
					}
					m := regexp.MustCompile(`internal error ([0-9a-f]+)`).FindStringSubmatch(body)
					if m == nil {
						t.Errorf("GET %s: 500 body %q has no error id", rel, body)
					} else if !strings.Contains(logs.String(), m[1]) {
						t.Errorf("GET %s: error id %s is not in the log", rel, m[1])
					}
				}
			}
			// Uploads on the broken bucket: a 4xx, never a 5xx, no leak.
			for _, rel := range []string{libNar, libHash + ".narinfo"} {
				r := e.put("/api/nix/r/"+rel, writer, sample(t, rel))
				if r.status < 400 || r.status >= 500 {
					t.Errorf("PUT %s: got %s, want a 4xx", rel, r)
				}
				if strings.Contains(string(r.body), "secret") || strings.Contains(string(r.body), "closed") {
					t.Errorf("PUT %s: body leaks %q", rel, r.body)
				}
			}
			// nix-cache-info needs no bucket.
			if r := e.get("/api/nix/r/nix-cache-info", reader); r.status != 200 {
				t.Errorf("nix-cache-info: %s", r)
			}
		})
	}
}

// TestReadOfNonCacheNameIs404: reads of names that are no binary-cache object, or of
// unknown repositories, are 404.
func TestReadOfNonCacheNameIs404(t *testing.T) {
	e := newEnv(t, nil, nil)
	authFixture(t, e.st)
	for _, p := range []string{
		"/api/nix/", "/api/nix/r", "/api/nix/r/", "/api/nix/nope/nix-cache-info", "/api/nix/r/x",
		"/api/nix/r/" + dataHash, "/api/nix/r/nar/", "/api/nix/r/nar/x.nar", "/api/nix/r/log/",
		"/api/nix/r/_nixrepo/x", "/api/nix/_nixrepo/repos/r/nar-meta/x.json",
		"/api/nix/r/" + strings.ToUpper(dataHash) + ".narinfo", "/api/nix/r/" + dataHash + ".narinfo.bak",
	} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			if r := e.do(method, p, reader, nil, nil); r.status != http.StatusNotFound {
				t.Errorf("%s %s: got %s, want 404", method, p, r)
			}
		}
	}
}
