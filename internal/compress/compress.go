package compress

import (
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Methods returns the supported narinfo Compression values ("" is
// accepted too and means bzip2, as in Nix).
func Methods() []string { return []string{"none", "xz", "zstd", "bzip2", "gzip"} }

// ContentEncodings returns the HTTP Content-Encoding values
// [NewContentReader] decodes ("" means the same as "identity").
func ContentEncodings() []string { return []string{"identity", "br", "zstd", "xz", "gzip", "x-gzip"} }

// ErrUnsupported is wrapped by the error NewReader returns for a
// compression method it cannot decode.
var ErrUnsupported = errors.New("unsupported compression method")

// ErrCorrupt is wrapped by every read error caused by the compressed data
// itself: truncated input, corrupt input, data after the end of the
// compressed stream. Errors caused by truncation also wrap
// io.ErrUnexpectedEOF.
var ErrCorrupt = errors.New("truncated or corrupt compressed data")

// ErrTooLarge is wrapped by the read error a reader returns when the
// decoded data goes past Options.MaxOutput. The error is a *TooLargeError
// naming the limit.
var ErrTooLarge = errors.New("decoded data exceeds its limit")

// ErrMemoryLimit is wrapped by the read error a reader returns when the
// stream declares a window (xz dictionary, zstd window, brotli window)
// larger than Options.MaxMemory. It is reported before the decoder
// allocates that window.
var ErrMemoryLimit = errors.New("compressed stream needs more memory than allowed")

// TooLargeError reports decoded data past Options.MaxOutput. The reader
// returned exactly Limit bytes before it.
type TooLargeError struct {
	Method string // the compression method ("none" for plain data)
	Limit  int64  // Options.MaxOutput
}

func (e *TooLargeError) Error() string {
	if e.Method == "none" {
		return fmt.Sprintf("compress: the data is larger than the limit of %s", formatSize(e.Limit))
	}
	return fmt.Sprintf("compress: the %s data decodes to more than the limit of %s", e.Method, formatSize(e.Limit))
}

// Is makes errors.Is(err, ErrTooLarge) true.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// XZSubprocessMinSize is the compressed size (bytes) from which a reader
// decodes xz with the xz program rather than in-process, when the size is
// known (Options.SizeHint).
// Starting xz costs about 5 ms on the project's 2-vCPU machines under load
// (fork, exec, dynamic linking), while the Go decoder handles small inputs
// in 0.3-2 ms. Measured with prefixes of a Python NAR compressed by xz -6
// (best of 40 alternating runs; BenchmarkXZSmall repeats the measurement):
// the Go decoder is 4-20x faster below 10 KB of compressed input, 1.5x at
// 40-60 KB and 1.1x at 100-150 KB; they break even at about 250-300 KB, and
// on a whole 10 MB .nar.xz the subprocess is 2x faster.
const XZSubprocessMinSize = 256 << 10

// DefaultMaxMemory is the largest window a stream may declare when
// Options.MaxMemory is zero: an xz dictionary or a zstd window of at most
// 128 MiB. Nix's xz presets use at most 64 MiB (xz -9; the default -6
// uses 8 MiB) and 128 MiB is the zstd program's own limit without
// --memory (--long=27). Without a bound a crafted xz block header makes
// the Go decoder allocate up to 4 GiB.
const DefaultMaxMemory = 128 << 20

// Options bound a reader. The zero value decodes with the defaults and
// no output bound.
type Options struct {
	// SizeHint is the size of the compressed data when it is known (the
	// narinfo's FileSize, a Content-Length); zero or negative means
	// unknown. Small xz inputs (below XZSubprocessMinSize) are then
	// decoded in-process, which is faster than starting the xz program.
	SizeHint int64
	// MaxOutput bounds the decoded bytes; zero or negative means no
	// bound. The reader returns at most MaxOutput bytes: the Read that
	// finds a byte past them returns the bytes up to the limit and an
	// error wrapping ErrTooLarge (a *TooLargeError), and the decoder
	// does no more work.
	MaxOutput int64
	// MaxMemory bounds the window a stream may declare: the xz
	// dictionary, the zstd window, the brotli window (at most 16 MiB by
	// the format). Zero or negative means DefaultMaxMemory. A stream
	// that declares more fails with an error wrapping ErrMemoryLimit
	// before anything is allocated for it. gzip (32 KiB) and bzip2
	// (under 4 MiB) have small fixed windows and ignore it.
	MaxMemory int64
}

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
// Close must be called. It releases everything: it stops and reaps an xz
// process and waits for the goroutine that feeds it, also when the stream
// was not read to the end. Close never closes r; if a Read on r is in
// progress, Close waits for it to return. Close may be called concurrently
// with Read.
func NewReader(r io.Reader, compression string) (io.ReadCloser, error) {
	return NewReaderOptions(r, compression, Options{})
}

// NewReaderSize is NewReader with a hint: compressedSize is the size of the
// compressed data (the narinfo's FileSize), zero or negative when unknown
// (see Options.SizeHint).
func NewReaderSize(r io.Reader, compression string, compressedSize int64) (io.ReadCloser, error) {
	return NewReaderOptions(r, compression, Options{SizeHint: compressedSize})
}

// NewReaderOptions is NewReader bounded by o: the decoded size
// (o.MaxOutput) and the window the stream may declare (o.MaxMemory).
func NewReaderOptions(r io.Reader, compression string, o Options) (io.ReadCloser, error) {
	if err := Supported(compression); err != nil {
		return nil, err
	}
	return open(r, compression, o), nil
}

// Supported returns nil for a narinfo Compression that NewReader decodes,
// and otherwise the error, wrapping ErrUnsupported, that names the ones it
// does: the one message every entry point gives for Nix's other methods
// (br, lz4, lzip).
func Supported(compression string) error {
	switch compression {
	case "none", "xz", "zstd", "bzip2", "", "gzip":
		return nil
	}
	return fmt.Errorf("compress: %w %q (supported: none, xz, zstd, bzip2, gzip)", ErrUnsupported, compression)
}

// NewContentReader decodes an HTTP body by its Content-Encoding header
// value: "br", "zstd", "xz", "gzip" (or "x-gzip"), and "identity" or ""
// for a body sent as it is; case and surrounding spaces do not matter.
// Any other value, including a list of codings, gives an error wrapping
// ErrUnsupported. The reader behaves as NewReaderOptions' does, with the
// same bounds.
func NewContentReader(r io.Reader, contentEncoding string, o Options) (io.ReadCloser, error) {
	method := ""
	switch strings.ToLower(strings.TrimSpace(contentEncoding)) {
	case "", "identity":
		method = "none"
	case "br":
		method = "br"
	case "zstd":
		method = "zstd"
	case "xz":
		method = "xz"
	case "gzip", "x-gzip":
		method = "gzip"
	default:
		return nil, fmt.Errorf("compress: %w: Content-Encoding %q (supported: br, zstd, xz, gzip, identity)", ErrUnsupported, contentEncoding)
	}
	return open(r, method, o), nil
}

// open returns the reader of a known method.
func open(r io.Reader, method string, o Options) io.ReadCloser {
	mem := o.MaxMemory
	if mem <= 0 {
		mem = DefaultMaxMemory
	}
	var rc io.ReadCloser
	switch method {
	case "none":
		rc = io.NopCloser(r)
	case "xz":
		if p := xzPath(); p != "" && (o.SizeHint <= 0 || o.SizeHint >= XZSubprocessMinSize) {
			rc = newXZProcess(r, p, mem)
		} else {
			rc = newXZGo(r, mem)
		}
	case "zstd":
		d := newGoDecoder("zstd", r, func(src io.Reader) (io.Reader, func(), error) {
			d, err := zstd.NewReader(src,
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxWindow(uint64(max(mem, zstd.MinWindowSize))))
			if err != nil {
				return nil, nil, err
			}
			return d, d.Close, nil
		})
		d.memory = func(err error) error {
			if errors.Is(err, zstd.ErrWindowSizeExceeded) {
				return &memoryError{method: "zstd", detail: fmt.Sprintf("the frame's window is larger than the limit of %s", formatSize(mem))}
			}
			return nil
		}
		rc = d
	case "bzip2", "":
		rc = newGoDecoder("bzip2", r, func(src io.Reader) (io.Reader, func(), error) {
			return bzip2.NewReader(bufio.NewReaderSize(src, 64<<10)), nil, nil
		})
	case "gzip":
		rc = newGoDecoder("gzip", r, func(src io.Reader) (io.Reader, func(), error) {
			z, err := gzip.NewReader(bufio.NewReaderSize(src, 64<<10))
			if err != nil {
				return nil, nil, err
			}
			return z, nil, nil
		})
	case "br":
		rc = newBrotli(r, mem)
	default:
		panic("compress: unknown method " + method)
	}
	if o.MaxOutput > 0 {
		rc = &capReader{rc: rc, method: method, left: o.MaxOutput, limit: o.MaxOutput}
	}
	return rc
}

// capReader stops a reader at its output limit: it never returns more
// than limit bytes, and fails at the first byte past them.
type capReader struct {
	rc     io.ReadCloser
	method string
	left   int64 // bytes still allowed
	limit  int64
	err    error
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	// One byte more than allowed tells a stream that ends at the limit
	// from one that goes on.
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.rc.Read(p)
	if int64(n) > c.left {
		n = int(c.left)
		c.left = 0
		c.err = &TooLargeError{Method: c.method, Limit: c.limit}
		return n, c.err
	}
	c.left -= int64(n)
	return n, err
}

func (c *capReader) Close() error { return c.rc.Close() }

// memoryError reports a stream that declares a window above
// Options.MaxMemory.
type memoryError struct {
	method string
	detail string
}

func (e *memoryError) Error() string {
	return "compress: the " + e.method + " stream needs more memory than allowed: " + e.detail
}

func (e *memoryError) Is(target error) bool { return target == ErrMemoryLimit }

// formatSize writes a byte count in MiB when it is a whole number of them.
func formatSize(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// newXZGo decodes xz in-process with github.com/ulikunitz/xz.
// Block headers declaring a dictionary above maxDict are refused.
func newXZGo(r io.Reader, maxDict int64) io.ReadCloser {
	return newGoDecoder("xz", r, func(src io.Reader) (io.Reader, func(), error) {
		fr := &xzFramingReader{r: src, f: xzFraming{maxDict: uint64(maxDict)}}
		// DictCap 4096: allocate the dictionary size the stream declares
		// (8 MiB for xz -6) rather than at least 8 MiB.
		z, err := xz.ReaderConfig{DictCap: 4096}.NewReader(bufio.NewReaderSize(fr, 64<<10))
		if err != nil {
			return nil, nil, err
		}
		return &xzEndCheck{z: z, framing: &fr.f}, nil, nil
	})
}

// xzEndCheck turns a clean EOF from ulikunitz/xz into an error unless the
// input ended where an xz file may end. ulikunitz/xz v0.5.17 reports a
// clean EOF when the input stops at or inside a block header (for example
// right after the stream header, or after a complete block, before the
// index and footer), where xz itself says "Unexpected end of input".
type xzEndCheck struct {
	z       io.Reader
	framing *xzFraming
}

func (c *xzEndCheck) Read(p []byte) (int, error) {
	n, err := c.z.Read(p)
	if err == io.EOF && !c.framing.complete() {
		err = &corruptError{method: "xz", detail: "unexpected end of input", cause: io.ErrUnexpectedEOF}
	}
	return n, err
}

// xzFramingReader passes the compressed bytes through an xzFraming.
type xzFramingReader struct {
	r io.Reader
	f xzFraming
}

func (fr *xzFramingReader) Read(p []byte) (int, error) {
	if fr.f.dictErr != nil {
		return 0, fr.f.dictErr
	}
	n, err := fr.r.Read(p)
	fr.f.write(p[:n])
	if fr.f.dictErr != nil {
		// Withhold these bytes: the decoder must not see the header.
		return 0, fr.f.dictErr
	}
	return n, err
}

// xzFraming follows the container structure of an xz file (streams,
// blocks, LZMA2 chunk headers, index, footer, stream padding) without
// decoding anything, to know whether the input ended at the end of a
// stream. It checks framing only; the decoder checks everything else.
type xzFraming struct {
	state     int
	skip      int64 // bytes to pass over before handling state
	hdr       [12]byte
	block     []byte // the block header being collected
	maxDict   uint64 // largest dictionary allowed
	dictErr   error  // set when a block needs a dictionary above maxDict
	hdrN      int    // bytes collected in hdr
	want      int    // bytes to collect in hdr for the current state
	checkSize int64  // size of each block's check field
	blockLen  int64  // bytes of the current block so far (header + data)
	indexLen  int64  // bytes of the index so far
	varint    uint64 // index varint being read
	shift     uint
	varints   uint64 // index varints still to read
	zeros     int64  // stream padding after the last footer
	bad       bool
}

const (
	xzStreamHeader = iota // collecting the 12-byte stream header
	xzBlockStart          // block header size byte or index indicator
	xzBlockHeader         // collecting the rest of the block header
	xzChunk               // LZMA2 chunk control byte
	xzChunkHeader         // collecting the rest of an LZMA2 chunk header
	xzIndexCount          // number of records (varint)
	xzIndexRecords        // record varints
	xzAfterStream         // stream padding or the next stream header
)

var xzMagic = [6]byte{0xfd, '7', 'z', 'X', 'Z', 0}

// xzCheckSizes maps the check ID (stream flags) to the check field size.
var xzCheckSizes = [16]int64{0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64}

// checkBlockHeader finds the LZMA2 dictionary size in a block header and
// refuses sizes above maxDict, before the decoder allocates the
// dictionary. Malformed headers are left to the decoder.
func (f *xzFraming) checkBlockHeader() {
	h := f.block
	if len(h) < 6 {
		return
	}
	h = h[1 : len(h)-4] // size byte and CRC32
	flags := h[0]
	h = h[1:]
	varint := func() (uint64, bool) {
		var v uint64
		for i := 0; i < 9 && i < len(h); i++ {
			v |= uint64(h[i]&0x7f) << (7 * i)
			if h[i]&0x80 == 0 {
				h = h[i+1:]
				return v, true
			}
		}
		return 0, false
	}
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} {
		if present {
			if _, ok := varint(); !ok {
				return
			}
		}
	}
	for range int(flags&3) + 1 {
		id, ok1 := varint()
		size, ok2 := varint()
		if !ok1 || !ok2 || size > uint64(len(h)) {
			return
		}
		if id == 0x21 && size == 1 && h[0] <= 40 {
			p := uint64(h[0])
			dict := uint64(2|p&1) << (p/2 + 11)
			if p == 40 {
				dict = 1<<32 - 1
			}
			if dict > f.maxDict {
				f.dictErr = &memoryError{method: "xz", detail: fmt.Sprintf(
					"a dictionary of %s, above the limit of %s", formatSize(int64(dict)), formatSize(int64(f.maxDict)))}
			}
		}
		h = h[size:]
	}
}

func (f *xzFraming) complete() bool {
	return !f.bad && f.skip == 0 && f.state == xzAfterStream && f.zeros%4 == 0
}

func (f *xzFraming) write(b []byte) {
	for len(b) > 0 && !f.bad {
		if f.skip > 0 {
			n := min(int64(len(b)), f.skip)
			f.skip -= n
			b = b[n:]
			continue
		}
		f.byte(b[0])
		b = b[1:]
	}
}

func (f *xzFraming) byte(c byte) {
	switch f.state {
	case xzStreamHeader:
		f.hdr[f.hdrN] = c
		f.hdrN++
		if f.hdrN < 12 {
			return
		}
		if [6]byte(f.hdr[:6]) != xzMagic {
			f.bad = true
			return
		}
		f.checkSize = xzCheckSizes[f.hdr[7]&0x0f]
		f.state = xzBlockStart
	case xzBlockStart:
		if c == 0 {
			f.state, f.indexLen, f.varint, f.shift = xzIndexCount, 1, 0, 0
			return
		}
		f.blockLen = (int64(c) + 1) * 4
		f.block = append(f.block[:0], c)
		f.state = xzBlockHeader
	case xzBlockHeader:
		f.block = append(f.block, c)
		if int64(len(f.block)) < f.blockLen {
			return
		}
		f.checkBlockHeader()
		f.state = xzChunk
	case xzChunk:
		f.blockLen++
		switch {
		case c == 0: // end of LZMA2 data: block padding, then the check
			f.skip = (4-f.blockLen%4)%4 + f.checkSize
			f.state = xzBlockStart
		case c == 1 || c == 2: // uncompressed chunk: 2-byte size
			f.hdr[0], f.hdrN, f.want, f.state = c, 1, 3, xzChunkHeader
		case c >= 0x80: // LZMA chunk: 2+2 size bytes, and props from 0xc0
			f.hdr[0], f.hdrN, f.want, f.state = c, 1, 5, xzChunkHeader
			if c >= 0xc0 {
				f.want = 6
			}
		default:
			f.bad = true
		}
	case xzChunkHeader:
		f.hdr[f.hdrN] = c
		f.hdrN++
		f.blockLen++
		if f.hdrN < f.want {
			return
		}
		var size int64
		if f.hdr[0] < 0x80 {
			size = int64(f.hdr[1])<<8 | int64(f.hdr[2]) + 1
		} else {
			size = int64(f.hdr[3])<<8 | int64(f.hdr[4]) + 1
		}
		f.blockLen += size
		f.skip = size
		f.state = xzChunk
	case xzIndexCount, xzIndexRecords:
		f.indexLen++
		if f.shift > 56 {
			f.bad = true
			return
		}
		f.varint |= uint64(c&0x7f) << f.shift
		f.shift += 7
		if c&0x80 != 0 {
			return
		}
		if f.state == xzIndexCount {
			if f.varint > 1<<40 {
				f.bad = true
				return
			}
			f.varints = 2 * f.varint
			f.state = xzIndexRecords
		} else {
			f.varints--
		}
		f.varint, f.shift = 0, 0
		if f.varints == 0 {
			// index padding, CRC32, then the 12-byte stream footer
			f.skip = (4-f.indexLen%4)%4 + 4 + 12
			f.state, f.zeros = xzAfterStream, 0
		}
	case xzAfterStream:
		if c == 0 {
			f.zeros++
			return
		}
		if f.zeros%4 != 0 {
			f.bad = true
			return
		}
		f.hdr[0], f.hdrN, f.state = c, 1, xzStreamHeader
	}
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

	// memory, when set, recognises the decoder's error for a window
	// above the limit and returns the error to report instead.
	memory func(error) error

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
	var me *memoryError
	if errors.As(err, &me) {
		return me
	}
	if d.memory != nil {
		if me := d.memory(err); me != nil {
			return me
		}
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
