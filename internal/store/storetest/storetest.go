// Package storetest is the conformance suite of package store: every bucket
// driver nixrepo supports must pass it.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sort"
	"strings"
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
