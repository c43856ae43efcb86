package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/server"
)

var dateLine = regexp.MustCompile(`(?m)^Date: [^\r]*\r$`)

// exchange sends raw on a fresh connection, then a request that makes the
// server close the connection, and returns everything the server sent with
// Date headers masked.
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw+"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("%q: %v (read %q)", raw, err, b)
	}
	return dateLine.ReplaceAllString(string(b), "Date: (masked)\r")
}

// TestFastPathSameBytes: the read fast path answers exactly what net/http
// answers, byte for byte (Date aside), for the requests it serves and for
// every corner case it hands over, alone and pipelined.
func TestFastPathSameBytes(t *testing.T) {
	storeKinds(t, func(t *testing.T, st *store.Store) {
		opts := defaultOptions()
		opts.Repos = append(opts.Repos, server.Repo{Name: "pub", Public: true, Key: otherKey})
		e := newEnv(t, st, opts) // Server.Serve: fast path
		e.uploadSample(dataHash, libHash)
		plain := httptest.NewServer(e.srv) // net/http only
		t.Cleanup(plain.Close)
		plainAddr := strings.TrimPrefix(plain.URL, "http://")

		auth := reader.header()
		get := func(path, extra string) string {
			return "GET " + path + " HTTP/1.1\r\nHost: h\r\n" + extra + "\r\n"
		}
		present := "/api/nix/r/" + dataHash + ".narinfo"
		missing := "/api/nix/r/" + strings.Repeat("0", 32) + ".narinfo"
		cases := map[string]string{
			"narinfo":                 get(present, auth),
			"narinfo HEAD":            "HEAD " + present + " HTTP/1.1\r\nHost: h\r\n" + auth + "\r\n",
			"narinfo missing":         get(missing, auth),
			"narinfo missing HEAD":    "HEAD " + missing + " HTTP/1.1\r\nHost: h\r\n" + auth + "\r\n",
			"cache info":              get("/api/nix/r/nix-cache-info", auth),
			"cache info public":       get("/api/nix/pub/nix-cache-info", ""),
			"narinfo public missing":  get("/api/nix/pub/"+dataHash+".narinfo", ""),
			"anonymous":               get(present, ""),
			"wrong password":          get(present, wrongPass.header()),
			"other repo token":        get(present, stranger.header()),
			"bearer":                  get(present, "Authorization: Bearer x\r\n"),
			"lowercase basic":         get(present, "Authorization: basic "+strings.TrimPrefix(strings.TrimSuffix(auth, "\r\n"), "Authorization: Basic ")+"\r\n"),
			"unknown repo":            get("/api/nix/nope/"+dataHash+".narinfo", auth),
			"bad hash":                get("/api/nix/r/"+strings.Repeat("e", 32)+".narinfo", auth),
			"nar":                     get("/api/nix/r/"+dataNar, auth),
			"listing":                 get("/api/nix/r/"+dataHash+".ls", auth),
			"query string":            get(present+"?x=1", auth),
			"percent-encoded":         get("/api/nix/r/"+dataHash+"%2Enarinfo", auth),
			"dot segment":             get("/api/nix/r/../r/"+dataHash+".narinfo", auth),
			"double slash":            get("/api/nix//r/"+dataHash+".narinfo", auth),
			"HTTP/1.0":                "GET " + present + " HTTP/1.0\r\nHost: h\r\n" + auth + "\r\n",
			"lowercase method":        "get " + present + " HTTP/1.1\r\nHost: h\r\n" + auth + "\r\n",
			"POST":                    "POST " + present + " HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n" + auth + "\r\n",
			"no Host":                 "GET " + present + " HTTP/1.1\r\n" + auth + "\r\n",
			"two Hosts":               get(present, "Host: i\r\n"+auth),
			"two Authorizations":      get(present, auth+auth),
			"Connection close":        get(present, "Connection: close\r\n"+auth),
			"Connection keep-alive":   get(present, "Connection: keep-alive\r\n"+auth),
			"Expect":                  get(present, "Expect: 100-continue\r\n"+auth),
			"body":                    get(present, "Content-Length: 5\r\n"+auth) + "hello",
			"empty body":              get(present, "Content-Length: 0\r\n"+auth),
			"chunked":                 get(present, "Transfer-Encoding: chunked\r\n"+auth) + "0\r\n\r\n",
			"folded header":           get(present, "X-A: a\r\n b\r\n"+auth),
			"header without colon":    get(present, "X-A\r\n"+auth),
			"control byte in value":   get(present, "X-A: a\x01b\r\n"+auth),
			"mixed-case header names": get(present, "hOsT: h\r\nAUTHORIZATION: "+strings.TrimPrefix(auth, "Authorization: ")),
			"absolute form":           "GET http://h" + present + " HTTP/1.1\r\nHost: h\r\n" + auth + "\r\n",
			"large head":              get(present, "X-Big: "+strings.Repeat("a", 10<<10)+"\r\n"+auth),
			"Range":                   get(present, "Range: bytes=0-3\r\n"+auth),
			"If-None-Match":           get(present, "If-None-Match: *\r\n"+auth),
			"pipelined":               get(present, auth) + get(missing, auth) + get("/api/nix/r/"+dataNar, auth) + get(present, auth),
			"NAR then narinfo":        get("/api/nix/r/"+dataNar, auth) + get(present, auth),
			"NAR HEAD":                "HEAD /api/nix/r/" + dataNar + " HTTP/1.1\r\nHost: h\r\n" + auth + "\r\n",
			"NAR Range":               get("/api/nix/r/"+dataNar, "Range: bytes=10-20\r\n"+auth),
			"NAR If-Modified-Since":   get("/api/nix/r/"+dataNar, "If-Modified-Since: Mon, 02 Jan 2090 15:04:05 GMT\r\n"+auth),
			"NAR missing":             get("/api/nix/r/nar/"+strings.Repeat("1", 52)+".nar.xz", auth),
			"NAR anonymous":           get("/api/nix/r/"+dataNar, ""),
		}
		for name, raw := range cases {
			fast := exchange(t, e.addr(), raw)
			want := exchange(t, plainAddr, raw)
			if fast != want {
				t.Errorf("%s: the fast path answered\n%q\nnet/http answers\n%q", name, fast, want)
			}
			if !strings.HasPrefix(fast, "HTTP/1.") {
				t.Errorf("%s: no response: %q", name, fast)
			}
		}
	})
}

