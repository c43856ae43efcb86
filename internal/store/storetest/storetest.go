// Package storetest is the conformance suite of package store: every bucket
// driver nixrepo supports must pass it.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/nixrepo/nixrepo/internal/store"
)

// Run exercises store semantics against stores returned by open; each call
// must return a new, empty store.
func Run(t *testing.T, open func(t *testing.T) *store.Store) {
	ctx := context.Background()
	t.Run("GetMissing", func(t *testing.T) {
		s := open(t)
		_, err := s.Get(ctx, "r/missing.narinfo")
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
		}
		ok, err := s.Exists(ctx, "r/missing.narinfo")
		if err != nil || ok {
			t.Fatalf("Exists(missing) = %v, %v", ok, err)
		}
		if _, err := s.Stat(ctx, "r/missing"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Stat(missing) = %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, "r/missing"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Delete(missing) = %v, want ErrNotFound", err)
		}
	})
	t.Run("PutGet", func(t *testing.T) {
		s := open(t)
		want := []byte("StoreDir: /nix/store\n")
		if err := s.Put(ctx, "r/nix-cache-info", want, &store.WriteOptions{ContentType: store.ContentTypeCacheInfo}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "r/nix-cache-info")
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Get = %q, %v", got, err)
		}
		a, err := s.Stat(ctx, "r/nix-cache-info")
		if err != nil || a.Size != int64(len(want)) {
			t.Fatalf("Stat = %+v, %v", a, err)
		}
	})
	t.Run("WriteOnce", func(t *testing.T) {
		s := open(t)
		opts := &store.WriteOptions{IfNotExist: true}
		if err := s.Put(ctx, "r/x.narinfo", []byte("one"), opts); err != nil {
			t.Fatal(err)
		}
		err := s.Put(ctx, "r/x.narinfo", []byte("two"), opts)
		if !errors.Is(err, store.ErrExists) {
			t.Fatalf("second write-once Put = %v, want ErrExists", err)
		}
		if got, _ := s.Get(ctx, "r/x.narinfo"); string(got) != "one" {
			t.Fatalf("first writer must win, got %q", got)
		}
	})
	t.Run("AbortLeavesNothing", func(t *testing.T) {
		s := open(t)
		w, err := s.NewWriter(ctx, "r/nar/abc.nar.xz", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(bytes.Repeat([]byte("x"), 3<<20)); err != nil {
			t.Fatal(err)
		}
		w.Abort()
		if ok, err := s.Exists(ctx, "r/nar/abc.nar.xz"); ok || err != nil {
			t.Fatalf("aborted write visible: %v %v", ok, err)
		}
		if keys := listAll(t, s, ""); len(keys) != 0 {
			t.Fatalf("aborted write left objects: %v", keys)
		}
	})
	t.Run("StreamCommit", func(t *testing.T) {
		s := open(t)
		w, err := s.NewWriter(ctx, "r/nar/big.nar", &store.WriteOptions{ContentType: store.ContentTypeNar})
		if err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
		if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.Exists(ctx, "r/nar/big.nar"); ok {
			t.Fatal("object visible before Commit")
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		w.Abort() // no-op after Commit
		r, err := s.NewRangeReader(ctx, "r/nar/big.nar", 16, 16)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(r)
		r.Close()
		if string(got) != "0123456789abcdef" {
			t.Fatalf("range read = %q", got)
		}
	})
	t.Run("ListPrefixes", func(t *testing.T) {
		s := open(t)
		for _, k := range []string{"abc/x.narinfo", "abcd/y.narinfo", "abc/nar/z.nar", "_nixrepo/state"} {
			if err := s.Put(ctx, k, []byte(k), nil); err != nil {
				t.Fatal(err)
			}
		}
		got := listAll(t, s, "abc/")
		want := []string{"abc/nar/z.nar", "abc/x.narinfo"}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("List(abc/) = %v, want %v", got, want)
		}
		var shallow []string
		err := s.List(ctx, "abc/", true, func(o store.Object) error {
			shallow = append(shallow, o.Key)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(shallow)
		if strings.Join(shallow, ",") != "abc/nar/,abc/x.narinfo" {
			t.Fatalf("shallow List(abc/) = %v", shallow)
		}
	})
	t.Run("NarInfosOfRepo", func(t *testing.T) {
		s := open(t)
		h := "0123456789abcdfghijklmnpqrsvwxyz"
		for _, k := range []string{"r/" + h + ".narinfo", "r/" + h + ".ls", "r/not-a-hash.narinfo", "r/nar/" + h + ".narinfo", "rr/" + h + ".narinfo"} {
			if err := s.Put(ctx, k, []byte("x"), nil); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		if err := s.Repo("r").NarInfos(ctx, func(h string) error { got = append(got, h); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != h {
			t.Fatalf("NarInfos = %v", got)
		}
	})
	t.Run("Copy", func(t *testing.T) {
		s := open(t)
		if err := s.Put(ctx, "a/nar/x.nar", []byte("nar"), nil); err != nil {
			t.Fatal(err)
		}
		if err := s.Copy(ctx, "b/nar/x.nar", "a/nar/x.nar"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, "b/nar/x.nar"); err != nil || string(got) != "nar" {
			t.Fatalf("copy = %q %v", got, err)
		}
	})
}

func listAll(t *testing.T, s *store.Store, prefix string) []string {
	t.Helper()
	var keys []string
	err := s.List(context.Background(), prefix, false, func(o store.Object) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	return keys
}

// RunShared exercises what several writers of one bucket rely on: open
// returns two handles on one new, empty bucket (two processes' views of
// it where the backend allows; the same handle twice for mem://).
func RunShared(t *testing.T, open func(t *testing.T) (a, b *store.Store)) {
	ctx := context.Background()
	t.Run("ConcurrentWriteOnceHasOneWinner", func(t *testing.T) {
		a, b := open(t)
		const writers, keys = 8, 12
		for k := range keys {
			key := fmt.Sprintf("r/%032d.narinfo", k)
			var wg sync.WaitGroup
			wins := make([]bool, writers)
			errs := make([]error, writers)
			for i := range writers {
				s := a
				if i%2 == 1 {
					s = b
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := s.Put(ctx, key, []byte(fmt.Sprintf("writer %d", i)), &store.WriteOptions{IfNotExist: true})
					switch {
					case err == nil:
						wins[i] = true
					case !errors.Is(err, store.ErrExists):
						errs[i] = err
					}
				}()
			}
			wg.Wait()
			winner := -1
			for i, w := range wins {
				if errs[i] != nil {
					t.Fatalf("%s: writer %d: %v", key, i, errs[i])
				}
				if w {
					if winner >= 0 {
						t.Fatalf("%s: writers %d and %d both created it", key, winner, i)
					}
					winner = i
				}
			}
			if winner < 0 {
				t.Fatalf("%s: no writer created it", key)
			}
			for _, s := range []*store.Store{a, b} {
				if got, err := s.Get(ctx, key); err != nil || string(got) != fmt.Sprintf("writer %d", winner) {
					t.Fatalf("%s holds %q (%v), want the winner's (writer %d)", key, got, err, winner)
				}
			}
		}
	})
	t.Run("ConcurrentStreamedWriteOnceHasOneWinner", func(t *testing.T) {
		a, b := open(t)
		key := "r/nar/" + strings.Repeat("1", 52) + ".nar"
		data := [2][]byte{bytes.Repeat([]byte("a"), 1<<20), bytes.Repeat([]byte("b"), 1<<20)}
		var wa, wb *store.Writer
		var err error
		if wa, err = a.NewWriter(ctx, key, &store.WriteOptions{IfNotExist: true}); err != nil {
			t.Fatal(err)
		}
		if wb, err = b.NewWriter(ctx, key, &store.WriteOptions{IfNotExist: true}); err != nil {
			t.Fatal(err)
		}
		wa.Write(data[0])
		wb.Write(data[1])
		ea, eb := wa.Commit(), wb.Commit()
		if (ea == nil) == (eb == nil) {
			t.Fatalf("both or neither streamed write-once commits succeeded: %v, %v", ea, eb)
		}
		loser := eb
		want := data[0]
		if ea != nil {
			loser, want = ea, data[1]
		}
		if !errors.Is(loser, store.ErrExists) {
			t.Fatalf("losing commit = %v, want ErrExists", loser)
		}
		if got, _ := a.Get(ctx, key); !bytes.Equal(got, want) {
			t.Fatal("the object is not the winner's bytes")
		}
	})
	t.Run("UpdateLosesNoIncrement", func(t *testing.T) {
		a, b := open(t)
		const writers, each = 6, 15
		key := "r/channels/c/channel.json"
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for i := range writers {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					err := s.Update(ctx, key, &store.WriteOptions{ContentType: "application/json"}, func(old []byte) ([]byte, error) {
						n := 0
						if old != nil {
							if _, err := fmt.Sscanf(string(old), "%d", &n); err != nil {
								return nil, fmt.Errorf("bad counter %q", old)
							}
						}
						return []byte(fmt.Sprint(n + 1)), nil
					})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got, err := b.Get(ctx, key)
		if err != nil || string(got) != fmt.Sprint(writers*each) {
			t.Fatalf("counter = %q (%v), want %d: an update was lost", got, err, writers*each)
		}
	})
	t.Run("UpdateUnchangedWritesNothing", func(t *testing.T) {
		a, _ := open(t)
		key := "r/nix-cache-info"
		if err := a.Put(ctx, key, []byte("one"), nil); err != nil {
			t.Fatal(err)
		}
		calls := 0
		err := a.Update(ctx, key, nil, func(old []byte) ([]byte, error) {
			calls++
			if string(old) != "one" {
				return nil, fmt.Errorf("old = %q", old)
			}
			return nil, store.ErrUnchanged
		})
		if err != nil || calls != 1 {
			t.Fatalf("Update = %v after %d calls", err, calls)
		}
		if got, _ := a.Get(ctx, key); string(got) != "one" {
			t.Fatalf("object changed to %q", got)
		}
		stop := errors.New("stop")
		if err := a.Update(ctx, key, nil, func([]byte) ([]byte, error) { return nil, stop }); !errors.Is(err, stop) {
			t.Fatalf("Update returned %v, want the function's error", err)
		}
	})
	t.Run("OddKeysRoundTrip", func(t *testing.T) {
		a, b := open(t)
		keys := []string{
			"r/realisations/sha256:" + strings.Repeat("ab", 32) + "!out.doi",
			"r/log/" + strings.Repeat("x", 32) + "-hello-2.12.1.drv",
			"r/channels/nixos-25.11/nixos/25.11.1234.abcdef+g~h/git-revision",
			"r/a b/ümlaut/%20/plus+sign",
			"r/debuginfo/0123456789abcdef0123456789abcdef01234567.debug",
		}
		for _, k := range keys {
			if err := a.Put(ctx, k, []byte(k), nil); err != nil {
				t.Fatalf("Put(%q): %v", k, err)
			}
		}
		for _, k := range keys {
			if got, err := b.Get(ctx, k); err != nil || string(got) != k {
				t.Fatalf("Get(%q) = %q, %v", k, got, err)
			}
		}
		if got := listAll(t, b, "r/"); strings.Join(got, "\n") != strings.Join(sortedCopy(keys), "\n") {
			t.Fatalf("List(r/) = %q, want %q", got, sortedCopy(keys))
		}
	})
	t.Run("CancelledStreamLeavesNothing", func(t *testing.T) {
		a, b := open(t)
		cctx, cancel := context.WithCancel(ctx)
		w, err := a.NewWriter(cctx, "r/nar/cancelled.nar", nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(bytes.Repeat([]byte("z"), 2<<20))
		cancel()
		if err := w.Commit(); err == nil {
			t.Fatal("Commit after cancellation succeeded")
		}
		if ok, err := b.Exists(ctx, "r/nar/cancelled.nar"); ok || err != nil {
			t.Fatalf("cancelled write visible: %v %v", ok, err)
		}
		if keys := listAll(t, b, ""); len(keys) != 0 {
			t.Fatalf("cancelled write left objects: %v", keys)
		}
	})
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}
