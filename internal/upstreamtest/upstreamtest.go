// Package upstreamtest is a fake upstream binary cache for tests: an HTTP
// server over a binary-cache folder (as written by `nix copy --to file://`)
// whose narinfos it signs with a test key, with switchable faults.
package upstreamtest

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nixrepo/nixrepo/internal/nix"
)

// Fault is a misbehaviour of the upstream.
type Fault int

const (
	None         Fault = iota
	Slow               // wait Delay before answering
	Status500          // answer 500
	Truncate           // send half the body, then close the connection
	WrongSig           // narinfo signatures do not verify
	WrongNarHash       // narinfo claims another NarHash
)

// Server is a running fake upstream.
type Server struct {
	*httptest.Server
	Dir string
	Key nix.SecretKey
	// Delay is used by the Slow fault.
	Delay time.Duration

	mu     sync.Mutex
	faults map[string]Fault // path substring → fault ("" = every path)
	counts map[string]int
}

// New serves dir, signing every narinfo with key.
func New(dir string, key nix.SecretKey) *Server {
	s := &Server{Dir: dir, Key: key, faults: map[string]Fault{}, counts: map[string]int{}, Delay: 2 * time.Second}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// SetFault makes requests whose path contains match misbehave (match ""
// applies to all; None clears).
func (s *Server) SetFault(match string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == None {
		delete(s.faults, match)
		return
	}
	s.faults[match] = f
}

// Count is how many requests asked for path (e.g. "/nar/….nar.xz").
func (s *Server) Count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[path]
}

// Requests is the total number of requests whose path has the suffix.
func (s *Server) Requests(suffix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p, c := range s.counts {
		if strings.HasSuffix(p, suffix) {
			n += c
		}
	}
	return n
}

func (s *Server) fault(path string) Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[path]++
	for m, f := range s.faults {
		if strings.Contains(path, m) {
			return f
		}
	}
	return None
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	f := s.fault(r.URL.Path)
	switch f {
	case Slow:
		select {
		case <-time.After(s.Delay):
		case <-r.Context().Done():
			return
		}
	case Status500:
		http.Error(w, "upstream broke", http.StatusInternalServerError)
		return
	}
	rel := strings.TrimPrefix(filepath.Clean("/"+r.URL.Path), "/")
	data, err := os.ReadFile(filepath.Join(s.Dir, filepath.FromSlash(rel)))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if strings.HasSuffix(rel, ".narinfo") {
		if data, err = s.signed(data, f); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	if f == Truncate {
		w.Header().Set("Content-Length", itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:len(data)/2])
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		panic(http.ErrAbortHandler)
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

func (s *Server) signed(data []byte, f Fault) ([]byte, error) {
	ni, err := nix.ParseNarInfo(data)
	if err != nil {
		return nil, err
	}
	ni.Sigs = nil
	if err := ni.Sign(s.Key); err != nil {
		return nil, err
	}
	switch f {
	case WrongSig:
		sig := []byte(ni.Sigs[0])
		i := len(sig) - 10
		if sig[i] == 'A' {
			sig[i] = 'B'
		} else {
			sig[i] = 'A'
		}
		ni.Sigs[0] = string(sig)
	case WrongNarHash:
		d := append([]byte(nil), ni.NarHash.Digest...)
		d[0] ^= 0xff
		ni.NarHash = nix.SHA256(d)
		ni.Sigs = nil
		if err := ni.Sign(s.Key); err != nil { // a validly signed lie
			return nil, err
		}
	}
	return ni.Bytes(), nil
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}
