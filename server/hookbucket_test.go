package server_test

import (
	"context"
	"sync"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/nixrepo/nixrepo/internal/store"
)

// hookBucket is a memory bucket that calls a hook before every operation,
// so a test can slow a chosen operation down or watch it. It is a gocloud
// driver wrapping a memblob bucket.
type hookBucket struct {
	inner *blob.Bucket
	mu    sync.Mutex
	hook  func(ctx context.Context, op, key string) error
}

// hookStore returns a store over a new hooked memory bucket.
func hookStore(t testing.TB) (*store.Store, *hookBucket) {
	t.Helper()
	hb := &hookBucket{inner: memblob.OpenBucket(nil)}
	st := store.New(blob.NewBucket(hb), "hook://")
	t.Cleanup(func() { st.Close() })
	return st, hb
}

func (b *hookBucket) setHook(h func(ctx context.Context, op, key string) error) {
	b.mu.Lock()
	b.hook = h
	b.mu.Unlock()
}

func (b *hookBucket) before(ctx context.Context, op, key string) error {
	b.mu.Lock()
	h := b.hook
	b.mu.Unlock()
	if h != nil {
		return h(ctx, op, key)
	}
	return nil
}

func (b *hookBucket) ErrorCode(err error) gcerrors.ErrorCode { return gcerrors.Code(err) }
func (b *hookBucket) As(any) bool                            { return false }
func (b *hookBucket) ErrorAs(error, any) bool                { return false }
func (b *hookBucket) Close() error                           { return b.inner.Close() }

func (b *hookBucket) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	if err := b.before(ctx, "attributes", key); err != nil {
		return nil, err
	}
	a, err := b.inner.Attributes(ctx, key)
	if err != nil {
		return nil, err
	}
	return &driver.Attributes{
		ContentType: a.ContentType, ContentEncoding: a.ContentEncoding, Size: a.Size,
		ModTime: a.ModTime, CreateTime: a.CreateTime, MD5: a.MD5, ETag: a.ETag, Metadata: a.Metadata,
	}, nil
}

func (b *hookBucket) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	if err := b.before(ctx, "list", opts.Prefix); err != nil {
		return nil, err
	}
	objs, next, err := b.inner.ListPage(ctx, opts.PageToken, max(opts.PageSize, 1000), &blob.ListOptions{Prefix: opts.Prefix, Delimiter: opts.Delimiter})
	if err != nil {
		return nil, err
	}
	page := &driver.ListPage{NextPageToken: next}
	for _, o := range objs {
		page.Objects = append(page.Objects, &driver.ListObject{Key: o.Key, ModTime: o.ModTime, Size: o.Size, MD5: o.MD5, IsDir: o.IsDir})
	}
	return page, nil
}

type hookReader struct{ *blob.Reader }

func (r hookReader) Attributes() *driver.ReaderAttributes {
	return &driver.ReaderAttributes{ContentType: r.ContentType(), ModTime: r.ModTime(), Size: r.Size()}
}
func (r hookReader) As(any) bool { return false }

func (b *hookBucket) NewRangeReader(ctx context.Context, key string, offset, length int64, _ *driver.ReaderOptions) (driver.Reader, error) {
	if err := b.before(ctx, "read", key); err != nil {
		return nil, err
	}
	r, err := b.inner.NewRangeReader(ctx, key, offset, length, nil)
	if err != nil {
		return nil, err
	}
	return hookReader{r}, nil
}

type hookWriter struct {
	*blob.Writer
	b   *hookBucket
	ctx context.Context
	key string
}

func (w hookWriter) Close() error {
	if err := w.b.before(w.ctx, "commit", w.key); err != nil {
		w.Writer.Close()
		return err
	}
	return w.Writer.Close()
}

func (b *hookBucket) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	if err := b.before(ctx, "write", key); err != nil {
		return nil, err
	}
	w, err := b.inner.NewWriter(ctx, key, &blob.WriterOptions{
		ContentType: contentType, ContentEncoding: opts.ContentEncoding, IfNotExist: opts.IfNotExist,
		DisableContentTypeDetection: true,
	})
	if err != nil {
		return nil, err
	}
	return hookWriter{Writer: w, b: b, ctx: ctx, key: key}, nil
}

func (b *hookBucket) Copy(ctx context.Context, dst, src string, _ *driver.CopyOptions) error {
	if err := b.before(ctx, "copy", src); err != nil {
		return err
	}
	return b.inner.Copy(ctx, dst, src, nil)
}

func (b *hookBucket) Delete(ctx context.Context, key string, _ *driver.DeleteOptions) error {
	if err := b.before(ctx, "delete", key); err != nil {
		return err
	}
	return b.inner.Delete(ctx, key)
}

func (b *hookBucket) SignedURL(context.Context, string, *driver.SignedURLOptions) (string, error) {
	return "", gcerrorsUnimplemented{}
}

type gcerrorsUnimplemented struct{}

func (gcerrorsUnimplemented) Error() string { return "not implemented" }
