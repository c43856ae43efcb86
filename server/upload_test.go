package server_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/nixrepo/nixrepo/internal/nix"
)

// Each bad upload must get a 4xx with a reason and leave nothing visible:
// the repository holds only what was accepted before, and _nixrepo/
// bookkeeping exists only for accepted NAR files.

func TestPutNarWrongBytes(t *testing.T) {
	cases := []struct {
		name string
		rel  string
		body []byte
	}{
		// Real xz NAR of greeting-data under greeting-lib's FileHash.
		{"other path's NAR", libNar, sample(t, dataNar)},
		{"garbage", libNar, bytes.Repeat([]byte("not a nar "), 50)},
		{"truncated xz", libNar, sample(t, libNar)[:200]},
		{"uncompressed NAR named .xz", libNar, makeNar([]byte("hello"), false)},
		{"xz NAR named .nar", strings.TrimSuffix(libNar, ".xz"), sample(t, libNar)},
		{"trailing bytes", libNar, append(append([]byte(nil), sample(t, libNar)...), 0, 0, 0, 0)},
		{"empty", libNar, []byte{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			r := e.put("/api/nix/r/"+c.rel, writer, c.body)
			wantStatus(t, "PUT "+c.rel, r, http.StatusBadRequest, http.StatusUnprocessableEntity)
			checkVisible(t, e.st, "r", nil, nil)
			if got := e.get("/api/nix/r/"+c.rel, writer); got.status != http.StatusNotFound {
				t.Errorf("GET after a refused upload: %s", got)
			}
		})
	}
}

func TestPutNarInfoWrongClaims(t *testing.T) {
	orig := string(sample(t, dataHash+".narinfo"))
	otherHash := nix.SHA256(bytes.Repeat([]byte{7}, 32)).String()
	cases := []struct {
		name     string
		narinfo  string
		want     int
		contains string
	}{
		{"NarHash", strings.Replace(orig, "sha256:0jiih9nmgxl0ssksvpsviw9q304wjg4nzha81rpv62j693ghla48", otherHash, 1), 422, "NarHash"},
		{"NarSize", strings.Replace(orig, "NarSize: 1240", "NarSize: 1241", 1), 422, "NarSize"},
		{"FileSize", strings.Replace(orig, "FileSize: 280", "FileSize: 281", 1), 422, "FileSize"},
		{"FileHash", strings.Replace(orig, "FileHash: sha256:0gm6", "FileHash: sha256:1gm6", 1), 422, "FileHash"},
		{"Compression", strings.Replace(orig, "Compression: xz", "Compression: zstd", 1), 400, "Compression"},
		{"StorePath of another hash", strings.Replace(orig, dataHash+"-greeting-data", libHash+"-greeting-data", 1), 400, libHash},
		{"malformed Sig", orig + "Sig: test-1:not-base64!\n", 400, "signature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.narinfo == orig {
				t.Fatal("test case did not change the narinfo")
			}
			e := newEnv(t, nil, nil)
			if r := e.put("/api/nix/r/"+dataNar, writer, sample(t, dataNar)); r.status != 200 {
				t.Fatalf("NAR: %s", r)
			}
			r := e.put("/api/nix/r/"+dataHash+".narinfo", writer, []byte(c.narinfo))
			wantStatus(t, "PUT narinfo", r, c.want)
			if !strings.Contains(string(r.body), c.contains) {
				t.Errorf("reason %q does not mention %s", r.body, c.contains)
			}
			checkVisible(t, e.st, "r", []string{dataNar}, []string{dataNar})
		})
	}
}

func TestPutNarInfoBeforeNar(t *testing.T) {
	e := newEnv(t, nil, nil)
	r := e.put("/api/nix/r/"+dataHash+".narinfo", writer, sample(t, dataHash+".narinfo"))
	wantStatus(t, "narinfo before its NAR", r, http.StatusUnprocessableEntity)
	if !strings.Contains(string(r.body), dataNar) {
		t.Errorf("reason %q does not name the missing NAR", r.body)
	}
	checkVisible(t, e.st, "r", nil, nil)
}