// TestFastPathKeepAlive: on one connection, narinfo reads (fast path), a
// NAR (handed over to net/http) and narinfo reads again all answer
// correctly, as a client would see them.
func TestFastPathKeepAlive(t *testing.T) {
	e := newEnv(t, fileStore(t), nil)
	e.uploadSample(dataHash, libHash)
	tr := &http.Transport{MaxConnsPerHost: 1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	var conns int
	for i, rel := range []string{dataHash + ".narinfo", "nix-cache-info", libHash + ".narinfo", dataNar, dataHash + ".narinfo", strings.Repeat("1", 32) + ".narinfo", libNar} {
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/api/nix/r/"+rel, nil)
		reader.apply(req)
		trace := &httptraceConn{}
		req = req.WithContext(trace.context(context.Background()))
		res, err := c.Do(req)
		if err != nil {
			t.Fatalf("%d %s: %v", i, rel, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		want := 200
		if strings.HasPrefix(rel, "1111") {
			want = 404
		}
		if res.StatusCode != want {
			t.Fatalf("%d %s: %d %q", i, rel, res.StatusCode, b)
		}
		switch {
		case strings.HasSuffix(rel, ".narinfo") && want == 200:
			if !bytes.HasPrefix(b, []byte("StorePath: /nix/store/"+rel[:32]+"-")) {
				t.Errorf("%d %s: body %q", i, rel, b)
			}
		case strings.HasPrefix(rel, "nar/"):
			if !bytes.Equal(b, sample(t, rel)) {
				t.Errorf("%d %s: body differs from the uploaded NAR", i, rel)
			}
		}
		if !trace.reused {
			conns++
		}
	}
	if conns != 1 {
		t.Errorf("%d connections for 7 requests, want 1 (keep-alive across the hand-over)", conns)
	}
}

// TestFastPathLargeNar: a NAR file of several megabytes arrives whole
// from the fast path (blocking sendfile), on a kept-alive connection.
func TestFastPathLargeNar(t *testing.T) {
	st := fileStore(t)
	e := newEnv(t, st, nil)
	big := make([]byte, 9<<20+123)
	rand.Read(big)
	sum := sha256.Sum256(big)
	rel := store.NarFile(nix.SHA256(sum[:]), "zstd")
	if err := st.Put(context.Background(), "r/"+rel, big, nil); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r := e.get("/api/nix/r/"+rel, reader)
		if r.status != 200 || !bytes.Equal(r.body, big) || r.header.Get("Content-Length") != strconv.Itoa(len(big)) {
			t.Fatalf("GET %s: %d, %d bytes (Content-Length %s), want %d", rel, r.status, len(r.body), r.header.Get("Content-Length"), len(big))
		}
	}
	if v := e.metric("nixrepo_http_response_bytes_total", map[string]string{"route": "nar"}); v != float64(3*len(big)) {
		t.Errorf("NAR bytes metric %v, want %d", v, 3*len(big))
	}
}

// TestFastPathShutdown: shutting the server down ends idle fast-path
// connections promptly.
func TestFastPathShutdown(t *testing.T) {
	st := fileStore(t)
	srv, err := server.New(st, &server.Options{Repos: []server.Repo{{Name: "r", Public: true}}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln, hs) }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /api/nix/r/nix-cache-info HTTP/1.1\r\nHost: h\r\n\r\n")
	if st, _ := readRawResponse(conn); st != 200 {
		t.Fatalf("nix-cache-info: %d", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := hs.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-done; err != http.ErrServerClosed {
		t.Fatalf("Serve: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle connection after shutdown: read %d, %v; want EOF", n, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %s", d)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Errorf("the listener still accepts after shutdown")
	}
}

// httptraceConn records whether a request reused a connection.
type httptraceConn struct{ reused bool }

func (h *httptraceConn) context(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { h.reused = i.Reused },
	})
}

// TestJournalNotesAcceptedUploadsOnly: accepted uploads reach the repository's path journal within
// a few seconds (Serve flushes it), refused ones never do.
func TestJournalNotesAcceptedUploadsOnly(t *testing.T) {
	opts := defaultOptions()
	opts.JournalFlushInterval = 100 * time.Millisecond
	e := newEnv(t, fileStore(t), opts)
	e.uploadSample(dataHash, libHash)
	bad := sampleNarInfo(t, helloHash)
	bad.NarSize++
	if r := e.put("/api/nix/r/"+helloHash+".narinfo", writer, bad.Bytes()); r.status < 400 {
		t.Fatalf("bad narinfo accepted: %s", r)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs, _, _, err := e.st.ReadJournal(context.Background(), "r")
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 2 {
			for _, h := range []string{dataHash, libHash} {
				want := sampleNarInfo(t, h)
				if r := recs[h]; r.StorePath != want.StorePath.Absolute() || r.NarSize != want.NarSize || r.Time == 0 {
					t.Errorf("journal note for %s: %+v", h, r)
				}
			}
			return
		}
		if len(recs) > 2 || time.Now().After(deadline) {
			t.Fatalf("journal holds %d notes, want the 2 accepted paths", len(recs))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFastPathHeaderTimeout: a request head that stops half-way is cut off
// after ReadHeaderTimeout, not the (longer) idle timeout.
func TestFastPathHeaderTimeout(t *testing.T) {
	srv, err := server.New(fileStore(t), &server.Options{Repos: []server.Repo{{Name: "r", Public: true}}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: time.Minute}
	go srv.Serve(ln, hs)
	defer hs.Close()
	for _, first := range []string{"", "GET /api/nix/r/nix-cache-info HTTP/1.1\r\nHost: h\r\n\r\n"} {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if first != "" { // a request first: the deadline then is the idle one
			io.WriteString(conn, first)
			if st, _ := readRawResponse(conn); st != 200 {
				t.Fatalf("first request: %d", st)
			}
		}
		io.WriteString(conn, "GET /api/nix/r/nix-cache-info HTTP/1.1\r\nHo")
		start := time.Now()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(make([]byte, 1))
		if d := time.Since(start); err == nil || d > 5*time.Second {
			t.Errorf("half a head (after %q): read %d, %v after %s; want the connection closed after about 300 ms", first, n, err, d)
		}
		conn.Close()
	}
}

// TestJournalFlushedOverTLS: the path journal is written on its interval
// when serving TLS too, not only when the process ends.
func TestJournalFlushedOverTLS(t *testing.T) {
	st := fileStore(t)
	srv, err := server.New(st, &server.Options{Repos: []server.Repo{{Name: "r", Public: true}}, JournalFlushInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cert, key := selfSignedCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, hs, cert, key) }()
	defer func() {
		hs.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeTLS: %v", err)
		}
	}()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + ln.Addr().String() + "/api/nix/r/nix-cache-info")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET nix-cache-info over TLS: %s", resp.Status)
	}
	sp := nix.StoreDir + "/" + dataHash + "-data"
	st.Repo("r").Note(store.JournalRecord{StorePath: sp, NarSize: 1, FileSize: 1, Time: 1})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		recs, _, _, err := st.ReadJournal(context.Background(), "r")
		if err != nil {
			t.Fatal(err)
		}
		if recs[dataHash].StorePath == sp {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the note was not flushed while serving TLS")
		}
	}
}

// selfSignedCert writes a certificate and key for 127.0.0.1 and returns
// their files.
func selfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
