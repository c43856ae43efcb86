package store_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"

	"github.com/nixrepo/nixrepo/internal/store"
)

// endlessBucket serves every key as an endless stream of bytes that claims
// to be claimedSize bytes long, and counts the bytes handed out: an object
// whose size cannot be trusted (a growing file, a lying server).
type endlessBucket struct {
	claimedSize int64
	read        atomic.Int64
}

type endlessReader struct{ b *endlessBucket }

func (r endlessReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	r.b.read.Add(int64(len(p)))
	return len(p), nil
}
func (r endlessReader) Close() error { return nil }
func (r endlessReader) Attributes() *driver.ReaderAttributes {
	return &driver.ReaderAttributes{Size: r.b.claimedSize}
}
func (r endlessReader) As(any) bool { return false }

func (b *endlessBucket) NewRangeReader(context.Context, string, int64, int64, *driver.ReaderOptions) (driver.Reader, error) {
	return endlessReader{b}, nil
}
func (b *endlessBucket) Attributes(context.Context, string) (*driver.Attributes, error) {
	return &driver.Attributes{Size: b.claimedSize}, nil
}
func (b *endlessBucket) ErrorCode(error) gcerrors.ErrorCode { return gcerrors.Unknown }
func (b *endlessBucket) As(any) bool                        { return false }
func (b *endlessBucket) ErrorAs(error, any) bool            { return false }
func (b *endlessBucket) Close() error                       { return nil }
func (b *endlessBucket) ListPaged(context.Context, *driver.ListOptions) (*driver.ListPage, error) {
	return &driver.ListPage{}, nil
}
func (b *endlessBucket) NewTypedWriter(context.Context, string, string, *driver.WriterOptions) (driver.Writer, error) {
	return nil, errors.ErrUnsupported
}
func (b *endlessBucket) Copy(context.Context, string, string, *driver.CopyOptions) error {
	return errors.ErrUnsupported
}
func (b *endlessBucket) Delete(context.Context, string, *driver.DeleteOptions) error {
	return errors.ErrUnsupported
}
func (b *endlessBucket) SignedURL(context.Context, string, *driver.SignedURLOptions) (string, error) {
	return "", errors.ErrUnsupported
}

// TestGetLimitStopsReadingAtTheLimit: an object that claims to be small
// but never ends is read no further than limit+1 bytes.
func TestGetLimitStopsReadingAtTheLimit(t *testing.T) {
	const limit = 1 << 20
	for _, claimed := range []int64{0, 10, limit} {
		eb := &endlessBucket{claimedSize: claimed}
		s := store.New(blob.NewBucket(eb), "endless://")
		_, err := s.GetLimit(context.Background(), "r/x.narinfo", limit)
		if !errors.Is(err, store.ErrTooLarge) {
			t.Fatalf("claimed size %d: got %v, want ErrTooLarge", claimed, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "r/x.narinfo") || !strings.Contains(msg, "1048576 bytes") {
			t.Errorf("message %q does not name the key and the limit", msg)
		}
		if n := eb.read.Load(); n > limit+1 {
			t.Errorf("claimed size %d: read %d bytes, want at most limit+1 = %d", claimed, n, limit+1)
		}
		s.Close()
	}
}

func TestGetLimitRefusesALargerObjectUpFront(t *testing.T) {
	eb := &endlessBucket{claimedSize: 64 << 30}
	s := store.New(blob.NewBucket(eb), "endless://")
	defer s.Close()
	if _, err := s.GetLimit(context.Background(), "x", 1<<20); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if n := eb.read.Load(); n != 0 {
		t.Errorf("read %d bytes of an object whose size already says it is too large", n)
	}
}

// TestGetLimitSparseFile reads a 64 GiB sparse file (no disk, no memory if
// the read stops) through a file bucket and a source folder.
func TestGetLimitSparseFile(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.narinfo")
	f, err := os.Create(huge)
	must(t, err)
	must(t, f.Truncate(64<<30))
	f.Close()
	must(t, os.WriteFile(filepath.Join(dir, "small.narinfo"), []byte("exactly 16 bytes"), 0o644))
	bucket, err := store.Open(context.Background(), "file://"+dir, "", true)
	must(t, err)
	defer bucket.Close()
	source, err := store.OpenSource(context.Background(), "file://"+dir, "")
	must(t, err)
	defer source.Close()
	for name, s := range map[string]*store.Store{"file bucket": bucket, "source folder": source} {
		if _, err := s.GetLimit(context.Background(), "huge.narinfo", 1<<20); !errors.Is(err, store.ErrTooLarge) {
			t.Errorf("%s: got %v, want ErrTooLarge", name, err)
		}
		if b, err := s.GetLimit(context.Background(), "small.narinfo", 16); err != nil || len(b) != 16 {
			t.Errorf("%s: an object of exactly the limit: %d bytes, %v", name, len(b), err)
		}
		if _, err := s.GetLimit(context.Background(), "small.narinfo", 15); !errors.Is(err, store.ErrTooLarge) {
			t.Errorf("%s: one byte over the limit: %v, want ErrTooLarge", name, err)
		}
	}
}

// countingReader counts what is read from an endless stream.
type countingReader struct{ n int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

func TestReadLimitRefusesLongerStream(t *testing.T) {
	cr := &countingReader{}
	_, err := store.ReadLimit(cr, "upstream x.narinfo", 4096)
	if !errors.Is(err, store.ErrTooLarge) || !strings.Contains(err.Error(), "upstream x.narinfo") {
		t.Fatalf("got %v, want ErrTooLarge naming the stream", err)
	}
	if cr.n > 4097 {
		t.Errorf("read %d bytes, want at most 4097", cr.n)
	}
	b, err := store.ReadLimit(io.LimitReader(&countingReader{}, 4096), "x", 4096)
	if err != nil || len(b) != 4096 {
		t.Errorf("a stream of exactly the limit: %d bytes, %v", len(b), err)
	}
}
