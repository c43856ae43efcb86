package server

import (
	"bufio"
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/nixrepo/nixrepo/internal/store"
)

// TestParseFastHead: which request heads the fast path takes (the rest go
// to net/http).
func TestParseFastHead(t *testing.T) {
	const p = "/api/nix/r/8yhfprxp9fym8hjpsb3z3hzsfbrk1z42.narinfo"
	tests := []struct {
		head string
		ok   bool
	}{
		{"GET " + p + " HTTP/1.1\r\nHost: h\r\n\r\n", true},
		{"HEAD " + p + " HTTP/1.1\r\nHost: h\r\nAuthorization: Basic eDp5\r\n\r\n", true},
		{"GET " + p + " HTTP/1.1\r\nhost: h\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\nUser-Agent: curl/7.88 Nix/2.8.0\r\nAccept: */*\r\n\r\n", true},
		{"GET " + p + " HTTP/1.0\r\nHost: h\r\n\r\n", false},
		{"POST " + p + " HTTP/1.1\r\nHost: h\r\n\r\n", false},
		{"GET " + p + "?a HTTP/1.1\r\nHost: h\r\n\r\n", false},
		{"GET /api/nix/r/%38yhf HTTP/1.1\r\nHost: h\r\n\r\n", false},
		{"GET /api/nix/r/./x HTTP/1.1\r\nHost: h\r\n\r\n", false},
		{"GET /api//r/x HTTP/1.1\r\nHost: h\r\n\r\n", false},
		{"GET http://h" + p + " HTTP/1.1\r\nHost: h\r\n\r\n", false},
		{"GET " + p + " HTTP/1.1\r\n\r\n", false},
		{"GET " + p + " HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", false},
		{"GET " + p + " HTTP/1.1\r\nHost: h\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", false},
		{"GET " + p + " HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false},
		{"GET " + p + " HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n", false},
		{"GET " + p + " HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"GET " + p + " HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n", false},
		{"GET " + p + " HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n\r\n", false},
		{"GET " + p + " HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", false},
		{"GET " + p + " HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n", false},
		{"GET " + p + " HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", false},
		{"GET " + p + " HTTP/1.1\r\nHost: h\r\nnocolon\r\n\r\n", false},
	}
	for _, tc := range tests {
		_, ok := parseFastHead([]byte(tc.head))
		if ok != tc.ok {
			t.Errorf("%q: ok = %v, want %v", tc.head, ok, tc.ok)
		}
	}
}

// TestPeekHead: a head is found without consuming it; an oversized or
// unfinished one is reported.
func TestPeekHead(t *testing.T) {
	head := "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
	br := bufio.NewReaderSize(strings.NewReader(head+"GET /next"), maxFastHead)
	got, err := peekHead(br, nil)
	if err != nil || string(got) != head {
		t.Fatalf("peekHead = %q, %v", got, err)
	}
	if br.Buffered() != len(head)+len("GET /next") {
		t.Fatalf("peekHead consumed input")
	}
	br = bufio.NewReaderSize(strings.NewReader("GET / HTTP/1.1\r\nX: "+strings.Repeat("a", maxFastHead)), maxFastHead)
	if _, err := peekHead(br, nil); err == nil {
		t.Fatalf("oversized head: no error")
	}
	br = bufio.NewReaderSize(strings.NewReader("GET / HTTP/1.1\r\nHost"), maxFastHead)
	if got, err := peekHead(br, nil); err == nil || len(got) == 0 {
		t.Fatalf("unfinished head: %q, %v", got, err)
	}
}

// FuzzParseFastHead: the parser never panics, and what it accepts has a
// well-formed request line.
func FuzzParseFastHead(f *testing.F) {
	f.Add([]byte("GET /api/nix/r/nix-cache-info HTTP/1.1\r\nHost: h\r\n\r\n"))
	f.Add([]byte("HEAD /x HTTP/1.1\r\nHost: h\r\nAuthorization: Basic eDp5\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 4 || string(b[len(b)-4:]) != "\r\n\r\n" || !strings.Contains(string(b), "\r\n") {
			return
		}
		r, ok := parseFastHead(b)
		if ok && (len(r.target) == 0 || r.target[0] != '/' || r.method != "GET" && r.method != "HEAD") {
			t.Fatalf("accepted %q as %+v", b, r)
		}
	})
}

// BenchmarkFastRequest: the fast path's work for one narinfo GET (parse,
// lookup in the memory cache, response, metrics), without the socket.
func BenchmarkFastRequest(b *testing.B) {
	st, err := store.Open(context.Background(), "mem://", "", false)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s, err := New(st, &Options{Repos: []Repo{{Name: "r", Public: true}}})
	if err != nil {
		b.Fatal(err)
	}
	const hash = "8yhfprxp9fym8hjpsb3z3hzsfbrk1z42"
	s.repos["r"].narinfos.add(hash, bytes.Repeat([]byte("x"), 500))
	req := []byte("GET /api/nix/r/" + hash + ".narinfo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1 Nix/2.8.0\r\nAccept: */*\r\n\r\n")
	rd := bytes.NewReader(req)
	br := bufio.NewReaderSize(rd, maxFastHead)
	out := make([]byte, 0, 4096)
	b.ReportAllocs()
	for range b.N {
		rd.Reset(req)
		br.Reset(rd)
		if n, ok := s.fastRequest(nil, br, &out, nil); !ok || n != len(req) {
			b.Fatal("not answered")
		}
	}
}
