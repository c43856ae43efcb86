package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nixrepo/nixrepo/internal/work"
)

// Reading every narinfo of a repository (the catalog's full build) is the
// one bulk read nixrepo does. On a folder bucket it bypasses gocloud: one
// directory read instead of a listing that rescans the folder for every
// page of 1000 keys, and plain system calls (openat, fstat, read, close)
// per file, which os.Open's extra calls (non-blocking mode, poller
// registration) made twice as slow.

// ListedNarInfo is a narinfo found by ListNarInfos.
type ListedNarInfo struct {
	Hash    string // the store path's hash part
	ModTime int64  // unix nanoseconds; 0 when the listing did not give it
}

// ListNarInfos lists the cache's narinfos sorted by hash. withMod asks
// for modification times, which a folder bucket then stats, workers files
// at a time (an object store's listing always has them). A repository
// never written lists empty.
func (c *Cache) ListNarInfos(ctx context.Context, withMod bool, workers int) ([]ListedNarInfo, error) {
	if dir, ok := c.st.LocalPath(strings.TrimSuffix(c.prefix, "/")); ok {
		f, err := os.Open(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return nil, err
		}
		out := make([]ListedNarInfo, 0, len(names)/2)
		for _, n := range names {
			if h, ok := NarInfoHash(n); ok {
				out = append(out, ListedNarInfo{Hash: h}) // (anything but a regular file is skipped when read)
			}
		}
		slices.SortFunc(out, func(a, b ListedNarInfo) int { return strings.Compare(a.Hash, b.Hash) })
		if withMod && len(out) > 0 {
			r, err := c.OpenNarInfoReader()
			if err != nil {
				return nil, err
			}
			defer r.Close()
			err = work.Each(ctx, workers, len(out), func(i int) error {
				out[i].ModTime = r.stat(NarInfoFile(out[i].Hash)) // vanished: 0, the read will tell
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	var out []ListedNarInfo
	err := c.List(ctx, "", true, func(o Object) error {
		if h, ok := NarInfoHash(o.Key); ok && !o.Dir {
			out = append(out, ListedNarInfo{Hash: h, ModTime: o.ModTime.UnixNano()})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b ListedNarInfo) int { return strings.Compare(a.Hash, b.Hash) })
	return out, nil
}

// NarInfoReader reads the narinfos of one cache; it is safe for
// concurrent use. Close it.
type NarInfoReader struct {
	c  *Cache
	fd int // the repository folder of a folder bucket, else -1
}

// OpenNarInfoReader starts reading the cache's narinfos. On a folder bucket
// whose repository folder does not exist it is ErrNotFound.
func (c *Cache) OpenNarInfoReader() (*NarInfoReader, error) {
	dir, ok := c.st.LocalPath(strings.TrimSuffix(c.prefix, "/"))
	if !ok {
		return &NarInfoReader{c: c, fd: -1}, nil
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if errors.Is(err, syscall.ENOENT) {
		return nil, fmt.Errorf("read %s: %w", c.prefix, ErrNotFound)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &NarInfoReader{c: c, fd: fd}, nil
}

// Close releases the reader.
func (r *NarInfoReader) Close() error {
	if r.fd < 0 {
		return nil
	}
	return syscall.Close(r.fd)
}

// Read returns the narinfo of hashPart: appended to buf on a folder
// bucket, a new slice otherwise. mod is its modification time (unix ns),
// 0 when the bucket does not give it on a read. A missing narinfo (or, in
// a folder, anything but a regular file) is ErrNotFound.
func (r *NarInfoReader) Read(ctx context.Context, hashPart string, buf []byte) (b []byte, mod int64, err error) {
	name := NarInfoFile(hashPart)
	if r.fd < 0 {
		b, err := r.c.Get(ctx, name)
		return b, 0, err
	}
	fd, err := retryEINTR(func() (int, error) {
		return syscall.Openat(r.fd, name, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	})
	if errors.Is(err, syscall.ENOENT) {
		return buf, 0, fmt.Errorf("read %s: %w", r.c.Key(name), ErrNotFound)
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
		return buf, 0, fmt.Errorf("read %s: %w", r.c.Key(name), ErrNotFound)
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
func (r *NarInfoReader) stat(name string) int64 {
	var ust unix.Stat_t
	if err := unix.Fstatat(r.fd, name, &ust, unix.AT_SYMLINK_NOFOLLOW); err != nil {
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
