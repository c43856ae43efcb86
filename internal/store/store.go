package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// Sentinel errors. Every error the package returns for a missing object or a
// failed write-once precondition wraps one of these.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrTooLarge: an object read with a limit (GetLimit, ReadLimit) is
	// larger than the limit.
	ErrTooLarge = errors.New("object is larger than allowed")
)

// Store is a bucket holding Nix binary caches: the repository store or an
// incoming source.
type Store struct {
	bucket  *blob.Bucket
	url     string
	dir     string // the folder of a file bucket, else ""
	journal journal
	cond    Conditional
	casMu   sync.Mutex // Update without conditional writes (CondProcess, CondNone)
}

// New wraps an open bucket; url is used in messages only. The store makes
// no assumption about the driver's conditional writes (CondNone).
func New(b *blob.Bucket, url string) *Store { return &Store{bucket: b, url: url} }

// Open opens the bucket at rawURL (any gocloud URL whose driver the program
// imports). A relative file URL such as file://./var/store resolves against
// baseDir. File buckets are opened without metadata sidecars (metadata=skip),
// so the folder is a clean static tree, and with create_dir unless
// mustExist is set.
func Open(ctx context.Context, rawURL, baseDir string, mustExist bool) (*Store, error) {
	u, err := ResolveURL(rawURL, baseDir)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "file" {
		if _, err := os.Stat(u.Path); err != nil && mustExist {
			return nil, fmt.Errorf("store: %s: %w", u.Path, ErrNotFound)
		}
		q := u.Query()
		if q.Get("metadata") == "" {
			q.Set("metadata", "skip")
		}
		if !mustExist && q.Get("create_dir") == "" {
			q.Set("create_dir", "1")
		}
		u.RawQuery = q.Encode()
	}
	b, err := blob.OpenBucket(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", redact(rawURL), err)
	}
	st := &Store{bucket: b, url: redact(rawURL), cond: conditionalOf(u)}
	if u.Scheme == "file" {
		st.dir = u.Path
		st.clearStaleTemps()
	}
	return st, nil
}

// LocalPath returns the file holding key when the store is a folder, so a
// server can hand the file to the kernel (sendfile). ok is false for other
// buckets or an unsafe key.
func (s *Store) LocalPath(key string) (path string, ok bool) {
	if s.dir == "" || CheckRel(key) != nil {
		return "", false
	}
	return filepath.Join(s.dir, filepath.FromSlash(key)), true
}

// ResolveURL parses rawURL, turning a relative file URL (file://./dir,
// file://../dir, file://dir) into an absolute one against baseDir (the
// working directory when empty). A plain path without a scheme is taken as
// a folder.
func ResolveURL(rawURL, baseDir string) (*url.URL, error) {
	if baseDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		baseDir = wd
	}
	if !strings.Contains(rawURL, "://") {
		p := rawURL
		if !filepath.IsAbs(p) {
			p = filepath.Join(baseDir, p)
		}
		return &url.URL{Scheme: "file", Path: filepath.Clean(p)}, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store: bad URL %q: %w", redact(rawURL), err)
	}
	if u.Scheme == "file" && u.Host != "" && u.Host != "localhost" {
		// file://./var/store parses with Host "." and Path "/var/store".
		u.Path = filepath.Clean(filepath.Join(baseDir, u.Host+u.Path))
		u.Host = ""
	} else if u.Scheme == "file" {
		u.Host = ""
		u.Path = filepath.Clean(u.Path)
	}
	return u, nil
}

// Folder returns the folder of a file:// store URL, resolved as Open
// resolves it, or "" for any other bucket.
func Folder(rawURL, baseDir string) string {
	u, err := ResolveURL(rawURL, baseDir)
	if err != nil || u.Scheme != "file" {
		return ""
	}
	return u.Path
}

// redact hides a password in a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// URL is the bucket URL, for messages.
func (s *Store) URL() string { return s.url }

// Bucket exposes the underlying bucket for callers that need driver features.
func (s *Store) Bucket() *blob.Bucket { return s.bucket }

// Close writes the journal notes not yet written (FlushJournal) and
// closes the bucket.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return errors.Join(s.FlushJournal(ctx), s.bucket.Close())
}

// wrap translates gocloud error codes into this package's sentinels, once.
func wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var ee *EntryError
	if errors.As(err, &ee) {
		// A refused source folder entry: its own message says it all.
		return fmt.Errorf("%s %s: %w", op, key, ee)
	}
	switch gcerrors.Code(err) {
	case gcerrors.NotFound:
		return fmt.Errorf("%s %s: %w", op, key, ErrNotFound)
	case gcerrors.FailedPrecondition:
		return fmt.Errorf("%s %s: %w", op, key, ErrExists)
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

// Get reads a whole object. A missing key is ErrNotFound. Objects an
// outsider controls are read with GetLimit.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	return s.get(ctx, key, -1)
}

