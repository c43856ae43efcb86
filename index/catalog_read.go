package index

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nixrepo/nixrepo/internal/work"

	"golang.org/x/sys/unix"

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
	if dir, ok := st.LocalPath(repo); ok {
		// A folder bucket: one directory read instead of gocloud's listing,
		// which rescans the folder for every page of 1000 keys.
		f, err := os.Open(dir)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("index: list %s: %w", repo, err)
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("index: list %s: %w", repo, err)
		}
		out := make([]listed, 0, len(names)/2)
		for _, n := range names {
			h, ok := strings.CutSuffix(n, ".narinfo")
			if !ok || !nix.IsHashPart(h) {
				continue // (anything but a regular file is skipped when read)
			}
			out = append(out, listed{hash: h})
		}
		slices.SortFunc(out, func(a, b listed) int { return strings.Compare(a.hash, b.hash) })
		if withMod && len(out) > 0 {
			dr, err := openDirReader(st, repo)
			if err != nil {
				return nil, fmt.Errorf("index: %w", err)
			}
			defer dr.Close()
			err = work.Each(ctx, workers, len(out), func(i int) error {
				out[i].mod = dr.stat(out[i].hash + ".narinfo") // vanished: 0, the read will tell
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	var out []listed
	prefix := repo + "/"
	err := st.List(ctx, prefix, true, func(ob store.Object) error {
		if ob.Dir {
			return nil
		}
		h, ok := strings.CutSuffix(strings.TrimPrefix(ob.Key, prefix), ".narinfo")
		if !ok || !nix.IsHashPart(h) {
			return nil
		}
		out = append(out, listed{hash: h, mod: ob.ModTime.UnixNano()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index: list %s: %w", repo, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].hash < out[j].hash })
	return out, nil
}

// readNarInfo reads and parses one narinfo (through dr on a folder
// bucket). ok is false (with a warning logged) for a narinfo that vanished
// or does not parse.
func readNarInfo(ctx context.Context, st *store.Store, dr *dirReader, repo string, l listed, o *BuildOptions) (pathRec, bool, error) {
	key := repo + "/" + l.hash + ".narinfo"
	var (
		b   []byte
		mod = l.mod
		err error
	)
	if dr != nil {
		bp := bufPool.Get().(*[]byte)
		defer bufPool.Put(bp)
		*bp, mod, err = dr.read(l.hash+".narinfo", (*bp)[:0])
		b = *bp
		if errors.Is(err, os.ErrNotExist) {
			return pathRec{}, false, nil
		}
	} else {
		b, err = st.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return pathRec{}, false, nil
		}
	}
	if err != nil {
		return pathRec{}, false, fmt.Errorf("index: read %s: %w", key, err)
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

// dirReader reads the files of one folder with plain system calls: openat
// on the folder, fstat (for the upload time), read, close. A catalog build
// reads every narinfo of a repository, and os.Open's extra calls
// (non-blocking mode, poller registration) made that twice as slow.
type dirReader struct{ fd int }

// openDirReader opens the folder of a folder bucket's repository; it
// returns nil (and no error) for other buckets.
func openDirReader(st *store.Store, repo string) (*dirReader, error) {
	dir, ok := st.LocalPath(repo)
	if !ok {
		return nil, nil
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if errors.Is(err, syscall.ENOENT) {
		return nil, os.ErrNotExist
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &dirReader{fd: fd}, nil
}

func (d *dirReader) Close() error { return syscall.Close(d.fd) }

// read appends the file's content to buf; mod is its modification time.
func (d *dirReader) read(name string, buf []byte) (b []byte, mod int64, err error) {
	fd, err := retryEINTR(func() (int, error) {
		return syscall.Openat(d.fd, name, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	})
	if errors.Is(err, syscall.ENOENT) {
		return buf, 0, os.ErrNotExist
	}
	if err != nil {
		return buf, 0, err
	}
	defer syscall.Close(fd)
	var stt syscall.Stat_t
	if err := syscall.Fstat(fd, &stt); err != nil {
		return buf, 0, err
	}
	if stt.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return buf, 0, os.ErrNotExist
	}
	if need := int(stt.Size) + 1; cap(buf)-len(buf) < need {
		buf = slices.Grow(buf, need)
	}
	start := len(buf)
	for {
		n, err := retryEINTR(func() (int, error) { return syscall.Read(fd, buf[len(buf):cap(buf)]) })
		if err != nil {
			return buf, 0, err
		}
		if n == 0 {
			break
		}
		buf = buf[:len(buf)+n]
		if len(buf)-start == int(stt.Size) {
			break // all of it: spare the read that would return 0
		}
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 4096)
		}
	}
	return buf, stt.Mtim.Sec*1e9 + stt.Mtim.Nsec, nil
}

// stat returns the modification time of a file of the folder (0 when it
// is gone).
func (d *dirReader) stat(name string) int64 {
	var ust unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &ust, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0
	}
	return ust.Mtim.Sec*1e9 + ust.Mtim.Nsec
}

func retryEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != syscall.EINTR {
			return n, err
		}
	}
}

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
	dr, err := openDirReader(st, repo)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	if dr != nil {
		defer dr.Close()
	}
	recs := make([]pathRec, len(ls))
	ok := make([]bool, len(ls))
	err = work.Each(ctx, o.Workers, len(ls), func(i int) error {
		r, good, err := readNarInfo(ctx, st, dr, repo, ls[i], o)
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
