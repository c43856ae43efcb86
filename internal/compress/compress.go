package compress

import (
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os/exec"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Methods lists the supported narinfo Compression values ("" is accepted
// too and means bzip2, as in Nix).
var Methods = []string{"none", "xz", "zstd", "bzip2", "gzip"}

// ErrUnsupported is wrapped by the error NewReader returns for a
// compression method it cannot decode.
var ErrUnsupported = errors.New("unsupported compression method")

// ErrCorrupt is wrapped by every read error caused by the compressed data
// itself: truncated input, corrupt input, data after the end of the
// compressed stream. Errors caused by truncation also wrap
// io.ErrUnexpectedEOF.
var ErrCorrupt = errors.New("truncated or corrupt compressed data")

// XZSubprocessMinSize is the compressed size (bytes) from which
// NewReaderSize decodes xz with the xz program rather than in-process.
// Starting xz costs about 5 ms on the project's 2-vCPU machines under load
// (fork, exec, dynamic linking), while the Go decoder handles small inputs
// in 0.3-2 ms (it also allocates an 8 MiB dictionary per stream). Measured
// with prefixes of a Python NAR compressed by xz -6 (best of 40 alternating
// runs, see BenchmarkXZSmall): the Go decoder wins 4-10x below 10 KB, 1.5x
// at 40-60 KB, and they break even at about 100-300 KB of compressed input;
// above that the subprocess wins, reaching 2x on whole NARs (52 MB).
const XZSubprocessMinSize = 256 << 10

// zstdMaxWindow bounds the memory a zstd stream may demand; it is the limit
// of the zstd program (128 MiB, --long=27) without --memory.
const zstdMaxWindow = 128 << 20

// xzPath is the path of the xz program, or "" when it is not installed.
var xzPath = sync.OnceValue(func() string {
	p, err := exec.LookPath("xz")
	if err != nil {
		return ""
	}
	return p
})

// NewReader returns a reader of the decompressed stream for Nix's narinfo
// Compression value. Supported: "xz", "zstd", "bzip2", "gzip", "none", and
// "" meaning bzip2 as in Nix. Any other name gives an error that wraps
// ErrUnsupported; NewReader reads nothing from r. The compressed data is
// only checked while reading: every problem with it surfaces as a Read error
// wrapping ErrCorrupt, never as a clean io.EOF; errors from r are returned
// wrapped.
//
// xz is decoded by the xz program when it is installed (about twice as fast
// as the Go decoder) and by github.com/ulikunitz/xz otherwise.
//
// Close releases everything: it stops and reaps an xz process and waits for
// the goroutine that feeds it, also when the stream was not read to the
// end. Close never closes r; the feeding goroutine ends when its current
// Read on r returns. Close may be called concurrently with Read.
func NewReader(r io.Reader, compression string) (io.ReadCloser, error) {
	return NewReaderSize(r, compression, -1)
}

// NewReaderSize is NewReader with a hint: compressedSize is the size of the
// compressed data (the narinfo's FileSize) or negative when unknown. Small
// xz inputs (below XZSubprocessMinSize) are then decoded in-process, which
// is faster than starting the xz program.
func NewReaderSize(r io.Reader, compression string, compressedSize int64) (io.ReadCloser, error) {
	switch compression {
	case "none":
		return io.NopCloser(r), nil
	case "xz":
		if p := xzPath(); p != "" && (compressedSize < 0 || compressedSize >= XZSubprocessMinSize) {
			return newXZProcess(r, p), nil
		}
		return newXZGo(r), nil
	case "zstd":
		return newGoDecoder("zstd", r, func(src io.Reader) (io.Reader, func(), error) {
			d, err := zstd.NewReader(src,
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxWindow(zstdMaxWindow))
			if err != nil {
				return nil, nil, err
			}
			return d, d.Close, nil
		}), nil
	case "bzip2", "":
		return newGoDecoder("bzip2", r, func(src io.Reader) (io.Reader, func(), error) {
			return bzip2.NewReader(bufio.NewReaderSize(src, 64<<10)), nil, nil
		}), nil
	case "gzip":
		return newGoDecoder("gzip", r, func(src io.Reader) (io.Reader, func(), error) {
			z, err := gzip.NewReader(bufio.NewReaderSize(src, 64<<10))
			if err != nil {
				return nil, nil, err
			}
			return z, nil, nil
		}), nil
	}
	return nil, fmt.Errorf("compress: %w %q (supported: none, xz, zstd, bzip2, gzip)", ErrUnsupported, compression)
}

// newXZGo decodes xz in-process with github.com/ulikunitz/xz.
func newXZGo(r io.Reader) io.ReadCloser {
	return newGoDecoder("xz", r, func(src io.Reader) (io.Reader, func(), error) {
		tail := &xzTail{r: src}
		z, err := xz.ReaderConfig{}.NewReader(bufio.NewReaderSize(tail, 64<<10))
		if err != nil {
			return nil, nil, err
		}
		return &xzFooterCheck{z: z, tail: tail}, nil, nil
	})
}

// xzFooterCheck turns a clean EOF from ulikunitz/xz into an error unless
// the input ended with an xz stream footer. ulikunitz/xz v0.5.17 reports a
// clean EOF when the input stops at a block boundary (right after the
// stream header or a complete block, before the index and footer), where
// xz itself says "Unexpected end of input".
type xzFooterCheck struct {
	z    io.Reader
	tail *xzTail
}

func (c *xzFooterCheck) Read(p []byte) (int, error) {
	n, err := c.z.Read(p)
	if err == io.EOF && !c.tail.endsWithFooter() {
		err = &corruptError{method: "xz", detail: "unexpected end of input (no stream footer)", cause: io.ErrUnexpectedEOF}
	}
	return n, err
}

// xzTail remembers the last 12 bytes read before any trailing zero bytes
// (xz stream padding), to check the stream footer at the end.
type xzTail struct {
	r     io.Reader
	tail  []byte
	zeros int64
}

func (t *xzTail) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	b := p[:n]
	i := len(b) - 1
	for i >= 0 && b[i] == 0 {
		i--
	}
	if i < 0 {
		t.zeros += int64(n)
		return n, err
	}
	for z := min(t.zeros, 12); z > 0; z-- {
		t.tail = append(t.tail, 0)
	}
	t.tail = append(t.tail, b[max(0, i+1-12):i+1]...)
	if len(t.tail) > 12 {
		t.tail = t.tail[:copy(t.tail, t.tail[len(t.tail)-12:])]
	}
	t.zeros = int64(len(b) - 1 - i)
	return n, err
}

