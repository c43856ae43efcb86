package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// journal writes the path journal of a generated bucket the way nixrepo's
// writers leave it: every narinfo noted (store path, sizes, the file's
// time), flushed every -batch notes, as if the bucket had been filled by
// that many ingest runs or server flushes. Existing journal objects are
// removed first.
func journal(args []string) {
	fs := flag.NewFlagSet("journal", flag.ExitOnError)
	dir := fs.String("store", "", "bucket folder")
	batch := fs.Int("batch", 1000, "notes per journal object")
	fs.Parse(args)
	st := openStore(*dir)
	defer st.Close()
	ctx := context.Background()
	start := time.Now()
	objects, notes := 0, 0
	for _, r := range repos {
		if err := dropJournal(ctx, st, r.Name); err != nil {
			fail(err)
		}
		ents, err := os.ReadDir(filepath.Join(*dir, r.Name))
		if err != nil {
			fail(err)
		}
		var pending []store.JournalRecord
		flush := func() {
			if err := st.WriteJournal(ctx, r.Name, pending); err != nil {
				fail(err)
			}
			objects++
			pending = pending[:0]
		}
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".narinfo") {
				continue
			}
			p := filepath.Join(*dir, r.Name, e.Name())
			b, err := os.ReadFile(p)
			if err != nil {
				fail(err)
			}
			ni, err := nix.ParseNarInfo(b)
			if err != nil {
				fail(fmt.Errorf("%s: %w", p, err))
			}
			fi, err := e.Info()
			if err != nil {
				fail(err)
			}
			pending = append(pending, store.JournalRecord{StorePath: ni.StorePath.Absolute(), NarSize: ni.NarSize, FileSize: ni.FileSize, Time: fi.ModTime().UnixNano()})
			notes++
			if len(pending) == *batch {
				flush()
			}
		}
		if len(pending) > 0 {
			flush()
		}
	}
	fmt.Fprintf(os.Stderr, "journal: %d notes in %d objects in %.1fs\n", notes, objects, time.Since(start).Seconds())
}

// dropJournal deletes a repository's journal objects.
func dropJournal(ctx context.Context, st *store.Store, repo string) error {
	keys, err := st.JournalObjects(ctx, repo)
	if err != nil {
		return err
	}
	return deleteKeys(ctx, st, keys)
}

// deleteKeys deletes the objects.
func deleteKeys(ctx context.Context, st *store.Store, keys []string) error {
	for _, k := range keys {
		if err := st.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// journalObjects counts the journal objects of the benchmark's repositories.
func journalObjects(ctx context.Context, st *store.Store) int {
	n := 0
	for _, r := range repos {
		keys, _ := st.JournalObjects(ctx, r.Name)
		n += len(keys)
	}
	return n
}
