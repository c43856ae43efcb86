package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"syscall"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"
)

// ErrNotRegular is wrapped by every refusal of a source folder entry that
// is not a regular file inside the folder: a symbolic link (to a file or a
// folder, wherever it points), a FIFO, a device, a socket. Such entries are
// never opened, followed or deleted.
var ErrNotRegular = errors.New("not a regular file")

// EntryError refuses an entry of a source folder. It wraps ErrNotRegular.
type EntryError struct {
	// Entry is the refused entry relative to the source folder: the object
	// asked for, or a folder on the way to it ("nar" for "nar/x.nar").
	Entry string
	// Kind says what the entry is: "symbolic link", "FIFO", …
	Kind string
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("%s is a %s; links and special files in a source folder are never followed, opened or deleted", e.Entry, e.Kind)
}

func (e *EntryError) Unwrap() error { return ErrNotRegular }

// errReadOnly refuses writes to a source.
var errReadOnly = errors.New("a source folder is opened for reading and deleting only")

// OpenSource opens an incoming binary cache, which must exist (else
// ErrNotFound), for reading and deleting what it holds. Its writer is not
// trusted. A bucket URL opens as Open does. A folder (a file:// URL or a
// plain path) is served by its own driver instead of fileblob, which follows
// symbolic links and opens whatever it finds:
//
//   - The folder is opened once (os.Root); nothing outside it is ever
//     reached, whatever is renamed meanwhile.
//   - Every path component below it is checked without following links:
//     a symbolic link anywhere on the way (a linked file or a linked
//     "nar" folder, even one pointing inside the source) is refused with an
//     *EntryError, as is anything that is not a regular file (FIFO, device,
//     socket). Such an entry is never opened, so a FIFO cannot block a read.
//   - A file is opened non-blocking and checked again once open (same file,
//     still regular), so swapping an entry between the check and the open is
//     refused, not followed.
//   - Delete removes the entry itself, and only when it is a regular file;
//     a link is never followed and never removed.
//   - Listing reports links and special files as objects without opening
//     them (so a read of one is refused with a reason), and never descends
//     into a linked folder.
//   - Writes and copies fail: ingest only reads and consumes a source.
//
// The folder's own path (rawURL) is the operator's and may contain links.
func OpenSource(ctx context.Context, rawURL, baseDir string) (*Store, error) {
	u, err := ResolveURL(rawURL, baseDir)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "file" {
		return Open(ctx, rawURL, baseDir, true)
	}
	root, err := os.OpenRoot(u.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store: %s: %w", u.Path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", redact(rawURL), err)
	}
	return &Store{bucket: blob.NewBucket(&sourceDir{root: root}), url: redact(rawURL)}, nil
}

// sourceDir is the gocloud driver of a source folder (see OpenSource).
type sourceDir struct {
	root *os.Root
}

var _ driver.Bucket = (*sourceDir)(nil)

// entryKind names a file mode that is not a regular file or a folder.
func entryKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	case m.IsDir():
		return "folder"
	}
	return "special file"
}

func notExist(key string) error {
	return &fs.PathError{Op: "open", Path: key, Err: fs.ErrNotExist}
}

// closeSub closes dir unless it is the source folder itself.
func (d *sourceDir) closeSub(dir *os.Root) {
	if dir != nil && dir != d.root {
		dir.Close()
	}
}

// openDir opens the folder made of parts (relative to the source folder)
// without following a link at any step. The caller closes the result with
// closeSub.
func (d *sourceDir) openDir(parts []string) (*os.Root, error) {
	dir := d.root
	for i, p := range parts {
		sub, err := openChild(dir, p, strings.Join(parts[:i+1], "/"))
		d.closeSub(dir)
		if err != nil {
			return nil, err
		}
		dir = sub
	}
	return dir, nil
}

// openChild opens the folder name inside dir (entry is its path in the
// source folder, for messages). It must be a real folder before the open
// (Lstat) and the same folder after it, so a link is refused even when it
// is swapped in between.
func openChild(dir *os.Root, name, entry string) (*os.Root, error) {
	fi, err := dir.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, &EntryError{Entry: entry, Kind: "symbolic link"}
		}
		return nil, notExist(entry)
	}
	sub, err := dir.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	if st, err := sub.Stat("."); err != nil || !os.SameFile(fi, st) {
		sub.Close()
		return nil, &EntryError{Entry: entry, Kind: "folder replaced while it was being opened"}
	}
	return sub, nil
}

