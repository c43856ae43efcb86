package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/internal/nix"
)

// problems collects failures from many goroutines, keeping the first few
// of each kind.
type problems struct {
	mu     sync.Mutex
	counts map[string]int
	first  map[string]string
}

func (p *problems) add(kind, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.counts == nil {
		p.counts, p.first = map[string]int{}, map[string]string{}
	}
	p.counts[kind]++
	if p.counts[kind] == 1 {
		p.first[kind] = fmt.Sprintf(format, args...)
	}
}

func (p *problems) report(t *testing.T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	kinds := make([]string, 0, len(p.counts))
	for k := range p.counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		t.Errorf("%s: %d times; first: %s", k, p.counts[k], p.first[k])
	}
}

// statusCounter counts statuses by label.
type statusCounter struct {
	mu sync.Mutex
	m  map[string]int
}

func (s *statusCounter) inc(label string, status int) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[string]int{}
	}
	s.m[fmt.Sprintf("%s %d", label, status)]++
	s.mu.Unlock()
}

// TestConcurrentUploadsAndReads: 20 uploaders push overlapping closures of
// generated paths (NAR first, then narinfo, dependencies first, as nix copy
// does) while 100 readers fetch narinfos and NARs. Every upload must be 200,
// every read 200/206 or 404, a path once accepted never disappears, a served
// narinfo never changes, references of a served narinfo are served, NARs
// hash to their NarHash, and afterwards ingest.Verify finds no problem.
func TestConcurrentUploadsAndReads(t *testing.T) {
	dur := 30 * time.Second
	if testing.Short() {
		dur = 3 * time.Second
	}
	const (
		nPaths       = 150
		nUploaders   = 20
		nReaders     = 100
		maxRounds    = 100000 // per goroutine: loops are bounded even if the clock is not
		maxReadLoops = 1000000
	)
	st := fileStore(t)
	o := defaultOptions()
	o.MaxUploads = 8 // fewer slots than uploaders: some wait for one
	o.NarInfoCacheEntries = 50
	e := newEnv(t, st, o)
	paths := genPaths(t, nPaths)
	upstream := mustKey("upstream-1")
	// An alternative narinfo per path, with an extra upstream signature:
	// same NarHash, different bytes. Whichever is written first must stay.
	alt := make([][]byte, nPaths)
	for i, p := range paths {
		ni, err := nix.ParseNarInfo(p.narinfo)
		if err != nil {
			t.Fatal(err)
		}
		ni.Sign(upstream)
		alt[i] = ni.Bytes()
	}
	closure := func(i int) []int {
		seen := map[int]bool{}
		var walk func(int)
		walk = func(j int) {
			if seen[j] {
				return
			}
			seen[j] = true
			for _, r := range paths[j].refs {
				walk(r)
			}
		}
		walk(i)
		out := make([]int, 0, len(seen))
		for j := range seen {
			out = append(out, j)
		}
		sort.Ints(out) // references have lower indexes: a topological order
		return out
	}

	var (
		accepted = make([]atomic.Bool, nPaths)
		served   = make([]atomic.Pointer[[]byte], nPaths)
		probs    problems
		statuses statusCounter
		requests atomic.Int64
		wg       sync.WaitGroup
	)
	deadline := time.Now().Add(dur)
	ctx := context.Background()

	do := func(method, rel string, c cred, body []byte, hdr map[string]string) (int, []byte, http.Header) {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, _ := http.NewRequestWithContext(ctx, method, e.ts.URL+"/api/nix/r/"+rel, rd)
		c.apply(req)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		requests.Add(1)
		res, err := e.client.Do(req)
		if err != nil {
			probs.add("transport error", "%s %s: %v", method, rel, err)
			return 0, nil, nil
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			probs.add("body read error", "%s %s: %v", method, rel, err)
		}
		return res.StatusCode, b, res.Header
	}

	for u := 0; u < nUploaders; u++ {
		wg.Add(1)
		go func(u int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(u), 42))
			who := cred{name: "w", user: fmt.Sprintf("uploader-%d", u), pass: writeSecret}
			nixLike := u%2 == 0 // check first, as nix copy does
			for round := 0; round < maxRounds && time.Now().Before(deadline); round++ {
				if u%5 == 4 && round%4 == 3 {
					// Hostile uploads mixed in: a NAR whose bytes are not
					// its name, and a narinfo contradicting a path.
					j := rng.IntN(nPaths)
					s, b, _ := do("PUT", paths[j].narRel, who, paths[(j+1)%nPaths].nar, nil)
					statuses.inc("PUT bad nar", s)
					if s != http.StatusUnprocessableEntity {
						probs.add("bad NAR not 422", "PUT %s with another NAR's bytes: %d %q", paths[j].narRel, s, b)
					}
					ni, _ := nix.ParseNarInfo(paths[j].narinfo)
					other, _ := nix.ParseNarInfo(paths[(j+1)%nPaths].narinfo)
					ni.NarHash, ni.NarSize = other.NarHash, other.NarSize
					s, b, _ = do("PUT", paths[j].hash+".narinfo", who, ni.Bytes(), nil)
					statuses.inc("PUT bad narinfo", s)
					// 409 once the path is there, 422 (claims do not match
					// the NAR) before.
					if s != http.StatusConflict && s != http.StatusUnprocessableEntity {
						probs.add("conflicting narinfo not 409/422", "PUT %s.narinfo: %d %q", paths[j].hash, s, b)
					}
					if accepted[j].Load() && s != http.StatusConflict {
						probs.add("conflict with an accepted path not 409", "PUT %s.narinfo: %d %q", paths[j].hash, s, b)
					}
					continue
				}
				for _, j := range closure(rng.IntN(nPaths)) {
					if time.Now().After(deadline) {
						break
					}
					p := paths[j]
					if nixLike {
						s, _, _ := do("GET", p.hash+".narinfo", who, nil, nil)
						statuses.inc("upload-check narinfo", s)
						if s == 200 {
							continue
						}
						s, _, _ = do("HEAD", p.narRel, who, nil, nil)
						statuses.inc("upload-check nar", s)
						if s != 200 {
							s, b, _ := do("PUT", p.narRel, who, p.nar, nil)
							statuses.inc("PUT nar", s)
							if s != 200 {
								probs.add("NAR upload not 200", "PUT %s: %d %q", p.narRel, s, b)
								continue
							}
						}
					} else {
						s, b, _ := do("PUT", p.narRel, who, p.nar, map[string]string{"Content-Type": "application/x-nix-nar"})
						statuses.inc("PUT nar", s)
						if s != 200 {
							probs.add("NAR upload not 200", "PUT %s: %d %q", p.narRel, s, b)
							continue
						}
					}
					body := p.narinfo
					if rng.IntN(2) == 0 {
						body = alt[j]
					}
					s, b, _ := do("PUT", p.hash+".narinfo", who, body, map[string]string{"Content-Type": "text/x-nix-narinfo"})
					statuses.inc("PUT narinfo", s)
					if s != 200 {
						probs.add("narinfo upload not 200", "PUT %s.narinfo: %d %q", p.hash, s, b)
						continue
					}
					accepted[j].Store(true)
				}
			}
		}(u)
	}

	for r := 0; r < nReaders; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			who := reader
			for loop := 0; loop < maxReadLoops && time.Now().Before(deadline); loop++ {
				j := rng.IntN(nPaths)
				p := paths[j]
				was := accepted[j].Load()
				method := "GET"
				if rng.IntN(4) == 0 {
					method = "HEAD"
				}
				s, b, _ := do(method, p.hash+".narinfo", who, nil, nil)
				statuses.inc(method+" narinfo", s)
				switch {
				case s == 404:
					if was {
						probs.add("accepted narinfo 404", "%s.narinfo was accepted, then served 404", p.hash)
					}
					continue
				case s != 200:
					probs.add("unexpected narinfo status", "%s %s.narinfo: %d %q", method, p.hash, s, b)
					continue
				case method == "HEAD":
					continue
				}
				if prev := served[j].Load(); prev == nil {
					cp := bytes.Clone(b)
					if !served[j].CompareAndSwap(nil, &cp) && !bytes.Equal(*served[j].Load(), b) {
						probs.add("narinfo changed", "%s.narinfo served two different contents", p.hash)
					}
				} else if !bytes.Equal(*prev, b) {
					probs.add("narinfo changed", "%s.narinfo changed after it was served:\n%s\nthen\n%s", p.hash, *prev, b)
				}
				ni, err := nix.ParseNarInfo(b)
				if err != nil {
					probs.add("served narinfo malformed", "%s: %v", p.hash, err)
					continue
				}
				if !ni.Verify([]nix.PublicKey{repoKey.Public()}) {
					probs.add("served narinfo unsigned", "%s: sigs %v", p.hash, ni.Sigs)
				}
				// Narinfo served ⇒ NAR served, whole or in part.
				if rng.IntN(3) == 0 {
					s, nb, h := do("GET", ni.URL, who, nil, map[string]string{"Range": "bytes=8-23"})
					statuses.inc("GET nar range", s)
					if s != http.StatusPartialContent || !bytes.Equal(nb, p.nar[8:24]) || h.Get("Accept-Ranges") != "bytes" {
						probs.add("NAR range", "%s: %d, %d bytes", ni.URL, s, len(nb))
					}
				} else {
					s, nb, _ := do("GET", ni.URL, who, nil, nil)
					statuses.inc("GET nar", s)
					sum := sha256.Sum256(nb)
					if s != 200 || !nix.SHA256(sum[:]).Equal(ni.NarHash) {
						probs.add("NAR of a served narinfo", "%s: %d, %d bytes, hash mismatch %v", ni.URL, s, len(nb), s == 200)
					}
				}
				// Narinfo served ⇒ its references are served.
				for _, ref := range ni.References {
					s, _, _ := do("HEAD", ref.HashPart()+".narinfo", who, nil, nil)
					statuses.inc("HEAD ref narinfo", s)
					if s != 200 {
						probs.add("reference of a served narinfo missing", "%s references %s: HEAD %d", p.hash, ref.Base(), s)
					}
				}
			}
		}(r)
	}
	wg.Wait()
	probs.report(t)

	allowed := map[int]bool{200: true, 206: true, 404: true, 409: true, 422: true}
	var nAccepted int
	for j := range accepted {
		if accepted[j].Load() {
			nAccepted++
		}
	}
	statuses.mu.Lock()
	labels := make([]string, 0, len(statuses.m))
	for l := range statuses.m {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		var s int
		fmt.Sscanf(l[len(l)-3:], "%d", &s)
		bad := l[:len("PUT bad")] == "PUT bad"
		if !allowed[s] || (s == 409 || s == 422) != bad {
			t.Errorf("unexpected status: %s × %d", l, statuses.m[l])
		}
		t.Logf("%-28s %d", l, statuses.m[l])
	}
	statuses.mu.Unlock()
	t.Logf("%d requests in %s; %d of %d paths accepted", requests.Load(), dur, nAccepted, nPaths)
	if nAccepted == 0 {
		t.Fatal("no path was accepted")
	}
	m := e.metrics()
	for _, code := range []string{"500", "502", "503", "504", "408", "429", "202"} {
		if v, ok := metricValue(m, "nixrepo_http_requests_total", map[string]string{"code": code}); ok && v > 0 {
			t.Errorf("the server answered %s", code)
		}
	}

	rep, err := ingest.Verify(ctx, st.Repo("r"), &ingest.VerifyOptions{Keys: []nix.PublicKey{repoKey.Public()}, Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 0 {
		t.Errorf("verify: %d of %d paths failed: %+v", rep.Failed, rep.Checked, rep.Problems)
	}
	if rep.Checked != nAccepted {
		t.Errorf("verify checked %d paths, %d were accepted", rep.Checked, nAccepted)
	}
	checkNoStrayObjects(t, e, paths, accepted)
}

// checkNoStrayObjects: the repository holds only the accepted paths'
// narinfos and listings, and NAR files that were uploaded.
func checkNoStrayObjects(t *testing.T, e *env, paths []*genPath, accepted []atomic.Bool) {
	t.Helper()
	known := map[string]bool{}
	for j, p := range paths {
		known["r/"+p.narRel] = true
		if accepted[j].Load() {
			known["r/"+p.hash+".narinfo"] = true
			known["r/"+p.hash+".ls"] = true
		}
	}
	for k := range snapshot(t, e.st) {
		if len(k) > 2 && k[:2] == "r/" && !known[k] {
			t.Errorf("unexpected object %s", k)
		}
	}
}