func TestPutNarInfoMissingReference(t *testing.T) {
	e := newEnv(t, nil, nil)
	if r := e.put("/api/nix/r/"+libNar, writer, sample(t, libNar)); r.status != 200 {
		t.Fatalf("NAR: %s", r)
	}
	r := e.put("/api/nix/r/"+libHash+".narinfo", writer, sample(t, libHash+".narinfo"))
	wantStatus(t, "narinfo with a missing reference", r, http.StatusUnprocessableEntity)
	if !strings.Contains(string(r.body), dataHash+"-greeting-data-2.1") {
		t.Errorf("reason %q does not name the missing reference", r.body)
	}
	checkVisible(t, e.st, "r", []string{libNar}, []string{libNar})
}

// TestPutTraversalIsRefusedAndWritesNothing: ".." and other escapes in the object name, sent as raw
// bytes so no client cleans them. Never 2xx/3xx/5xx, and nothing is written
// anywhere.
func TestPutTraversalIsRefusedAndWritesNothing(t *testing.T) {
	paths := []string{
		"/api/nix/r/nar/../x",
		"/api/nix/r/../other/nix-cache-info",
		"/api/nix/r/nar/../../other/" + dataHash + ".narinfo",
		"/api/nix/r/%2e%2e/x",
		"/api/nix/r/nar/..%2fx",
		"/api/nix/r/nar/..%2f" + dataHash + ".narinfo",
		"/api/nix/r/..%2f..%2fother%2f" + dataHash + ".narinfo",
		"/api/nix/r/%2e%2e%2f_nixrepo%2fx",
		"/api/nix/r/log/..%2f..%2f_nixrepo%2fx",
		"/api/nix/r/log/%2e%2e%2f" + dataDrv,
		"/api/nix/r/nar/%2e%2e%2f%2e%2e%2fother%2fnar%2f0gm6dydmdwj6mz63yrw4d1sy23lvqc7rc5df9w9lawh9mr0wrrfx.nar.xz",
		"/api/nix/%2e%2e/r/x",
		"/api/nix/%2e%2e%2f_nixrepo/x",
		"/api/nix/r//nar/x",
		"/api/nix/r/./nix-cache-info",
		"/api/nix/r/nar/.%2e/x",
		"/api/nix/r/nar\\..\\x",
		"/api/nix/r/nar/%5c..%5cx",
		"/api/nix/r/%2fetc%2fpasswd",
		"/api/nix/r/" + dataHash + ".narinfo/..",
		"/api/nix/r/" + dataHash + ".narinfo%00",
	}
	e := newEnv(t, nil, nil)
	authFixture(t, e.st)
	before := snapshot(t, e.st)
	body := sample(t, dataHash+".narinfo")
	for _, p := range paths {
		for _, method := range []string{http.MethodPut, http.MethodGet} {
			raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: text/x-nix-narinfo\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
				method, p, writer.header(), len(body), body)
			if method == http.MethodGet {
				raw = fmt.Sprintf("GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n", p, writer.header())
			}
			status, text := rawExchange(t, e.addr(), []byte(raw), 10*time.Second)
			if method == http.MethodPut {
				checkPutStatus(t, p, status)
			}
			if status != http.StatusBadRequest && status != http.StatusNotFound {
				hint := ""
				if status >= 300 && status < 400 {
					hint = " — BUG: net/http.ServeMux answers unclean paths with a redirect (to a cleaned path that may be in another repository) instead of 400/404; see report"
				}
				t.Errorf("%s %s: got %d (%q), want 400 or 404%s", method, p, status, firstLine(text), hint)
			}
		}
	}
	sameSnapshot(t, "traversal attempts", before, snapshot(t, e.st))
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// TestPutOversizeIs413: a body larger than MaxObjectSize is 413, whether the
// size is declared or only discovered while reading.
func TestPutOversizeIs413(t *testing.T) {
	narBody := sample(t, libNar) // 448 bytes
	o := defaultOptions()
	o.MaxObjectSize = 420
	e := newEnv(t, nil, o)
	e.uploadSample(dataHash) // NAR 280 bytes, narinfo 402: under the limit
	before := snapshot(t, e.st)

	r := e.put("/api/nix/r/"+libNar, writer, narBody)
	wantStatus(t, "declared oversize NAR", r, http.StatusRequestEntityTooLarge)

	// Chunked: the size is only known while reading.
	req, _ := http.NewRequest(http.MethodPut, e.ts.URL+"/api/nix/r/"+libNar, struct{ *bytes.Reader }{bytes.NewReader(narBody)})
	writer.apply(req)
	req.ContentLength = -1
	r = e.send(req)
	wantStatus(t, "chunked oversize NAR", r, http.StatusRequestEntityTooLarge)

	sameSnapshot(t, "oversize uploads", before, snapshot(t, e.st))
	checkVisible(t, e.st, "r", []string{dataNar, dataHash + ".narinfo", dataHash + ".ls"}, []string{dataNar})
}