// parent opens the folder holding key and returns it with key's last
// component.
func (d *sourceDir) parent(key string) (*os.Root, string, error) {
	if err := CheckRel(key); err != nil {
		return nil, "", fmt.Errorf("%w: %v", errBadKey, err)
	}
	parts := strings.Split(key, "/")
	dir, err := d.openDir(parts[:len(parts)-1])
	if err != nil {
		return nil, "", err
	}
	return dir, parts[len(parts)-1], nil
}

var errBadKey = errors.New("invalid key")

// lstatRegular returns the attributes of key, which must be a regular file.
// A folder is "not found", as in other buckets.
func (d *sourceDir) lstatRegular(key string) (fs.FileInfo, *os.Root, string, error) {
	dir, name, err := d.parent(key)
	if err != nil {
		return nil, nil, "", err
	}
	fi, err := dir.Lstat(name)
	switch {
	case err != nil:
	case fi.IsDir():
		err = notExist(key)
	case !fi.Mode().IsRegular():
		err = &EntryError{Entry: key, Kind: entryKind(fi.Mode())}
	}
	if err != nil {
		d.closeSub(dir)
		return nil, nil, "", err
	}
	return fi, dir, name, nil
}

// open opens key, a regular file, for reading.
func (d *sourceDir) open(key string) (*os.File, fs.FileInfo, error) {
	fi, dir, name, err := d.lstatRegular(key)
	if err != nil {
		return nil, nil, err
	}
	defer d.closeSub(dir)
	// Non-blocking, so an entry swapped for a FIFO after the Lstat cannot
	// block the open; it is refused below.
	f, err := dir.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err == nil && (!st.Mode().IsRegular() || !os.SameFile(fi, st)) {
		err = &EntryError{Entry: key, Kind: "file replaced while it was being opened"}
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

func (d *sourceDir) ErrorCode(err error) gcerrors.ErrorCode {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return gcerrors.NotFound
	case errors.Is(err, ErrNotRegular), errors.Is(err, errReadOnly), errors.Is(err, fs.ErrPermission):
		// Not FailedPrecondition: the store reads that as "exists".
		return gcerrors.PermissionDenied
	case errors.Is(err, errBadKey):
		return gcerrors.InvalidArgument
	case errors.Is(err, errors.ErrUnsupported):
		return gcerrors.Unimplemented
	}
	return gcerrors.Unknown
}

func (d *sourceDir) As(any) bool             { return false }
func (d *sourceDir) ErrorAs(error, any) bool { return false }
func (d *sourceDir) Close() error            { return d.root.Close() }

func (d *sourceDir) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	fi, dir, _, err := d.lstatRegular(key)
	if err != nil {
		return nil, err
	}
	d.closeSub(dir)
	return &driver.Attributes{
		ContentType: "application/octet-stream",
		ModTime:     fi.ModTime(),
		Size:        fi.Size(),
		ETag:        fmt.Sprintf("\"%x-%x\"", fi.ModTime().UnixNano(), fi.Size()),
		AsFunc:      func(any) bool { return false },
	}, nil
}

func (d *sourceDir) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	f, fi, err := d.open(key)
	if err != nil {
		return nil, err
	}
	if opts != nil && opts.BeforeRead != nil {
		if err := opts.BeforeRead(func(any) bool { return false }); err != nil {
			f.Close()
			return nil, err
		}
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
	}
	r := io.Reader(f)
	if length >= 0 {
		r = io.LimitReader(f, length)
	}
	return &sourceReader{r: r, f: f, attrs: driver.ReaderAttributes{
		ContentType: "application/octet-stream", ModTime: fi.ModTime(), Size: fi.Size(),
	}}, nil
}

type sourceReader struct {
	r     io.Reader
	f     *os.File
	attrs driver.ReaderAttributes
}

func (r *sourceReader) Read(p []byte) (int, error)           { return r.r.Read(p) }
func (r *sourceReader) Close() error                         { return r.f.Close() }
func (r *sourceReader) Attributes() *driver.ReaderAttributes { return &r.attrs }
func (r *sourceReader) As(any) bool                          { return false }

