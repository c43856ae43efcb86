package index

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nixrepo/nixrepo/internal/store"
)

// folderFixtures opens one folder bucket n times: n Stores that share
// nothing but the folder, as n processes would.
func folderFixtures(t *testing.T, n int) []*fixture {
	t.Helper()
	dir := t.TempDir()
	var out []*fixture
	for range n {
		st, err := store.Open(context.Background(), "file://"+dir, "", false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		out = append(out, &fixture{t: t, ctx: context.Background(), st: st})
	}
	return out
}

// watchGeneration records, until stop is called, whether the catalog's
// generation ever went backwards (read through st every millisecond).
func watchGeneration(t *testing.T, st *store.Store) (stop func()) {
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		last := int64(0)
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			g, err := Generation(context.Background(), st)
			if err != nil {
				continue // (a manifest replaced while read)
			}
			if g < last {
				t.Errorf("the catalog's generation went back from %d to %d", last, g)
			}
			last = max(last, g)
		}
	})
	return func() { close(done); wg.Wait() }
}

// Two processes updating the catalog of one folder bucket at once, each
// after writing its own new narinfos: once both updates returned, the
// catalog has every narinfo (no further update needed), its state agrees
// with its packages (a third update finds nothing new), the generation
// never went backwards, and each process's search index has everything.
func TestConcurrentUpdatesTwoStores(t *testing.T) {
	setClaimTiming(t, claimLease, claimBeat, 10*time.Millisecond)
	fs := folderFixtures(t, 3)
	a, b, watcher := fs[0], fs[1], fs[2]
	a.add("main", "seed-1.0", "", 10)
	dirs := []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")}
	if _, err := Update(a.ctx, a.st, repoInfos("main"), &BuildOptions{IndexDir: dirs[0]}); err != nil {
		t.Fatal(err)
	}
	stop := watchGeneration(t, watcher.st)
	const rounds = 6
	var retried atomic.Int64
	for r := range rounds {
		var wg sync.WaitGroup
		for i, f := range []*fixture{a, b} {
			wg.Go(func() {
				// Both packages share package shards with nobody, but the
				// state shards of the one repository are rewritten by
				// both.
				f.add("main", fmt.Sprintf("p%c%d-1.%d", "ab"[i], r, r), "", 100)
				rep, err := Update(f.ctx, f.st, repoInfos("main"), &BuildOptions{IndexDir: dirs[i]})
				if err != nil {
					t.Error(err)
					return
				}
				if rep.Full {
					t.Errorf("round %d: update %d was a full build", r, i)
				}
				if rep.Added != 2 {
					retried.Add(1) // (the other's commit came first)
				}
			})
		}
		wg.Wait()
	}
	stop()
	t.Logf("%d of %d updates found the other's path committed already", retried.Load(), 2*rounds)

	cat, err := Load(watcher.ctx, watcher.st)
	if err != nil {
		t.Fatal(err)
	}
	for r := range rounds {
		for _, c := range "ab" {
			p := findPkg(t, cat, fmt.Sprintf("p%c%d", c, r))
			if p != nil && p.Latest != fmt.Sprintf("1.%d", r) {
				t.Errorf("%s: latest %q", p.Name, p.Latest)
			}
		}
	}
	if cat.Stats.Paths != 1+2*rounds {
		t.Errorf("catalog has %d paths, want %d", cat.Stats.Paths, 1+2*rounds)
	}
	gen, _ := Generation(watcher.ctx, watcher.st)
	for i, f := range []*fixture{a, b} {
		rep, err := Update(f.ctx, f.st, repoInfos("main"), &BuildOptions{IndexDir: dirs[i]})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Added != 0 || len(rep.Changed) != 0 || rep.Generation != gen || rep.IndexRebuilt {
			t.Errorf("update after the concurrent ones = %+v, want nothing to do at generation %d", rep, gen)
		}
		x, err := OpenIndex(dirs[i])
		if err != nil {
			t.Fatal(err)
		}
		if x.Generation != gen || x.Docs != 1+2*rounds {
			t.Errorf("search index %d: generation %d with %d packages, want %d with %d", i, x.Generation, x.Docs, gen, 1+2*rounds)
		}
		x.Close()
	}
}

// A process that finds the catalog claimed by a live build waits for it,
// then updates from the catalog that build left.
func TestUpdateWaitsForClaim(t *testing.T) {
	setClaimTiming(t, time.Minute, 20*time.Millisecond, 10*time.Millisecond)
	fs := folderFixtures(t, 2)
	a, b := fs[0], fs[1]
	a.add("main", "hello-1.0", "", 10)
	if _, err := Update(a.ctx, a.st, repoInfos("main"), nil); err != nil {
		t.Fatal(err)
	}
	base, m, err := readManifestBytes(a.ctx, a.st)
	if err != nil {
		t.Fatal(err)
	}
	h, err := acquire(a.ctx, a.st, base, *m, nopLogger())
	if err != nil {
		t.Fatal(err)
	}
	b.add("main", "hello-1.1", "", 10)
	done := make(chan *UpdateReport)
	go func() {
		rep, err := Update(b.ctx, b.st, repoInfos("main"), nil)
		if err != nil {
			t.Error(err)
		}
		done <- rep
	}()
	select {
	case rep := <-done:
		t.Fatalf("update ran beside a live claim: %+v", rep)
	case <-time.After(300 * time.Millisecond):
	}
	// The claim is renewed meanwhile: still ours.
	if _, m, _ := readManifestBytes(a.ctx, a.st); !m.Pending || m.Claim == nil || m.Claim.ID != h.id {
		t.Fatalf("manifest while claimed = %+v", m)
	}
	if err := h.release(nil); err != nil {
		t.Fatal(err)
	}
	rep := <-done
	if rep == nil || rep.Full || rep.Added != 1 || rep.Generation != m.Generation+1 {
		t.Errorf("update after the claim ended = %+v", rep)
	}
}

