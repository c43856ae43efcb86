package compress

import (
	"bufio"
	"fmt"
	"io"

	"github.com/andybalholm/brotli"
)

// newBrotli decodes brotli (RFC 7932) with github.com/andybalholm/brotli.
// The format's window is at most 16 MiB (the large-window extension is not
// accepted); a stream declaring a window above maxWindow is refused from
// its first byte, before the decoder allocates its ring buffer.
func newBrotli(r io.Reader, maxWindow int64) io.ReadCloser {
	return newGoDecoder("br", r, func(src io.Reader) (io.Reader, func(), error) {
		br := bufio.NewReaderSize(src, 4096)
		first, err := br.Peek(1)
		if err != nil {
			return nil, nil, err
		}
		if bits, ok := brotliWindowBits(first[0]); ok && int64(1)<<bits > maxWindow {
			return nil, nil, &memoryError{method: "br", detail: fmt.Sprintf(
				"a window of %s, above the limit of %s", formatSize(int64(1)<<bits), formatSize(maxWindow))}
		}
		return brotli.NewReader(br), nil, nil
	})
}

// brotliWindowBits decodes WBITS, the window size (log2) at the start of a
// brotli stream (RFC 7932 section 9.1), from its first byte. ok is false
// for the large-window marker and invalid values, which the decoder
// rejects itself.
func brotliWindowBits(b byte) (bits uint, ok bool) {
	if b&1 == 0 {
		return 16, true
	}
	if n := (b >> 1) & 7; n != 0 {
		return 17 + uint(n), true
	}
	switch n := (b >> 4) & 7; n {
	case 0:
		return 17, true
	case 1:
		return 0, false
	default:
		return 8 + uint(n), true
	}
}
