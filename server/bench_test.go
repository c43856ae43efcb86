package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nixrepo/nixrepo/internal/store"
)

// benchServer is a server over a repository holding the sample cache.
func benchServer(b *testing.B, st *store.Store) http.Handler {
	b.Helper()
	e := newEnv(b, st, nil)
	e.uploadSample(dataHash, libHash, helloHash)
	return e.srv
}

func benchGet(b *testing.B, h http.Handler, path string, wantLen int) {
	b.Helper()
	b.ReportAllocs()
	b.SetBytes(int64(wantLen))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.SetBasicAuth("nix", readSecret)
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK || w.Body.Len() != wantLen {
				b.Fatalf("GET %s: %d, %d bytes", path, w.Code, w.Body.Len())
			}
		}
	})
}

func BenchmarkGetNarInfo(b *testing.B) {
	for _, kind := range []string{"mem", "file"} {
		b.Run(kind, func(b *testing.B) {
			st := memStore(b)
			if kind == "file" {
				st = fileStore(b)
			}
			h := benchServer(b, st)
			n := len(getBody(b, h, "/api/nix/r/"+helloHash+".narinfo"))
			benchGet(b, h, "/api/nix/r/"+helloHash+".narinfo", n)
		})
	}
}

func BenchmarkGetNar(b *testing.B) {
	for _, kind := range []string{"mem", "file"} {
		b.Run(kind, func(b *testing.B) {
			st := memStore(b)
			if kind == "file" {
				st = fileStore(b)
			}
			h := benchServer(b, st)
			benchGet(b, h, "/api/nix/r/"+helloNar, len(sample(b, helloNar)))
		})
	}
}

// BenchmarkGetNarHTTP goes through a real connection (sendfile for file
// buckets).
func BenchmarkGetNarHTTP(b *testing.B) {
	e := newEnv(b, fileStore(b), nil)
	e.uploadSample(dataHash, libHash, helloHash)
	want := len(sample(b, helloNar))
	b.ReportAllocs()
	b.SetBytes(int64(want))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/api/nix/r/"+helloNar, nil)
			req.SetBasicAuth("nix", readSecret)
			res, err := e.client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || n != int64(want) {
				b.Fatalf("%d, %d bytes", res.StatusCode, n)
			}
		}
	})
}

func getBody(b *testing.B, h http.Handler, path string) []byte {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.SetBasicAuth("nix", readSecret)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 {
		b.Fatalf("GET %s: %d", path, w.Code)
	}
	return w.Body.Bytes()
}
