package index

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/s2"

	"github.com/nixrepo/nixrepo/internal/store"
)

// Catalog objects other than the manifest are S2 streams (the framed
// format of github.com/klauspost/compress/s2, CRC-checked per block; the
// s2d tool reads them). A full build at 100k paths compresses some 40 MB
// of JSON and state lines: S2 does it about four times as fast as zstd's
// fastest level, for objects about 40% larger, and reads back faster too.
// The bucket that holds the NARs does not notice the difference in size;
// the build's CPU time does.

const (
	// catalogExt ends the key of every compressed catalog object.
	catalogExt = ".s2"
	// maxCatalogObject bounds what reading a corrupt or hostile object
	// can make us allocate; a 1M-path catalog's largest is far below.
	maxCatalogObject = 1 << 30
)

var (
	s2Writers = sync.Pool{New: func() any { return s2.NewWriter(nil, s2.WriterConcurrency(1)) }}
	s2Readers = sync.Pool{New: func() any { return s2.NewReader(nil) }}
	// bufs holds the byte buffers catalog objects are encoded and
	// compressed in, so a build's tens of megabytes of them are not fresh
	// heap for the collector each time.
	bufs sync.Pool
)

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

// appendCompressed appends raw as an S2 stream to dst.
func appendCompressed(dst, raw []byte) []byte {
	w := s2Writers.Get().(*s2.Writer)
	defer s2Writers.Put(w)
	out := bytes.NewBuffer(dst)
	w.Reset(out)
	// Neither call can fail: the destination is a bytes.Buffer.
	_ = w.EncodeBuffer(raw)
	_ = w.Close()
	return out.Bytes()
}

// decompress reads an S2 stream.
func decompress(b []byte) ([]byte, error) {
	r := s2Readers.Get().(*s2.Reader)
	defer s2Readers.Put(r)
	r.Reset(bytes.NewReader(b))
	out := bytes.NewBuffer(make([]byte, 0, 3*len(b)+512))
	n, err := io.Copy(out, io.LimitReader(r, maxCatalogObject+1))
	if err == nil && n > maxCatalogObject {
		err = fmt.Errorf("more than %d bytes", maxCatalogObject)
	}
	r.Reset(nil)
	if err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// putCompressed writes raw, compressed, to key.
func putCompressed(ctx context.Context, st *store.Store, key string, raw []byte) error {
	z := appendCompressed(getBuf(), raw)
	defer putBuf(z)
	return st.Put(ctx, key, z, &store.WriteOptions{ContentType: "application/x-snappy-framed"})
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
	out, err := decompress(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return out, nil
}
