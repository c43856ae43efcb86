package store

import (
	"runtime"

	"github.com/klauspost/compress/zstd"
)

// The path journal's objects are zstd-compressed in one call. One encoder
// and one decoder serve them all: each keeps per-CPU state, and
// EncodeAll/DecodeAll calls run in parallel up to GOMAXPROCS.
var (
	zstdEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
	// The cap bounds what a corrupt or hostile object can make us
	// allocate; a compacted journal of millions of paths stays far below.
	zstdDec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(4<<30))
)

// EncodeZstd compresses raw as one zstd frame (fastest level).
func EncodeZstd(raw []byte) []byte {
	return zstdEnc.EncodeAll(raw, make([]byte, 0, len(raw)/4+64))
}

// DecodeZstd decompresses what EncodeZstd (or any zstd writer) wrote.
func DecodeZstd(b []byte) ([]byte, error) {
	return zstdDec.DecodeAll(b, nil)
}
