package ingest

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// benchNar is a NAR of one regular file of n bytes of text-like content
// (compresses about 3:1 with zstd, like program trees).
func benchNar(n int) []byte {
	var b bytes.Buffer
	str := func(s []byte) {
		var l [8]byte
		binary.LittleEndian.PutUint64(l[:], uint64(len(s)))
		b.Write(l[:])
		b.Write(s)
		if p := len(s) % 8; p != 0 {
			b.Write(make([]byte, 8-p))
		}
	}
	for _, s := range []string{"nix-archive-1", "(", "type", "regular", "contents"} {
		str([]byte(s))
	}
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"lib", "nix", "store", "the", "of", "and", "0x", "return", "error", "func", "\n", "  ", "int", "char"}
	content := make([]byte, 0, n)
	for len(content) < n {
		content = append(content, words[r.IntN(len(words))]...)
		if r.IntN(4) == 0 {
			content = append(content, byte('a'+r.IntN(26)), byte('0'+r.IntN(10)))
		}
	}
	str(content[:n])
	str([]byte(")"))
	return b.Bytes()
}

// BenchmarkMeasureZstd: the server's and ingest's one-pass verification of
// a zstd NAR file (FileHash, decompression, NAR grammar, NarHash, listing),
// in MB/s of NAR.
func BenchmarkMeasureZstd(b *testing.B) {
	nar := benchNar(64 << 20)
	enc, _ := zstd.NewWriter(nil)
	file := enc.EncodeAll(nar, nil)
	b.SetBytes(int64(len(nar)))
	b.ResetTimer()
	for range b.N {
		m, err := Measure(bytes.NewReader(file), MeasureOptions{Compression: "zstd", SizeHint: int64(len(file)), Copy: io.Discard})
		if err != nil || m.NarSize != uint64(len(nar)) {
			b.Fatal(err, m.NarSize)
		}
	}
}