func (d *sourceDir) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	if opts != nil && opts.BeforeDelete != nil {
		if err := opts.BeforeDelete(func(any) bool { return false }); err != nil {
			return err
		}
	}
	_, dir, name, err := d.lstatRegular(key)
	if err != nil {
		return err
	}
	defer d.closeSub(dir)
	// Remove unlinks the entry itself (unlinkat): were it swapped for a
	// link since the check, the link would go, never its target, and never
	// anything outside the source folder.
	return dir.Remove(name)
}

func (d *sourceDir) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	return nil, errReadOnly
}

func (d *sourceDir) Copy(ctx context.Context, dstKey, srcKey string, opts *driver.CopyOptions) error {
	return errReadOnly
}

func (d *sourceDir) SignedURL(ctx context.Context, key string, opts *driver.SignedURLOptions) (string, error) {
	return "", errors.ErrUnsupported
}

// ListPaged lists the folder tree without following links. Links and
// special files are listed (with their own size) but never opened; folders
// that are links are listed as such objects and not descended into.
func (d *sourceDir) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	if opts.BeforeList != nil {
		if err := opts.BeforeList(func(any) bool { return false }); err != nil {
			return nil, err
		}
	}
	var start []string
	if i := strings.LastIndex(opts.Prefix, "/"); i >= 0 {
		start = strings.Split(opts.Prefix[:i], "/")
	}
	dir, err := d.openDir(start)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrNotRegular) {
		return &driver.ListPage{}, nil
	}
	if err != nil {
		return nil, err
	}
	l := &lister{opts: opts, dirs: map[string]bool{}}
	base := ""
	if len(start) > 0 {
		base = strings.Join(start, "/") + "/"
	}
	err = l.walk(ctx, dir, base)
	d.closeSub(dir)
	if err != nil {
		return nil, err
	}
	objs := l.objs
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
	if len(opts.PageToken) > 0 {
		tok := string(opts.PageToken)
		i := sort.Search(len(objs), func(i int) bool { return objs[i].Key > tok })
		objs = objs[i:]
	}
	page := &driver.ListPage{Objects: objs}
	if opts.PageSize > 0 && len(objs) > opts.PageSize {
		page.Objects = objs[:opts.PageSize]
		page.NextPageToken = []byte(objs[opts.PageSize-1].Key)
	}
	return page, nil
}

type lister struct {
	opts *driver.ListOptions
	objs []*driver.ListObject
	dirs map[string]bool // collapsed "directories" already added
}

// add lists key (a file's or, with a trailing "/", a folder's), collapsing
// it at the delimiter. It reports whether the key was collapsed.
func (l *lister) add(key string, fi fs.FileInfo) bool {
	rest := key[len(l.opts.Prefix):]
	if l.opts.Delimiter != "" {
		if i := strings.Index(rest, l.opts.Delimiter); i >= 0 {
			p := l.opts.Prefix + rest[:i+len(l.opts.Delimiter)]
			if !l.dirs[p] {
				l.dirs[p] = true
				l.objs = append(l.objs, &driver.ListObject{Key: p, IsDir: true, AsFunc: func(any) bool { return false }})
			}
			return true
		}
	}
	if !strings.HasSuffix(key, "/") {
		l.objs = append(l.objs, &driver.ListObject{Key: key, ModTime: fi.ModTime(), Size: fi.Size(), AsFunc: func(any) bool { return false }})
	}
	return false
}

func (l *lister) walk(ctx context.Context, dir *os.Root, base string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := dir.Open(".")
	if err != nil {
		return err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, e := range entries {
		key := base + e.Name()
		fi, err := e.Info() // lstat: a link is described, not followed
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			if strings.HasPrefix(key, l.opts.Prefix) {
				l.add(key, fi)
			}
			continue
		}
		dkey := key + "/"
		switch {
		case strings.HasPrefix(dkey, l.opts.Prefix):
			if l.add(dkey, fi) && l.opts.Delimiter == "/" {
				continue // everything below collapses into dkey
			}
		case !strings.HasPrefix(l.opts.Prefix, dkey):
			continue // nothing below can match
		}
		sub, err := openChild(dir, e.Name(), key)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrNotRegular) {
			continue // replaced meanwhile: not listed
		}
		if err != nil {
			return err
		}
		err = l.walk(ctx, sub, dkey)
		sub.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
