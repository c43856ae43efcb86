package index

import (
	"context"
	"fmt"
	"sync"

	"github.com/nixrepo/nixrepo/internal/store"
)

// Catalog objects other than the manifest are S2 streams (store.AppendS2).

// bufs holds the byte buffers catalog objects are encoded and compressed
// in, so a build's tens of megabytes of them are not fresh heap for the
// collector each time.
var bufs sync.Pool

func getBuf() []byte {
	if b, ok := bufs.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 64<<10)
}

func putBuf(b []byte) {
	if cap(b) <= 4<<20 { // keep no giant buffer (a 1M-path metadata object) alive
		bufs.Put(&b)
	}
}

// putCompressed writes raw, compressed, to key.
func putCompressed(ctx context.Context, st *store.Store, key string, raw []byte) error {
	z := store.AppendS2(getBuf(), raw)
	defer putBuf(z)
	return st.Put(ctx, key, z, &store.WriteOptions{ContentType: store.ContentTypeS2})
}

// putEncoded writes what encode appends to a buffer, compressed.
func putEncoded(ctx context.Context, st *store.Store, key string, encode func([]byte) []byte) error {
	raw := encode(getBuf())
	defer putBuf(raw)
	return putCompressed(ctx, st, key, raw)
}

// getCompressed reads a compressed catalog object.
func getCompressed(ctx context.Context, st *store.Store, key string) ([]byte, error) {
	b, err := st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	out, err := store.DecodeS2(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return out, nil
}
