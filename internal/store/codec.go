package store

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Objects nixrepo writes for itself (the path journal, the package
// catalog) are S2 streams: the framed format of
// github.com/klauspost/compress/s2, CRC-checked per block, which the s2d
// tool reads. A full catalog build at 100k paths writes some 40 MB of them
// and reads back 15 MB of journal; S2 compresses about four times as fast
// as zstd's fastest level and decompresses faster too, for objects about
// 40% larger, which a bucket holding NARs does not notice. Journals of
// earlier versions are zstd frames and are still read.

var (
	s2Writers = sync.Pool{New: func() any { return s2.NewWriter(nil, s2.WriterConcurrency(1)) }}
	s2Readers = sync.Pool{New: func() any { return s2.NewReader(nil) }}
	// Decoding a corrupt or hostile zstd frame can allocate no more than
	// this; a compacted journal of millions of paths stays far below.
	zstdDec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithDecoderMaxMemory(4<<30))
)

// MaxS2Object bounds what DecodeS2 returns.
const MaxS2Object = 4 << 30

// AppendS2 appends raw, as one S2 stream, to dst.
func AppendS2(dst, raw []byte) []byte {
	w := s2Writers.Get().(*s2.Writer)
	defer s2Writers.Put(w)
	out := bytes.NewBuffer(dst)
	w.Reset(out)
	// Neither call can fail: the destination is a bytes.Buffer.
	_ = w.EncodeBuffer(raw)
	_ = w.Close()
	w.Reset(nil)
	return out.Bytes()
}

// DecodeS2 reads an S2 stream whole. A truncated or damaged stream is an
// error, never short data.
func DecodeS2(b []byte) ([]byte, error) {
	r := s2Readers.Get().(*s2.Reader)
	defer s2Readers.Put(r)
	r.Reset(bytes.NewReader(b))
	defer r.Reset(nil)
	out := bytes.NewBuffer(make([]byte, 0, 3*len(b)+bytes.MinRead))
	n, err := io.Copy(out, io.LimitReader(r, MaxS2Object+1))
	if err == nil && n > MaxS2Object {
		err = fmt.Errorf("more than %d bytes", MaxS2Object)
	}
	if err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// decodeZstd decompresses a zstd frame (a journal object of an earlier
// version).
func decodeZstd(b []byte) ([]byte, error) {
	return zstdDec.DecodeAll(b, nil)
}