// TestPutOversizeChunkedSmallObjects: MaxObjectSize bounds every upload
// ("larger is 413"), not only NAR files and declared lengths.
func TestPutOversizeChunkedSmallObjects(t *testing.T) {
	o := defaultOptions()
	o.MaxObjectSize = 420
	e := newEnv(t, nil, o)
	e.uploadSample(dataHash)
	before := snapshot(t, e.st)
	big := []byte(strings.Repeat("a long build log line\n", 40)) // 880 bytes
	for _, c := range []struct {
		rel  string
		body []byte
	}{
		{"log/" + libDrv, big},
		{libHash + ".ls", []byte(`{"version":1,"root":{"type":"regular","size":1,"pad":"` + strings.Repeat("x", 600) + `"}}`)},
		{realisationC, []byte(`{"id":"x","pad":"` + strings.Repeat("x", 600) + `"}`)},
	} {
		// Declared length: 413 before reading.
		r := e.put("/api/nix/r/"+c.rel, writer, c.body)
		wantStatus(t, "declared oversize "+c.rel, r, http.StatusRequestEntityTooLarge)
		// Chunked.
		req, _ := http.NewRequest(http.MethodPut, e.ts.URL+"/api/nix/r/"+c.rel, struct{ *bytes.Reader }{bytes.NewReader(c.body)})
		writer.apply(req)
		req.ContentLength = -1
		r = e.send(req)
		if r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("BUG: chunked upload of %d bytes to %s with MaxObjectSize 420: got %s, want 413 (small objects must be bounded by MaxObjectSize too, as sent and decoded)", len(c.body), c.rel, r)
		}
	}
	// A small encoded body that decodes to more than MaxObjectSize.
	r := e.do(http.MethodPut, "/api/nix/r/log/"+helloDrv, writer, encodeBody(t, "br", big), map[string]string{"Content-Encoding": "br"})
	if r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("BUG: br-encoded log of %d bytes decoding to %d bytes with MaxObjectSize 420: got %s, want 413 (see report)", len(encodeBody(t, "br", big)), len(big), r)
	}
	sameSnapshot(t, "oversize small objects", before, snapshot(t, e.st))
}