// GetLimit reads a whole object of at most limit bytes. A larger object is
// an error wrapping ErrTooLarge that names key and limit; reading stops at
// limit+1 bytes, whatever size the object claims, so a huge (or endless)
// object costs no more than the limit.
func (s *Store) GetLimit(ctx context.Context, key string, limit int64) ([]byte, error) {
	return s.get(ctx, key, max(limit, 0))
}

func (s *Store) get(ctx context.Context, key string, limit int64) ([]byte, error) {
	r, err := s.bucket.NewReader(ctx, key, nil)
	if err != nil {
		return nil, wrap("read", key, err)
	}
	defer r.Close()
	if limit >= 0 && r.Size() > limit {
		return nil, tooLarge(key, limit)
	}
	b, err := readLimit(r, r.Size(), limit)
	if errors.Is(err, ErrTooLarge) {
		return nil, tooLarge(key, limit)
	}
	if err != nil {
		return nil, wrap("read", key, err)
	}
	return b, nil
}

func tooLarge(name string, limit int64) error {
	return fmt.Errorf("read %s: %w: more than %d bytes", name, ErrTooLarge, limit)
}

// ReadLimit reads r to its end, which must come within limit bytes: a
// longer stream is an error wrapping ErrTooLarge that names name and limit,
// after reading at most limit+1 bytes.
func ReadLimit(r io.Reader, name string, limit int64) ([]byte, error) {
	b, err := readLimit(r, 0, max(limit, 0))
	if errors.Is(err, ErrTooLarge) {
		return nil, tooLarge(name, limit)
	}
	return b, err
}

// readLimit reads r whole; limit < 0 means no limit. sizeHint (the size the
// object claims) sizes the buffer, so ReadFrom does not grow it by
// doubling; the slack lets ReadFrom see EOF without growing, and an object
// that changed size meanwhile is still read whole (up to the limit).
func readLimit(r io.Reader, sizeHint, limit int64) ([]byte, error) {
	hint := max(sizeHint, 0)
	if limit >= 0 {
		hint = min(hint, limit)
		r = io.LimitReader(r, limit+1)
	}
	buf := bytes.NewBuffer(make([]byte, 0, hint+bytes.MinRead))
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	if limit >= 0 && int64(buf.Len()) > limit {
		return nil, ErrTooLarge
	}
	return buf.Bytes(), nil
}

// Attributes describes a stored object.
type Attributes struct {
	Size        int64
	ModTime     time.Time
	ContentType string
	ETag        string
}

// Stat returns an object's attributes. A missing key is ErrNotFound.
func (s *Store) Stat(ctx context.Context, key string) (Attributes, error) {
	a, err := s.bucket.Attributes(ctx, key)
	if err != nil {
		return Attributes{}, wrap("stat", key, err)
	}
	return Attributes{Size: a.Size, ModTime: a.ModTime, ContentType: a.ContentType, ETag: a.ETag}, nil
}

// Exists reports whether key exists. Errors other than "missing" are returned,
// never taken for absence.
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	ok, err := s.bucket.Exists(ctx, key)
	return ok, wrap("stat", key, err)
}

// WriteOptions tune a write.
type WriteOptions struct {
	ContentType     string
	ContentEncoding string
	// IfNotExist makes the write fail with ErrExists when the key exists,
	// atomically on every backend with conditional writes (Conditional):
	// object stores, and folders across processes (link(2)).
	IfNotExist bool
}

func (o *WriteOptions) blob() *blob.WriterOptions {
	w := &blob.WriterOptions{DisableContentTypeDetection: true}
	if o != nil {
		w.ContentType = o.ContentType
		w.ContentEncoding = o.ContentEncoding
		w.IfNotExist = o.IfNotExist
	}
	if w.ContentType == "" {
		w.ContentType = "application/octet-stream"
	}
	return w
}

// Put writes a whole object atomically: readers see the old object or the
// new one, never a part. Put keeps no reference to data once it returns.
func (s *Store) Put(ctx context.Context, key string, data []byte, opts *WriteOptions) error {
	if s.dir != "" {
		// A folder: written by nixrepo itself (folder.go), atomically
		// across processes.
		return s.folderPut(ctx, key, data, opts)
	}
	// WriteAll sends the data's MD5, so the service checks what arrived.
	return wrap("write", key, s.bucket.WriteAll(ctx, key, data, opts.blob()))
}

// Writer streams an object. Nothing becomes visible until Commit succeeds;
// Abort (or a Commit after a failure) leaves no object and no temporary
// file behind.
type Writer struct {
	w      *blob.Writer
	fw     *folderWriter // folders: written by nixrepo (folder.go)
	key    string
	cancel context.CancelFunc
	n      int64
	done   bool
}