// A claim whose holder stopped renewing it is taken over, and the catalog
// is rebuilt in full; the holder, back, finds its claim lost, and since it
// may have written meanwhile marks the catalog for a full build.
func TestStaleClaimTakenOver(t *testing.T) {
	setClaimTiming(t, 200*time.Millisecond, time.Hour, 10*time.Millisecond)
	fs := folderFixtures(t, 2)
	a, b := fs[0], fs[1]
	a.add("main", "hello-1.0", "", 10)
	if _, err := Update(a.ctx, a.st, repoInfos("main"), nil); err != nil {
		t.Fatal(err)
	}
	base, m, _ := readManifestBytes(a.ctx, a.st)
	h, err := acquire(a.ctx, a.st, base, *m, nopLogger()) // never renewed (claimBeat)
	if err != nil {
		t.Fatal(err)
	}
	h.wrote = true
	b.add("main", "hello-1.1", "", 10)
	start := time.Now()
	rep, err := Update(b.ctx, b.st, repoInfos("main"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Full || rep.Stats.Versions != 2 || rep.Generation != m.Generation+1 {
		t.Errorf("update over a stale claim = %+v", rep)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("took the claim over after %v, before its lease", d)
	}
	// The old holder's commit fails, and marks the catalog.
	m.Generation++
	if err := h.commit(m); !errors.Is(err, errClaimLost) {
		t.Fatalf("commit of a lost claim: err = %v", err)
	}
	if _, m2, _ := readManifestBytes(a.ctx, a.st); !m2.Pending || m2.Claim != nil || m2.Generation != rep.Generation {
		t.Errorf("manifest after the lost holder gave up = %+v", m2)
	}
	rep, err = Update(a.ctx, a.st, repoInfos("main"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Full || rep.Stats.Versions != 2 {
		t.Errorf("update after the mark = %+v, want a full build", rep)
	}
}

// A build based on an older manifest never replaces a newer one: its claim
// fails, and it starts again from the newer manifest.
func TestAcquireFromOlderManifestFails(t *testing.T) {
	f := folderFixtures(t, 1)[0]
	f.add("main", "hello-1.0", "", 10)
	if _, err := Update(f.ctx, f.st, repoInfos("main"), nil); err != nil {
		t.Fatal(err)
	}
	old, m, _ := readManifestBytes(f.ctx, f.st)
	f.add("main", "hello-1.1", "", 10)
	if _, err := Update(f.ctx, f.st, repoInfos("main"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := acquire(f.ctx, f.st, old, *m, nopLogger()); !errors.Is(err, errMoved) {
		t.Fatalf("claim from an older manifest: err = %v, want errMoved", err)
	}
	if g, _ := Generation(f.ctx, f.st); g != m.Generation+1 {
		t.Errorf("generation %d, want %d", g, m.Generation+1)
	}
}

// A search index behind the catalog (another process updated it) catches
// up by re-indexing the shards written since, without a rebuild, deletions
// included.
func TestIndexFollowsOtherWriter(t *testing.T) {
	f := newFixture(t)
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	f.add("main", "hello-1.0", "", 10)
	gone := f.add("main", "world-1.0", "", 10)
	for _, d := range []string{dirA, dirB} {
		if _, err := Update(f.ctx, f.st, repoInfos("main"), &BuildOptions{IndexDir: d}); err != nil {
			t.Fatal(err)
		}
	}
	f.add("main", "hello-2.0", "", 10)
	f.add("main", "brandnew-0.1", "", 10)
	f.remove("main", gone)
	rep, err := Update(f.ctx, f.st, repoInfos("main"), &BuildOptions{IndexDir: dirA})
	if err != nil || rep.IndexRebuilt {
		t.Fatalf("update: %+v, %v", rep, err)
	}
	f.add("main", "later-1.0", "", 10)
	if _, err := Update(f.ctx, f.st, repoInfos("main"), &BuildOptions{IndexDir: dirA}); err != nil {
		t.Fatal(err)
	}
	// B is two generations behind.
	rep, err = Update(f.ctx, f.st, repoInfos("main"), &BuildOptions{IndexDir: dirB})
	if err != nil {
		t.Fatal(err)
	}
	if rep.IndexRebuilt || rep.Added != 0 {
		t.Errorf("update of the follower = %+v, want no rebuild", rep)
	}
	x, err := OpenIndex(dirB)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	sums, err := x.Summaries([]string{"hello", "world", "brandnew", "later"})
	if err != nil {
		t.Fatal(err)
	}
	if sums["hello"].Latest() != "2.0" || sums["brandnew"].Latest() != "0.1" || sums["later"].Latest() != "1.0" {
		t.Errorf("follower summaries = %+v", sums)
	}
	if _, ok := sums["world"]; ok {
		t.Errorf("world still indexed by the follower")
	}
	if g, _ := Generation(f.ctx, f.st); x.Generation != g || x.Docs != 3 {
		t.Errorf("follower at generation %d with %d docs, catalog at %d", x.Generation, x.Docs, g)
	}
}

func setClaimTiming(t *testing.T, lease, beat, poll time.Duration) {
	l, b, p := claimLease, claimBeat, claimPoll
	claimLease, claimBeat, claimPoll = lease, beat, poll
	t.Cleanup(func() { claimLease, claimBeat, claimPoll = l, b, p })
}

func nopLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