// TestPutTruncatedBodyPublishesNothing: a client declares Content-Length N, sends fewer
// bytes and closes. Nothing may become visible; when the client only
// half-closes, it gets a 4xx.
func TestPutTruncatedBodyPublishesNothing(t *testing.T) {
	for _, c := range []struct {
		name string
		rel  string
		body []byte
		pre  []string // sample paths uploaded first
	}{
		{"nar", libNar, sample(t, libNar), nil},
		{"narinfo", dataHash + ".narinfo", sample(t, dataHash+".narinfo"), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			if c.name == "narinfo" {
				if r := e.put("/api/nix/r/"+dataNar, writer, sample(t, dataNar)); r.status != 200 {
					t.Fatal(r)
				}
			}
			before := snapshot(t, e.st)
			head := fmt.Sprintf("PUT /api/nix/r/%s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n", c.rel, writer.header(), len(c.body))
			half := c.body[:len(c.body)/2]

			// Half-close: the server sees EOF early and can still answer.
			conn, err := net.Dial("tcp", e.addr())
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			conn.Write([]byte(head))
			conn.Write(half)
			conn.(*net.TCPConn).CloseWrite()
			status, text := readRawResponse(conn)
			conn.Close()
			t.Logf("truncated %s (half-close): %q", c.name, text)
			checkPutStatus(t, c.rel, status)
			if status < 400 || status >= 500 {
				t.Errorf("truncated %s (half-close): got %d %q, want a 4xx", c.name, status, text)
			}

			// Full close: nobody hears the answer; the upload must still
			// leave nothing and count as refused, never as a 5xx.
			conn, err = net.Dial("tcp", e.addr())
			if err != nil {
				t.Fatal(err)
			}
			conn.Write([]byte(head))
			conn.Write(half)
			time.Sleep(20 * time.Millisecond)
			conn.Close()

			route := map[string]string{"nar": "nar", "narinfo": "narinfo"}[c.name]
			deadline := time.Now().Add(10 * time.Second)
			for e.metric("nixrepo_uploads_total", map[string]string{"route": route, "outcome": "refused"}) < 2 {
				if time.Now().After(deadline) {
					t.Fatalf("the server did not finish the truncated uploads:\n%s", e.metrics())
				}
				time.Sleep(10 * time.Millisecond)
			}
			m := e.metrics()
			for _, code := range []string{"500", "502", "503", "504", "408", "429", "202"} {
				if v, ok := metricValue(m, "nixrepo_http_requests_total", map[string]string{"method": "PUT", "code": code}); ok && v > 0 {
					t.Errorf("a truncated upload was answered %s", code)
				}
			}
			sameSnapshot(t, "truncated uploads", before, snapshot(t, e.st))
		})
	}
}

// TestPutStalledTimesOutAndWritesNothing: a client that sends half its body and then nothing gets a
// 4xx after UploadStallTimeout, not a hang, and nothing is written.
func TestPutStalledTimesOutAndWritesNothing(t *testing.T) {
	for _, c := range []struct {
		name string
		rel  string
		body []byte
	}{
		{"nar", libNar, sample(t, libNar)},
		{"narinfo", dataHash + ".narinfo", sample(t, dataHash+".narinfo")},
		{"log", "log/" + libDrv, []byte(strings.Repeat("log line\n", 100))},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := defaultOptions()
			o.UploadStallTimeout = 300 * time.Millisecond
			e := newEnv(t, nil, o)
			if c.name == "narinfo" {
				if r := e.put("/api/nix/r/"+dataNar, writer, sample(t, dataNar)); r.status != 200 {
					t.Fatal(r)
				}
			}
			before := snapshot(t, e.st)
			conn, err := net.Dial("tcp", e.addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(15 * time.Second))
			start := time.Now()
			fmt.Fprintf(conn, "PUT /api/nix/r/%s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n", c.rel, writer.header(), len(c.body))
			conn.Write(c.body[:len(c.body)/2])
			// ... and wait, keeping the connection open.
			status, text := readRawResponse(conn)
			took := time.Since(start)
			t.Logf("stalled %s: %d after %s: %q", c.name, status, took.Round(time.Millisecond), text)
			checkPutStatus(t, c.rel, status)
			if status < 400 || status >= 500 {
				t.Errorf("stalled %s: got %d %q after %s, want a 4xx", c.name, status, text, took)
			} else if !strings.Contains(text, "stalled") {
				t.Errorf("BUG (minor): stalled %s: reason %q does not say the upload stalled (PutNar reports the request context's cancellation instead of the stall; see report)", c.name, text)
			}
			if took > 10*time.Second {
				t.Errorf("stalled upload answered only after %s", took)
			}
			sameSnapshot(t, "stalled upload", before, snapshot(t, e.st))
		})
	}
}

