package server_test

import (
	"context"
	"encoding/json"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	_ "gocloud.dev/blob/fileblob"

	"github.com/nixrepo/nixrepo/index"
	"github.com/nixrepo/nixrepo/internal/store"
	"github.com/nixrepo/nixrepo/search"
	"github.com/nixrepo/nixrepo/server"
)

// replica serves the folder bucket dir through its own Store (as another
// process would: nothing shared but the folder), with its own search index
// and catalog updates every interval.
func replica(t *testing.T, dir string, interval time.Duration) *env {
	t.Helper()
	st, err := store.Open(context.Background(), "file://"+dir, "", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	idx := filepath.Join(t.TempDir(), "index")
	engine := search.NewEngine(st, idx)
	t.Cleanup(func() { engine.Close() })
	opts := defaultOptions()
	opts.Search = engine
	opts.Catalog = &server.CatalogUpdate{
		Repos:    []index.RepoInfo{{Name: "r"}, {Name: "other"}},
		Options:  &index.BuildOptions{IndexDir: idx, Workers: 4},
		Interval: interval,
	}
	return newEnv(t, st, opts)
}

// searchFinds asks e's search API for name (as the reader) until it
// answers with the package, and returns how long that took; the test fails
// past limit.
func (e *env) searchFinds(name string, limit time.Duration) time.Duration {
	e.t.Helper()
	start := time.Now()
	for {
		var res search.Response
		r := e.get("/api/search?q="+url.QueryEscape(name), reader)
		if r.status == 200 {
			if err := json.Unmarshal(r.body, &res); err != nil {
				e.t.Fatal(err)
			}
			if len(res.Results) > 0 && res.Results[0].Name == name {
				return time.Since(start)
			}
		}
		if time.Since(start) > limit {
			e.t.Fatalf("%s not found by the search of %s after %v (last answer %s)", name, e.ts.URL, limit, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An upload accepted by one replica is found by another replica's search
// (over the same bucket) within the catalog update interval, without
// anyone running "nixrepo index"; and the other way round.
func TestUploadSearchableOnOtherReplica(t *testing.T) {
	dir := t.TempDir()
	const interval = 300 * time.Millisecond
	a, b := replica(t, dir, interval), replica(t, dir, interval)

	a.uploadSample(dataHash)
	start := time.Now()
	d := b.searchFinds("greeting-data", 10*time.Second)
	t.Logf("uploaded to one replica, found by the other's search after %v (interval %v)", d.Round(time.Millisecond), interval)

	b.uploadSample(libHash)
	d = a.searchFinds("greeting-lib", 10*time.Second)
	t.Logf("and back: %v", d.Round(time.Millisecond))
	if time.Since(start) > 8*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	b.searchFinds("greeting-lib", 5*time.Second)
	a.searchFinds("greeting-data", 5*time.Second)
}

// With the interval at 0 the server never updates the catalog itself.
func TestCatalogUpdatesOff(t *testing.T) {
	dir := t.TempDir()
	a := replica(t, dir, 0)
	a.uploadSample(dataHash)
	time.Sleep(500 * time.Millisecond)
	if g, _ := index.Generation(context.Background(), a.st); g != 0 {
		t.Errorf("catalog generation %d with updates off, want none", g)
	}
}
