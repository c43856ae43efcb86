package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Folder buckets (file://) are written by this file, not by gocloud's
// fileblob: fileblob's IfNotExist is a check under an in-process mutex
// followed by a rename, which two processes sharing a folder can both pass
// (and then the second rename replaces the first writer's object). Here
// every write goes to a temporary file under the bucket's own
// _nixrepo/tmp/ folder (same file system, so the final step is atomic)
// and is then put in place by
//
//   - link(2) for write-once objects: it fails with EEXIST when the name
//     exists, atomically, across processes and hosts sharing the folder;
//   - rename(2) for replaceable objects: readers see the old file or the
//     new one, never a part.
//
// Compare-and-swap on a folder (Update) holds an flock(2) on a lock file
// under _nixrepo/locks/ while it reads, decides and renames, so writers of
// one object take turns across processes.

// folderTmpDir and folderLockDir are relative to the bucket folder.
const (
	folderTmpDir  = Reserved + "tmp"
	folderLockDir = Reserved + "locks"
	// staleTempAge: a temporary file nobody has written for this long
	// belongs to a writer that crashed (an upload that sends nothing is
	// refused long before: upload_stall_timeout, 5 minutes by default).
	staleTempAge = time.Hour
)

// folderPath is the file holding key. key comes from nixrepo's own layout
// code, but is checked anyway: nothing is ever written outside the folder.
func (s *Store) folderPath(key string) (string, error) {
	if err := CheckRel(key); err != nil {
		return "", fmt.Errorf("write %s: %w", key, err)
	}
	return filepath.Join(s.dir, filepath.FromSlash(key)), nil
}

// folderTemp creates a temporary file for a write into the folder.
func (s *Store) folderTemp() (*os.File, error) {
	dir := filepath.Join(s.dir, filepath.FromSlash(folderTmpDir))
	var rnd [8]byte
	rand.Read(rnd[:])
	name := filepath.Join(dir, "w."+hex.EncodeToString(rnd[:])+".tmp")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		f, err = os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	}
	return f, err
}

// clearStaleTemps removes temporary files left by writers that crashed.
func (s *Store) clearStaleTemps() {
	dir := filepath.Join(s.dir, filepath.FromSlash(folderTmpDir))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || !strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		if time.Since(info.ModTime()) > staleTempAge {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// placeFile moves the finished temporary file tmp to key: by link when
// ifNotExist (ErrExists if key exists), else by rename. tmp is gone
// afterwards either way.
func (s *Store) placeFile(tmp, key string, ifNotExist bool) error {
	dst, err := s.folderPath(key)
	if err != nil {
		os.Remove(tmp)
		return err
	}
	place := os.Rename
	if ifNotExist {
		place = os.Link
	}
	err = place(tmp, dst)
	if errors.Is(err, fs.ErrNotExist) {
		// The parent folder is missing (or was removed meanwhile).
		if err = mkdirParents(s.dir, dst); err == nil {
			err = place(tmp, dst)
		}
	}
	if ifNotExist {
		os.Remove(tmp)
	}
	if err != nil {
		if !ifNotExist {
			os.Remove(tmp)
		}
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("write %s: %w", key, ErrExists)
		}
		var le *os.LinkError
		if errors.As(err, &le) && errors.Is(le.Err, syscall.EISDIR) {
			return fmt.Errorf("write %s: a folder has that name", key)
		}
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// mkdirParents creates the folders between root and file's parent. A
// folder that exists as something else (a file, a symlink) is an error:
// nothing is created through a link.
func mkdirParents(root, file string) error {
	rel, err := filepath.Rel(root, filepath.Dir(file))
	if err != nil || rel == "." {
		return err
	}
	p := root
	for _, seg := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, seg)
		fi, err := os.Lstat(p)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			return fmt.Errorf("%s exists and is not a folder", p)
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return nil
}

// folderPut writes a whole object into the folder.
func (s *Store) folderPut(ctx context.Context, key string, data []byte, opts *WriteOptions) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	if _, err := s.folderPath(key); err != nil {
		return err
	}
	f, err := s.folderTemp()
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", key, err)
	}
	return s.placeFile(f.Name(), key, opts != nil && opts.IfNotExist)
}

// folderWriter streams an object into the folder.
type folderWriter struct {
	s          *Store
	f          *os.File
	key        string
	ifNotExist bool
	ctx        context.Context
}

func (s *Store) newFolderWriter(ctx context.Context, key string, opts *WriteOptions) (*folderWriter, error) {
	if _, err := s.folderPath(key); err != nil {
		return nil, err
	}
	f, err := s.folderTemp()
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", key, err)
	}
	return &folderWriter{s: s, f: f, key: key, ifNotExist: opts != nil && opts.IfNotExist, ctx: ctx}, nil
}

func (w *folderWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.f.Write(p)
}

func (w *folderWriter) commit() error {
	if err := w.ctx.Err(); err != nil {
		w.abort()
		return fmt.Errorf("write %s: %w", w.key, err)
	}
	// Start writing the file back now, without waiting: a later Sync (a
	// run makes the repository durable before it consumes its source)
	// then finds little left to write.
	_ = unix.SyncFileRange(int(w.f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return fmt.Errorf("write %s: %w", w.key, err)
	}
	return w.s.placeFile(w.f.Name(), w.key, w.ifNotExist)
}

func (w *folderWriter) abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

// folderCopy copies src to dst inside the folder (replacing dst).
func (s *Store) folderCopy(ctx context.Context, dst, src string) error {
	sp, err := s.folderPath(src)
	if err != nil {
		return err
	}
	in, err := os.Open(sp)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("copy %s: %w", src, ErrNotFound)
		}
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	w, err := s.newFolderWriter(ctx, dst, nil)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w.f, in); err != nil {
		w.abort()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return w.commit()
}

// lockFolderKey takes an exclusive flock(2) for key, shared by every
// process using the folder; unlock releases it.
func (s *Store) lockFolderKey(ctx context.Context, key string) (unlock func(), err error) {
	sum := sha256.Sum256([]byte(key))
	dir := filepath.Join(s.dir, filepath.FromSlash(folderLockDir))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, hex.EncodeToString(sum[:12])+".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", key, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", key, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// folderSync flushes the folder's file system to disk (syncfs(2)).
func (s *Store) folderSync() error {
	f, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