func TestPutConflictingNarInfo(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.uploadSample(dataHash)
	before := snapshot(t, e.st)
	ni := sampleNarInfo(t, dataHash)
	ni.NarHash = nix.SHA256(bytes.Repeat([]byte{1}, 32))
	r := e.put("/api/nix/r/"+dataHash+".narinfo", writer, ni.Bytes())
	wantStatus(t, "conflicting narinfo", r, http.StatusConflict)
	sameSnapshot(t, "conflicting narinfo", before, snapshot(t, e.st))
	checkVisible(t, e.st, "r", []string{dataNar, dataHash + ".narinfo", dataHash + ".ls"}, []string{dataNar})
}

func TestPutMalformedNarInfo(t *testing.T) {
	orig := string(sample(t, dataHash+".narinfo"))
	cases := map[string]string{
		"CRLF":             strings.ReplaceAll(orig, "\n", "\r\n"),
		"no final newline": strings.TrimSuffix(orig, "\n"),
		"Key:value":        strings.Replace(orig, "NarSize: 1240", "NarSize:1240", 1),
		"no StorePath":     strings.SplitN(orig, "\n", 2)[1],
		"empty":            "",
		"binary":           "\x00\x01\x02",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			if r := e.put("/api/nix/r/"+dataNar, writer, sample(t, dataNar)); r.status != 200 {
				t.Fatal(r)
			}
			r := e.put("/api/nix/r/"+dataHash+".narinfo", writer, []byte(body))
			wantStatus(t, "malformed narinfo", r, http.StatusBadRequest)
			checkVisible(t, e.st, "r", []string{dataNar}, []string{dataNar})
		})
	}
}

func TestPutUnsupportedContentEncoding(t *testing.T) {
	for _, enc := range []string{"compress", "deflate", "bzip2", "lz4", "br, gzip", "x-nix"} {
		e := newEnv(t, nil, nil)
		if r := e.put("/api/nix/r/"+dataNar, writer, sample(t, dataNar)); r.status != 200 {
			t.Fatal(r)
		}
		r := e.do(http.MethodPut, "/api/nix/r/"+dataHash+".narinfo", writer, sample(t, dataHash+".narinfo"), map[string]string{"Content-Encoding": enc})
		wantStatus(t, "narinfo with Content-Encoding "+enc, r, http.StatusBadRequest)
		checkVisible(t, e.st, "r", []string{dataNar}, []string{dataNar})
	}
	// A NAR file is stored as sent: no transport encoding on NAR uploads.
	e := newEnv(t, nil, nil)
	r := e.do(http.MethodPut, "/api/nix/r/"+dataNar, writer, sample(t, dataNar), map[string]string{"Content-Encoding": "gzip"})
	wantStatus(t, "NAR with Content-Encoding gzip", r, http.StatusBadRequest)
	checkVisible(t, e.st, "r", nil, nil)
}

// TestPutBadlyEncodedNarInfo: a body that is not what its Content-Encoding
// says is a 400.
func TestPutBadlyEncodedNarInfo(t *testing.T) {
	for _, enc := range []string{"br", "gzip", "zstd", "xz"} {
		e := newEnv(t, nil, nil)
		if r := e.put("/api/nix/r/"+dataNar, writer, sample(t, dataNar)); r.status != 200 {
			t.Fatal(r)
		}
		r := e.do(http.MethodPut, "/api/nix/r/"+dataHash+".narinfo", writer, sample(t, dataHash+".narinfo"), map[string]string{"Content-Encoding": enc})
		wantStatus(t, "plain narinfo labelled "+enc, r, http.StatusBadRequest)
		checkVisible(t, e.st, "r", []string{dataNar}, []string{dataNar})
	}
}