// NewWriter starts a streaming write of key.
func (s *Store) NewWriter(ctx context.Context, key string, opts *WriteOptions) (*Writer, error) {
	if s.dir != "" {
		fw, err := s.newFolderWriter(ctx, key, opts)
		if err != nil {
			return nil, err
		}
		return &Writer{fw: fw, key: key, cancel: func() {}}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	w, err := s.bucket.NewWriter(ctx, key, opts.blob())
	if err != nil {
		cancel()
		return nil, wrap("write", key, err)
	}
	return &Writer{w: w, key: key, cancel: cancel}, nil
}

func (w *Writer) Write(p []byte) (int, error) {
	if w.fw != nil {
		n, err := w.fw.Write(p)
		w.n += int64(n)
		if err != nil {
			return n, fmt.Errorf("write %s: %w", w.key, err)
		}
		return n, nil
	}
	n, err := w.w.Write(p)
	w.n += int64(n)
	if err != nil {
		return n, wrap("write", w.key, err)
	}
	return n, nil
}

// ReadFrom lets io.Copy hand the writer large chunks.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if w.fw != nil {
		n, err := io.Copy(writerOnly{w.fw}, r)
		w.n += n
		return n, err
	}
	n, err := w.w.ReadFrom(r)
	w.n += n
	return n, err
}

// Written is the number of bytes written so far.
func (w *Writer) Written() int64 { return w.n }

// Commit makes the object visible.
func (w *Writer) Commit() error {
	if w.done {
		return fmt.Errorf("write %s: already finished", w.key)
	}
	w.done = true
	defer w.cancel()
	if w.fw != nil {
		return w.fw.commit()
	}
	return wrap("write", w.key, w.w.Close())
}

// Abort discards the write. It is safe to call after Commit (a no-op then),
// so `defer w.Abort()` is the idiom.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.cancel()
	if w.fw != nil {
		w.fw.abort()
		return
	}
	_ = w.w.Close()
}

// writerOnly hides a writer's other methods from io.Copy.
type writerOnly struct{ io.Writer }

// Reader is an open object.
type Reader struct {
	*blob.Reader
}

// NewReader opens key for streaming. A missing key is ErrNotFound.
func (s *Store) NewReader(ctx context.Context, key string) (*Reader, error) {
	r, err := s.bucket.NewReader(ctx, key, nil)
	if err != nil {
		return nil, wrap("read", key, err)
	}
	return &Reader{r}, nil
}

// NewRangeReader opens length bytes of key from offset (length < 0: to the end).
func (s *Store) NewRangeReader(ctx context.Context, key string, offset, length int64) (*Reader, error) {
	r, err := s.bucket.NewRangeReader(ctx, key, offset, length, nil)
	if err != nil {
		return nil, wrap("read", key, err)
	}
	return &Reader{r}, nil
}

// Delete removes key. Deleting a missing key is ErrNotFound.
func (s *Store) Delete(ctx context.Context, key string) error {
	return wrap("delete", key, s.bucket.Delete(ctx, key))
}

// Copy copies src to dst inside the bucket, server-side where the driver
// can.
func (s *Store) Copy(ctx context.Context, dst, src string) error {
	if s.dir != "" {
		return s.folderCopy(ctx, dst, src)
	}
	return wrap("copy", src, s.bucket.Copy(ctx, dst, src, nil))
}

// Object is one listed object.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time
	// Dir is set for a common prefix when listing with a delimiter.
	Dir bool
}

// List calls fn for every object under prefix. With shallow set it lists one
// level (sub-folders come back as Dir entries). Temporary files of
// in-progress file-bucket writes are never listed.
func (s *Store) List(ctx context.Context, prefix string, shallow bool, fn func(Object) error) error {
	opts := &blob.ListOptions{Prefix: prefix}
	if shallow {
		opts.Delimiter = "/"
	}
	it := s.bucket.List(opts)
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return wrap("list", prefix, err)
		}
		if !o.IsDir && isTempKey(o.Key) {
			continue
		}
		if err := fn(Object{Key: o.Key, Size: o.Size, ModTime: o.ModTime, Dir: o.IsDir}); err != nil {
			return err
		}
	}
}

// isTempKey matches fileblob's in-progress files: "<key>.<hex nanoseconds>.tmp".
func isTempKey(key string) bool {
	if !strings.HasSuffix(key, ".tmp") {
		return false
	}
	rest := strings.TrimSuffix(key, ".tmp")
	i := strings.LastIndexByte(rest, '.')
	if i < 0 || i == len(rest)-1 {
		return false
	}
	for _, c := range rest[i+1:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
