package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

func narInfoFor(t *testing.T, base string, narSize uint64) *nix.NarInfo {
	t.Helper()
	sp, err := nix.ParseStorePath(nix.StoreDir + "/" + base)
	if err != nil {
		t.Fatal(err)
	}
	return &nix.NarInfo{StorePath: sp, URL: "nar/x.nar", Compression: "none", NarSize: narSize, FileSize: narSize}
}

// TestJournalNotesReadBackAndCompacted: notes are written by FlushJournal (or Close), read back with
// the newest note of a path winning, compacted into one object; root
// caches keep none; a narinfo that already exists is not noted again.
func TestJournalNotesReadBackAndCompacted(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://", "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const (
		a = "8yhfprxp9fym8hjpsb3z3hzsfbrk1z42-a-1.0"
		b = "73jpyncq1iidbczv5idvcz9h35map68f-b-2.0"
	)
	r := st.Repo("r")
	if err := r.PutNarInfo(ctx, narInfoFor(t, a, 100)); err != nil {
		t.Fatal(err)
	}
	st.Root().Note(store.JournalRecord{StorePath: nix.StoreDir + "/" + b, Time: 1})
	if recs, _, _, _ := st.ReadJournal(ctx, "r"); len(recs) != 0 {
		t.Fatalf("notes visible before a flush: %v", recs)
	}
	if err := st.FlushJournal(ctx); err != nil {
		t.Fatal(err)
	}
	// A second write of the same narinfo fails and notes nothing.
	if err := r.PutNarInfo(ctx, narInfoFor(t, a, 999)); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second PutNarInfo: %v, want ErrExists", err)
	}
	r.Note(store.JournalRecord{StorePath: nix.StoreDir + "/" + b, NarSize: 1, Time: 10})
	r.Note(store.JournalRecord{StorePath: nix.StoreDir + "/" + b, NarSize: 2, Time: 20})
	if err := st.FlushJournal(ctx); err != nil {
		t.Fatal(err)
	}
	recs, keys, _, err := st.ReadJournal(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || len(recs) != 2 || recs[a[:32]].NarSize != 100 || recs[b[:32]].NarSize != 2 {
		t.Fatalf("journal: %d objects, %+v", len(keys), recs)
	}
	if got, _, _, _ := st.ReadJournal(ctx, st.Root().Name()); len(got) != 0 {
		t.Errorf("a root cache has a journal: %v", got)
	}
	// Compaction: one object with the given records replaces the others.
	if err := st.CompactJournal(ctx, "r", []store.JournalRecord{recs[a[:32]], recs[b[:32]]}, keys); err != nil {
		t.Fatal(err)
	}
	recs2, keys2, _, err := st.ReadJournal(ctx, "r")
	if err != nil || len(keys2) != 1 || len(recs2) != 2 || recs2[b[:32]] != recs[b[:32]] {
		t.Fatalf("after compaction: %v, %d objects, %+v", err, len(keys2), recs2)
	}
	if !strings.HasSuffix(keys2[0], ".s2") {
		t.Errorf("journal object %s: want an S2 stream (.s2)", keys2[0])
	}
	// An object of an earlier version (zstd, .zst) is read too; its
	// newer note of b wins.
	enc, _ := zstd.NewWriter(nil)
	old := enc.EncodeAll([]byte(nix.StoreDir+"/"+b+"\t7\t8\t30\n"), nil)
	if err := st.Put(ctx, store.JournalPrefix("r")+"00000000000000000030-0000.zst", old, nil); err != nil {
		t.Fatal(err)
	}
	recs3, keys3, damaged, err := st.ReadJournal(ctx, "r")
	if err != nil || len(damaged) != 0 || len(keys3) != 2 || recs3[b[:32]].NarSize != 7 || recs3[a[:32]].NarSize != 100 {
		t.Fatalf("with a zstd object: %v, damaged %v, keys %v, %+v", err, damaged, keys3, recs3)
	}
	// A damaged journal object is an error (the index stage then reads
	// the narinfos instead), whatever its format.
	for _, name := range []string{"99999999999999999998-bad.zst", "99999999999999999999-bad.s2"} {
		if err := st.Put(ctx, store.JournalPrefix("r")+name, []byte("not compressed"), nil); err != nil {
			t.Fatal(err)
		}
	}
	_, keys4, damaged, err := st.ReadJournal(ctx, "r")
	if err != nil || len(damaged) != 2 || !strings.HasSuffix(damaged[0], "-bad.zst") || !strings.HasSuffix(damaged[1], "-bad.s2") || len(keys4) != 4 {
		t.Errorf("damaged journal objects: damaged %v, keys %v, err %v", damaged, keys4, err)
	}
}

// TestJournalFlushOnClose: Close writes pending notes.
func TestJournalFlushOnClose(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, "file://"+dir, "", false)
	if err != nil {
		t.Fatal(err)
	}
	st.Repo("r").Note(store.JournalRecord{StorePath: nix.StoreDir + "/8yhfprxp9fym8hjpsb3z3hzsfbrk1z42-a-1.0", NarSize: 5, Time: 1})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = store.Open(ctx, "file://"+dir, "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, _, _, err := st.ReadJournal(ctx, "r")
	if err != nil || len(recs) != 1 {
		t.Fatalf("after Close: %v, %+v", err, recs)
	}
}