func encodeBody(t testing.TB, enc string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch enc {
	case "br":
		w := brotli.NewWriter(&buf)
		w.Write(b)
		w.Close()
	case "gzip":
		w := gzip.NewWriter(&buf)
		w.Write(b)
		w.Close()
	case "zstd":
		w, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		w.Close()
	default:
		t.Fatalf("no encoder for %s", enc)
	}
	return buf.Bytes()
}

// TestPutEncodedNarInfo: Nix ≥ 2.32 may compress narinfo uploads
// (narinfo-compression); the server decodes them, stores plain text and
// serves it without Content-Encoding.
func TestPutEncodedNarInfo(t *testing.T) {
	for _, enc := range []string{"br", "gzip", "zstd"} {
		t.Run(enc, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			plain := sample(t, dataHash+".narinfo")
			if r := e.put("/api/nix/r/"+dataNar, writer, sample(t, dataNar)); r.status != 200 {
				t.Fatal(r)
			}
			r := e.do(http.MethodPut, "/api/nix/r/"+dataHash+".narinfo", writer, encodeBody(t, enc, plain),
				map[string]string{"Content-Encoding": enc, "Content-Type": "text/x-nix-narinfo"})
			wantStatus(t, "narinfo with Content-Encoding "+enc, r, http.StatusOK)
			g := e.do(http.MethodGet, "/api/nix/r/"+dataHash+".narinfo", reader, nil, map[string]string{"Accept-Encoding": "br, gzip, zstd"})
			if g.status != 200 {
				t.Fatalf("GET: %s", g)
			}
			if ce := g.header.Get("Content-Encoding"); ce != "" {
				t.Errorf("narinfo served with Content-Encoding %q", ce)
			}
			ni, err := nix.ParseNarInfo(g.body)
			if err != nil {
				t.Fatalf("served narinfo does not parse: %v\n%q", err, g.body)
			}
			want := sampleNarInfo(t, dataHash)
			if ni.StorePath != want.StorePath || !ni.NarHash.Equal(want.NarHash) || ni.NarSize != want.NarSize {
				t.Errorf("served narinfo describes something else:\n%s", g.body)
			}
			if !ni.Verify([]nix.PublicKey{repoKey.Public()}) {
				t.Error("served narinfo is not signed by the repository key")
			}
			checkVisible(t, e.st, "r", []string{dataNar, dataHash + ".narinfo", dataHash + ".ls"}, []string{dataNar})
		})
	}
	// Listings and logs too (ls-compression, log-compression): stored
	// decoded.
	e := newEnv(t, nil, nil)
	ls := []byte(`{"version":1,"root":{"type":"regular","size":5}}`)
	r := e.do(http.MethodPut, "/api/nix/r/"+libHash+".ls", writer, encodeBody(t, "br", ls), map[string]string{"Content-Encoding": "br"})
	wantStatus(t, "br listing", r, http.StatusOK)
	if g := e.get("/api/nix/r/"+libHash+".ls", reader); g.status != 200 || !bytes.Equal(g.body, ls) || g.header.Get("Content-Encoding") != "" {
		t.Errorf("br listing served as %s %v", g, g.header)
	}
	logText := []byte("line 1\nline 2\n")
	r = e.do(http.MethodPut, "/api/nix/r/log/"+libDrv, writer, encodeBody(t, "zstd", logText), map[string]string{"Content-Encoding": "zstd"})
	wantStatus(t, "zstd log", r, http.StatusOK)
	if g := e.get("/api/nix/r/log/"+libDrv, reader); g.status != 200 || !bytes.Equal(g.body, logText) || g.header.Get("Content-Encoding") != "" {
		t.Errorf("zstd log served as %s %v", g, g.header)
	}
}

