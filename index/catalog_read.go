package index

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/nixrepo/nixrepo/internal/work"

	"github.com/nixrepo/nixrepo/internal/nix"
	"github.com/nixrepo/nixrepo/internal/store"
)

// ---------------------------------------------------------------------------
// Reading narinfos

type listed struct {
	hash string
	mod  int64 // 0 when the listing did not give it
}

// listNarInfos lists a repository's narinfos sorted by hash. withMod asks
// for modification times (a folder bucket then stats every narinfo).
func listNarInfos(ctx context.Context, st *store.Store, repo string, withMod bool, workers int) ([]listed, error) {
	ls, err := st.Repo(repo).ListNarInfos(ctx, withMod, workers)
	if err != nil {
		return nil, fmt.Errorf("index: list %s: %w", repo, err)
	}
	out := make([]listed, len(ls))
	for i, l := range ls {
		out[i] = listed{hash: l.Hash, mod: l.ModTime}
	}
	return out, nil
}

// readNarInfo reads and parses one narinfo through nr. ok is false (with a
// warning logged) for a narinfo that vanished or does not parse.
func readNarInfo(ctx context.Context, nr *store.NarInfoReader, c *store.Cache, l listed, o *BuildOptions) (pathRec, bool, error) {
	key := c.Key(store.NarInfoFile(l.hash))
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	b, mod, err := nr.Read(ctx, l.hash, (*bp)[:0])
	*bp = b[:0]
	if errors.Is(err, store.ErrNotFound) {
		return pathRec{}, false, nil
	}
	if err != nil {
		return pathRec{}, false, fmt.Errorf("index: read %s: %w", key, err)
	}
	if mod == 0 {
		mod = l.mod
	}
	ni, err := nix.ParseNarInfo(b)
	if err != nil {
		o.Logger.Warn("skipping unreadable narinfo", "key", key, "err", err)
		return pathRec{}, false, nil
	}
	if ni.StorePath.HashPart() != l.hash {
		o.Logger.Warn("skipping narinfo named after another store path", "key", key, "storePath", ni.StorePath.Absolute())
		return pathRec{}, false, nil
	}
	r := pathRec{sp: ni.StorePath.Absolute(), narSize: ni.NarSize, fileSize: ni.FileSize, mod: mod}
	e, err := ParseEntry(r.sp)
	if err != nil {
		o.Logger.Warn("skipping narinfo with an invalid store path", "key", key, "err", err)
		return pathRec{}, false, nil
	}
	r.kind = kindCode(e.Kind)
	return r, true, nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// readRepoFull lists all of a repository's narinfos and reads them: from
// the repository's path journal where it has the path, else from the
// narinfo. It then compacts the journal into one object holding every
// path, so the next full build finds them all there.
func readRepoFull(ctx context.Context, st *store.Store, repo string, o *BuildOptions) ([]pathRec, error) {
	// The listing and the journal are independent reads: overlap them.
	listedAt := time.Now()
	var (
		ls     []listed
		listed = make(chan error, 1)
	)
	go func() {
		var err error
		ls, err = listNarInfos(ctx, st, repo, false, o.Workers)
		listed <- err
	}()
	jr, keys, damaged := readJournal(ctx, st, repo, o)
	if err := <-listed; err != nil {
		return nil, err
	}
	keys = append(store.JournalWrittenBefore(keys, listedAt), damaged...)
	recs, fromNarInfos, err := readWithJournal(ctx, st, repo, ls, jr, o)
	if err != nil {
		return nil, err
	}
	if len(keys) > 1 || fromNarInfos > 0 || len(damaged) > 0 {
		if err := st.CompactJournal(ctx, repo, journalRecords(recs), keys); err != nil {
			o.Logger.Warn("could not compact the path journal", "repo", repo, "err", err)
		}
	}
	return recs, nil
}

// journalRecords turns path records into journal notes.
func journalRecords(recs []pathRec) []store.JournalRecord {
	out := make([]store.JournalRecord, len(recs))
	for i, r := range recs {
		out[i] = store.JournalRecord{StorePath: r.sp, NarSize: r.narSize, FileSize: r.fileSize, Time: r.mod}
	}
	return out
}

// readJournal reads a repository's path journal; a journal that cannot be
// read is only a slower build (every narinfo is read).
func readJournal(ctx context.Context, st *store.Store, repo string, o *BuildOptions) (recs map[string]store.JournalRecord, keys, damaged []string) {
	jr, keys, damaged, err := st.ReadJournal(ctx, repo)
	if err != nil {
		o.Logger.Warn("ignoring the path journal", "repo", repo, "err", err)
		return nil, nil, nil
	}
	if len(damaged) > 0 {
		o.Logger.Warn("ignoring damaged path journal objects (compaction replaces them)", "repo", repo, "objects", damaged)
	}
	return jr, keys, damaged
}

// readWithJournal turns listed narinfos into records, from the journal
// where it has the path and else by reading the narinfo; fromNarInfos
// counts the latter.
func readWithJournal(ctx context.Context, st *store.Store, repo string, ls []listed, jr map[string]store.JournalRecord, o *BuildOptions) (recs []pathRec, fromNarInfos int, err error) {
	all := make([]pathRec, len(ls)) // zero where the journal has no usable note
	const chunk = 4096
	err = work.Each(ctx, o.Workers, (len(ls)+chunk-1)/chunk, func(c int) error {
		for i := c * chunk; i < min(len(ls), (c+1)*chunk); i++ {
			l := ls[i]
			j, ok := jr[l.hash]
			if !ok {
				continue
			}
			e, err := ParseEntry(j.StorePath)
			if err != nil {
				continue
			}
			mod := l.mod // an object store's listing time, as Update compares it
			if mod == 0 {
				mod = j.Time
			}
			all[i] = pathRec{sp: j.StorePath, narSize: j.NarSize, fileSize: j.FileSize, mod: mod, kind: kindCode(e.Kind)}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	var toRead []listed
	recs = all[:0]
	for i := range all {
		if all[i].sp != "" {
			recs = append(recs, all[i])
		} else {
			toRead = append(toRead, ls[i])
		}
	}
	read, err := readListed(ctx, st, repo, toRead, o)
	if err != nil {
		return nil, 0, err
	}
	if len(read) > 0 {
		recs = append(recs, read...)
		sort.Slice(recs, func(i, j int) bool { return recs[i].hash() < recs[j].hash() })
	}
	return recs, len(toRead), nil
}

func readListed(ctx context.Context, st *store.Store, repo string, ls []listed, o *BuildOptions) ([]pathRec, error) {
	if len(ls) == 0 {
		return nil, nil
	}
	c := st.Repo(repo)
	nr, err := c.OpenNarInfoReader()
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	defer nr.Close()
	recs := make([]pathRec, len(ls))
	ok := make([]bool, len(ls))
	err = work.Each(ctx, o.Workers, len(ls), func(i int) error {
		r, good, err := readNarInfo(ctx, nr, c, ls[i], o)
		recs[i], ok[i] = r, good
		return err
	})
	if err != nil {
		return nil, err
	}
	out := recs[:0]
	for i := range recs {
		if ok[i] {
			out = append(out, recs[i])
		}
	}
	return slices.Clip(out), nil
}
