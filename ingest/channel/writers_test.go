package channel_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/nixrepo/nixrepo/ingest"
	"github.com/nixrepo/nixrepo/ingest/channel"
	"github.com/nixrepo/nixrepo/internal/store"
)

// TestReadChannelRefusesOversizedState: a channel.json over
// store.MaxChannelStateSize is refused, not read whole.
func TestReadChannelRefusesOversizedState(t *testing.T) {
	st := memStore(t)
	repo := st.Repo("r")
	ctx := context.Background()
	if _, err := push(t, repo, channelTarball(t, "team-1.0", "one"), channel.PushOptions{Snapshot: "1.0"}); err != nil {
		t.Fatal(err)
	}
	key := repo.Key(store.ChannelStateRel("team"))
	b, err := st.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	// Still valid JSON: only the size can refuse it.
	padded := append(bytes.Repeat([]byte(" "), store.MaxChannelStateSize), b...)
	if err := st.Put(ctx, key, padded, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.ReadChannel(ctx, "team"); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if err := st.Put(ctx, key, b, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.ReadChannel(ctx, "team"); err != nil {
		t.Fatalf("the state itself: %v", err)
	}
}

// TestConcurrentChannelPushesLoseNoSnapshot: snapshots pushed at once
// through two Stores of one bucket are all in channel.json afterwards (its
// update is a compare-and-swap, so no push overwrites another's), and the
// channel's tarball is its current snapshot's.
func TestConcurrentChannelPushesLoseNoSnapshot(t *testing.T) {
	sts := openTwice(t)
	const pushes = 24
	tarballs := make([][]byte, pushes)
	for i := range tarballs {
		tarballs[i] = channelTarball(t, "nixexprs", fmt.Sprint(i))
	}
	var wg sync.WaitGroup
	for i := 0; i < pushes; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := push(t, sts[i%2].Repo("r"), tarballs[i], channel.PushOptions{Snapshot: fmt.Sprintf("s%03d", i)}); err != nil {
				t.Errorf("push %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	ch, err := sts[0].Repo("r").ReadChannel(context.Background(), "team")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < pushes; i++ {
		id := fmt.Sprintf("s%03d", i)
		if _, ok := ch.Snapshot(id); !ok {
			t.Errorf("acknowledged snapshot %s is not in channel.json", id)
		}
	}
	cur, _ := ch.Current()
	got, err := sts[1].Get(context.Background(), "r/"+store.ChannelLatestRel("team"))
	if err != nil {
		t.Fatal(err)
	}
	if s := sha256.Sum256(got); fmt.Sprintf("%x", s) != cur.FileHash {
		t.Errorf("the channel tarball is not its current snapshot %s's", cur.ID)
	}
}

// TestConcurrentPushesOfOneSnapshotID: one snapshot ID pushed at once
// through two Stores with different tarballs is acknowledged once; the other
// push is a conflict, and the stored snapshot is the acknowledged one. With
// the same tarball both succeed.
func TestConcurrentPushesOfOneSnapshotID(t *testing.T) {
	for trial := 0; trial < 8; trial++ {
		sts := openTwice(t)
		same := trial%4 == 3
		bodies := [2][]byte{channelTarball(t, "nixexprs", "a"), channelTarball(t, "nixexprs", "b")}
		if same {
			bodies[1] = bodies[0]
		}
		var wg sync.WaitGroup
		errs := [2]error{}
		for i := range bodies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = push(t, sts[i].Repo("r"), bodies[i], channel.PushOptions{Snapshot: "s1"})
			}()
		}
		wg.Wait()
		var won []int
		for i, err := range errs {
			switch {
			case err == nil:
				won = append(won, i)
			case !errors.Is(err, ingest.ErrConflict):
				t.Fatalf("trial %d, push %d: %v", trial, i, err)
			}
		}
		if same && len(won) != 2 || !same && len(won) != 1 {
			t.Fatalf("trial %d (same bytes %v): %d pushes acknowledged: %v", trial, same, len(won), errs)
		}
		ch, err := sts[0].Repo("r").ReadChannel(context.Background(), "team")
		if err != nil {
			t.Fatal(err)
		}
		snap, _ := ch.Snapshot("s1")
		stored, err := sts[0].Get(context.Background(), "r/"+store.SnapshotFileRel("team", "nixpkgs", "s1", store.ChannelTarball))
		if err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(bodies[won[0]])
		if got := sha256.Sum256(stored); got != want || snap == nil || snap.FileHash != fmt.Sprintf("%x", want) {
			t.Errorf("trial %d: the stored snapshot is not the acknowledged one", trial)
		}
	}
}