// TestPutNoSigningKey: a repository without a key refuses narinfo uploads
// with a 4xx (never 5xx).
func TestPutNoSigningKey(t *testing.T) {
	o := defaultOptions()
	o.Repos[0].Key = nix.SecretKey{}
	e := newEnv(t, nil, o)
	if r := e.put("/api/nix/r/"+dataNar, writer, sample(t, dataNar)); r.status >= 500 {
		t.Fatal(r)
	}
	r := e.put("/api/nix/r/"+dataHash+".narinfo", writer, sample(t, dataHash+".narinfo"))
	wantStatus(t, "narinfo to a repository without a key", r, http.StatusForbidden)
	if ok, _ := e.st.Exists(t.Context(), "r/"+dataHash+".narinfo"); ok {
		t.Error("narinfo written without a signing key")
	}
}

// TestPutUnknownObject: uploads of names that are no binary-cache object
// are 400 and write nothing; unknown repositories are 404.
func TestPutUnknownObject(t *testing.T) {
	e := newEnv(t, nil, nil)
	for _, rel := range []string{"", "x", "nar/abc.nar", "nar/" + strings.Repeat("0", 52) + ".nar.gz", dataHash + ".narinfo.tmp",
		"debuginfo/0123", "realisations/x.doi", "log/not-a-store-path", "_nixrepo/x", "nix-cache-info.bak"} {
		r := e.put("/api/nix/r/"+rel, writer, []byte("x"))
		wantStatus(t, "PUT "+rel, r, http.StatusBadRequest)
	}
	r := e.put("/api/nix/nope/nix-cache-info", writer, []byte("StoreDir: /nix/store\n"))
	wantStatus(t, "PUT to an unknown repository", r, http.StatusNotFound)
	r = e.put("/api/nix/r/nix-cache-info", writer, []byte("StoreDir: /gnu/store\n"))
	wantStatus(t, "nix-cache-info for another store", r, http.StatusBadRequest)
	checkVisible(t, e.st, "r", nil, nil)
}

// TestPutStoreFailure: when the bucket fails, a PUT still gets a 4xx (Nix
// ≤ 2.32 hangs on a retried PUT) whose body does not leak the error.
func TestPutStoreFailure(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.uploadSample(dataHash)
	e.st.Close()
	for _, c := range []struct{ rel, src string }{
		{libNar, libNar}, {libHash + ".narinfo", libHash + ".narinfo"}, {"log/" + libDrv, libHash + ".narinfo"},
	} {
		r := e.put("/api/nix/r/"+c.rel, writer, sample(t, c.src))
		if r.status < 400 || r.status >= 500 {
			t.Errorf("PUT %s on a closed bucket: got %s, want a 4xx", c.rel, r)
		}
		if strings.Contains(strings.ToLower(string(r.body)), "closed") || strings.Contains(string(r.body), "blob") {
			t.Errorf("PUT %s: body leaks the internal error: %q", c.rel, r.body)
		}
	}
}