// endsWithFooter reports whether the input ended with an xz stream footer
// (CRC32 of the next 6 bytes, backward size, flags, "YZ") followed by
// stream padding (a multiple of 4 zero bytes).
func (t *xzTail) endsWithFooter() bool {
	if len(t.tail) < 12 || t.zeros%4 != 0 {
		return false
	}
	f := t.tail[len(t.tail)-12:]
	return f[10] == 'Y' && f[11] == 'Z' && crc32.ChecksumIEEE(f[4:10]) == binary.LittleEndian.Uint32(f[:4])
}

// corruptError reports a problem with the compressed data.
type corruptError struct {
	method string
	detail string
	cause  error // the decoder's error, io.ErrUnexpectedEOF, or nil
}

func (e *corruptError) Error() string {
	return "compress: truncated or corrupt " + e.method + " data: " + e.detail
}

func (e *corruptError) Is(target error) bool { return target == ErrCorrupt }

func (e *corruptError) Unwrap() error { return e.cause }

var errClosed = errors.New("compress: read after Close")

// srcReader records the first error, other than io.EOF, that r returns, so
// that a decoder failure caused by the input can be told apart from corrupt
// data.
type srcReader struct {
	r   io.Reader
	mu  sync.Mutex
	err error
	n   int64 // bytes read
}

func (s *srcReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.mu.Lock()
	s.n += int64(n)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	return n, err
}

func (s *srcReader) count() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *srcReader) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// goDecoder adapts an in-process decoder: it starts it lazily (so that
// header errors come from Read like all others), classifies its errors and
// makes them sticky. A mutex serialises Read and Close.
type goDecoder struct {
	method string
	src    *srcReader
	start  func(io.Reader) (io.Reader, func(), error)

	mu     sync.Mutex
	dec    io.Reader
	stop   func()
	err    error
	closed bool
}

func newGoDecoder(method string, r io.Reader, start func(io.Reader) (io.Reader, func(), error)) *goDecoder {
	return &goDecoder{method: method, src: &srcReader{r: r}, start: start}
}

func (d *goDecoder) Read(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return 0, d.err
	}
	if d.closed {
		return 0, errClosed
	}
	if d.dec == nil {
		dec, stop, err := d.start(d.src)
		if err != nil {
			d.err = d.classify(err)
			return 0, d.err
		}
		d.dec, d.stop = dec, stop
	}
	n, err := d.dec.Read(p)
	if err == io.EOF && d.src.count() == 0 {
		// Some decoders (zstd) see zero frames as a valid empty stream;
		// Nix never writes that, and the tools reject it.
		d.err = &corruptError{method: d.method, detail: "empty input", cause: io.ErrUnexpectedEOF}
		err = d.err
	} else if err == io.EOF {
		d.err = io.EOF
	} else if err != nil {
		d.err = d.classify(err)
		err = d.err
	}
	return n, err
}

func (d *goDecoder) classify(err error) error {
	if srcErr := d.src.failure(); srcErr != nil {
		return fmt.Errorf("compress: reading %s input: %w", d.method, srcErr)
	}
	var ce *corruptError
	if errors.As(err, &ce) {
		return ce
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return &corruptError{method: d.method, detail: "unexpected end of input", cause: io.ErrUnexpectedEOF}
	}
	return &corruptError{method: d.method, detail: err.Error(), cause: err}
}

// Close releases the decoder. It waits for a Read in progress.
func (d *goDecoder) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.closed = true
		if d.stop != nil {
			d.stop()
		}
	}
	return nil
}