// TestRepoContentsDoNotServeAnotherRepo: what one repository holds does not satisfy another's
// uploads or reads.
func TestRepoContentsDoNotServeAnotherRepo(t *testing.T) {
	e := newEnv(t, nil, nil)
	for _, h := range []string{dataHash} {
		ni := sampleNarInfo(t, h)
		if r := e.put("/api/nix/other/"+ni.URL, stranger, sample(t, ni.URL)); r.status != 200 {
			t.Fatal(r)
		}
		if r := e.put("/api/nix/other/"+h+".narinfo", stranger, sample(t, h+".narinfo")); r.status != 200 {
			t.Fatal(r)
		}
	}
	if r := e.get("/api/nix/other/"+dataHash+".narinfo", stranger); r.status != 200 {
		t.Fatalf("other: %s", r)
	}
	// r does not see other's narinfo or NAR.
	if r := e.get("/api/nix/r/"+dataHash+".narinfo", reader); r.status != 404 {
		t.Errorf("r serves other's narinfo: %s", r)
	}
	if r := e.get("/api/nix/r/"+dataNar, reader); r.status != 404 {
		t.Errorf("r serves other's NAR: %s", r)
	}
	// other's NAR does not stand in for r's.
	r := e.put("/api/nix/r/"+dataHash+".narinfo", writer, sample(t, dataHash+".narinfo"))
	wantStatus(t, "narinfo whose NAR is in another repository", r, http.StatusUnprocessableEntity)
	// other's narinfo does not satisfy a reference in r.
	e.put("/api/nix/r/"+libNar, writer, sample(t, libNar))
	r = e.put("/api/nix/r/"+libHash+".narinfo", writer, sample(t, libHash+".narinfo"))
	wantStatus(t, "reference present only in another repository", r, http.StatusUnprocessableEntity)
	var inR []string
	for _, k := range keysOf(snapshot(t, e.st)) {
		if strings.HasPrefix(k, "r/") {
			inR = append(inR, k)
		}
	}
	if strings.Join(inR, " ") != "r/"+libNar {
		t.Errorf("r holds %v, want only r/%s", inR, libNar)
	}
	// The signature in other is other's key, not r's.
	ni, _ := nix.ParseNarInfo(e.get("/api/nix/other/"+dataHash+".narinfo", stranger).body)
	if !ni.Verify([]nix.PublicKey{otherKey.Public()}) || ni.Verify([]nix.PublicKey{repoKey.Public()}) {
		t.Errorf("other's narinfo signatures: %v", ni.Sigs)
	}
}

// TestPutNarInfoReferenceWrongName: a reference must name a path the
// repository has, not only share its hash part. Nix looks a reference up by
// its hash part and then rejects a narinfo for another name ("asked for …
// but got …", protocols doc §2.4), so such a reference is as missing as an
// absent one, and the closure can never be substituted.
func TestPutNarInfoReferenceWrongName(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.uploadSample(dataHash)
	e.put("/api/nix/r/"+libNar, writer, sample(t, libNar))
	bad := strings.Replace(string(sample(t, libHash+".narinfo")),
		"References: "+dataHash+"-greeting-data-2.1", "References: "+dataHash+"-greeting-data-9.9", 1)
	if bad == string(sample(t, libHash+".narinfo")) {
		t.Fatal("test did not change the reference")
	}
	r := e.put("/api/nix/r/"+libHash+".narinfo", writer, []byte(bad))
	if r.status != http.StatusUnprocessableEntity {
		t.Errorf("BUG: narinfo referencing %s-greeting-data-9.9 while the repository has %s-greeting-data-2.1: got %s, want 422 (PutNarInfo checks references by hash part only; see report)", dataHash, dataHash, r)
	}

	// A "self-reference" with another name is a reference to a path that
	// does not exist either.
	e = newEnv(t, nil, nil)
	e.put("/api/nix/r/"+dataNar, writer, sample(t, dataNar))
	self := strings.Replace(string(sample(t, dataHash+".narinfo")), "References: \n", "References: "+dataHash+"-not-greeting-data\n", 1)
	if self == string(sample(t, dataHash+".narinfo")) {
		t.Fatal("test did not add the reference")
	}
	r = e.put("/api/nix/r/"+dataHash+".narinfo", writer, []byte(self))
	if r.status != http.StatusUnprocessableEntity {
		t.Errorf("BUG: narinfo for %s-greeting-data-2.1 referencing %s-not-greeting-data: got %s, want 422 (a reference with the path's own hash part is skipped whatever its name; see report)", dataHash, dataHash, r)
	}
}
