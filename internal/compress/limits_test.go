package compress

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os/exec"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/nixrepo/nixrepo/internal/memtest"
	"github.com/nixrepo/nixrepo/internal/nixtest"
)

// readAllSmall reads rc in reads of at most n bytes, so that the output
// cap is hit inside a read as well as at its boundary.
func readAllSmall(rc io.Reader, n int) ([]byte, error) {
	var out []byte
	buf := make([]byte, n)
	for {
		k, err := rc.Read(buf)
		out = append(out, buf[:k]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// TestOutputCapStopsAtLimit: with MaxOutput set, every decoder returns
// the data when it fits and otherwise exactly MaxOutput bytes followed by
// an error wrapping ErrTooLarge that names the limit.
func TestOutputCapStopsAtLimit(t *testing.T) {
	noLeaks(t)
	data := payload(300000)
	n := int64(len(data))
	vs := variants(t)
	vs = append(vs, variant{name: "none", method: "none", with: func(r io.Reader, o Options) io.ReadCloser {
		rc, err := NewReaderOptions(r, "none", o)
		if err != nil {
			t.Fatal(err)
		}
		return rc
	}})
	for _, v := range vs {
		comp := data
		if v.method != "none" {
			comp = compressData(t, v.method, data)
		}
		for _, limit := range []int64{1, 120, n / 2, n - 1, n, n + 1} {
			for _, readSize := range []int{1, 1000, 1 << 20} {
				if readSize == 1 && limit > 1000 {
					continue // slow, and covered by the larger reads
				}
				t.Run(fmt.Sprintf("%s/limit=%d/read=%d", v.name, limit, readSize), func(t *testing.T) {
					rc := v.with(bytes.NewReader(comp), Options{MaxOutput: limit})
					defer rc.Close()
					got, err := readAllSmall(rc, readSize)
					if limit >= n {
						if err != nil || !bytes.Equal(got, data) {
							t.Fatalf("limit %d ≥ size %d: err %v, %d bytes", limit, n, err, len(got))
						}
						return
					}
					var tl *TooLargeError
					if !errors.Is(err, ErrTooLarge) || !errors.As(err, &tl) || tl.Limit != limit {
						t.Fatalf("got %v, want a *TooLargeError with limit %d", err, limit)
					}
					if errors.Is(err, ErrCorrupt) {
						t.Errorf("%v also wraps ErrCorrupt", err)
					}
					if int64(len(got)) != limit || !bytes.Equal(got, data[:limit]) {
						t.Fatalf("returned %d bytes before the error, want the first %d", len(got), limit)
					}
					if !strings.Contains(err.Error(), fmt.Sprint(limit)) {
						t.Errorf("error %q does not name the limit", err)
					}
					if k, err2 := rc.Read(make([]byte, 10)); k != 0 || !errors.Is(err2, ErrTooLarge) {
						t.Errorf("not sticky: %d, %v", k, err2)
					}
				})
			}
		}
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// cycleReader yields unit count times, then EOF: concatenated streams
// (xz, zstd, gzip, bzip2 allow them) that decode to count times what
// unit decodes to.
type cycleReader struct {
	unit  []byte
	count int
	pos   int
}

func (c *cycleReader) Read(p []byte) (int, error) {
	if c.count == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.unit[c.pos:])
	c.pos += n
	if c.pos == len(c.unit) {
		c.pos = 0
		c.count--
	}
	return n, nil
}

// zeroReader yields n zero bytes.
type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > z.n {
		p = p[:z.n]
	}
	clear(p)
	z.n -= int64(len(p))
	return len(p), nil
}

// bomb returns a reader of compressed data that decodes to 2 GiB of
// zeros, generated as it is read, and a function returning how many
// compressed bytes were consumed.
func bomb(t *testing.T, method string) (io.Reader, func() int64) {
	t.Helper()
	const total = 2 << 30
	if method == "br" {
		// A brotli stream cannot be concatenated: encode on the fly.
		// The encoder only runs as far as the decoder reads.
		pr, pw := io.Pipe()
		go func() {
			w := brotli.NewWriterLevel(pw, 1)
			_, err := io.Copy(w, &zeroReader{n: total})
			if err == nil {
				err = w.Close()
			}
			pw.CloseWithError(err)
		}()
		t.Cleanup(func() { pr.CloseWithError(errors.New("test over")) })
		c := &countingReader{r: pr}
		return c, func() int64 { return c.n }
	}
	const unitSize = 1 << 20
	unit := compressData(t, method, make([]byte, unitSize))
	c := &countingReader{r: &cycleReader{unit: unit, count: total / unitSize}}
	return c, func() int64 { return c.n }
}

// TestOutputCapStopsDecodingABomb: a small input that decodes to 2 GiB
// is stopped right at the limit; the decoder consumes only a little of
// its input and the heap does not grow with the decoded size.
func TestOutputCapStopsDecodingABomb(t *testing.T) {
	noLeaks(t)
	for _, v := range variants(t) {
		if v.name == "empty-means-bzip2" {
			continue
		}
		if v.method == "bzip2" {
			nixtest.RequireTool(t, "bzip2") // makes the bzip2 input
		}
		for _, limit := range []int64{120, 10 << 20} {
			t.Run(fmt.Sprintf("%s/limit=%d", v.name, limit), func(t *testing.T) {
				in, consumed := bomb(t, v.method)
				var n int64
				var err error
				peak := memtest.PeakHeap(func() {
					rc := v.with(in, Options{MaxOutput: limit})
					n, err = io.Copy(io.Discard, rc)
					rc.Close()
				})
				if !errors.Is(err, ErrTooLarge) || n != limit {
					t.Fatalf("decoded %d bytes, %v; want %d bytes and ErrTooLarge", n, err, limit)
				}
				// The decoders read ahead by their buffers (and the xz
				// pipe), never by a share of the 2 GiB.
				if c := consumed(); c > 8<<20 {
					t.Errorf("consumed %d compressed bytes to decode %d", c, limit)
				}
				// xz -6 and zstd -3 streams use windows of 8 MiB at
				// most; brotli level 1 4 MiB. The probe counts objects not
				// yet collected too: Go's xz decoder leaves up to about
				// twice its window as garbage between collections (33 MiB
				// seen once on a loaded machine), still nothing like the
				// 2 GiB the bomb decodes to.
				if peak > 48<<20 {
					t.Errorf("heap grew by %d MiB decoding %d bytes", peak>>20, limit)
				}
				t.Logf("consumed %d compressed bytes, heap grew by %d KiB", consumed(), peak>>10)
			})
		}
	}
}

// xzBomb is an xz stream of under 100 bytes whose block header declares
// a dictionary of (2|props&1) << (props/2+11) bytes (props 37: 1.5 GiB).
// It is built from scratch: stream header, block header, one LZMA2 chunk
// that resets the dictionary and holds one uncompressed byte, end marker,
// CRC32 check, index and footer.
func xzBomb(props byte) []byte {
	var b bytes.Buffer
	flags := []byte{0, 0x01} // CRC32
	b.Write(xzMagic[:])
	b.Write(flags)
	binary.Write(&b, binary.LittleEndian, crc32.ChecksumIEEE(flags))
	// Block header: size byte, flags (one filter), filter ID 0x21, props
	// size 1, props, padding to a multiple of 4, CRC32.
	hdr := []byte{0, 0, 0x21, 1, props, 0, 0, 0}
	hdr[0] = byte(len(hdr)+4)/4 - 1
	b.Write(hdr)
	binary.Write(&b, binary.LittleEndian, crc32.ChecksumIEEE(hdr))
	// LZMA2: uncompressed chunk with dictionary reset (0x01), size-1 = 0,
	// one byte, then the end marker.
	data := []byte{0x01, 0x00, 0x00, 'x', 0x00}
	b.Write(data)
	blockSize := len(hdr) + 4 + len(data)
	for (blockSize)%4 != 0 {
		b.WriteByte(0)
		blockSize++
	}
	binary.Write(&b, binary.LittleEndian, crc32.ChecksumIEEE([]byte("x")))
	unpadded := len(hdr) + 4 + len(data) + 4
	index := []byte{0, 1}
	index = binary.AppendUvarint(index, uint64(unpadded))
	index = binary.AppendUvarint(index, 1)
	for len(index)%4 != 0 {
		index = append(index, 0)
	}
	b.Write(index)
	binary.Write(&b, binary.LittleEndian, crc32.ChecksumIEEE(index))
	footer := binary.LittleEndian.AppendUint32(nil, uint32((len(index)+4)/4-1))
	footer = append(footer, flags...)
	b.Write(binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(footer)))
	b.Write(footer)
	b.WriteString("YZ")
	return b.Bytes()
}

// TestXZBombRefusedBeforeAllocating: a tiny xz stream declaring a
// 1.5 GiB dictionary fails with ErrMemoryLimit naming the limit, in both
// decoders, without the heap growing; with a limit that allows it, the
// same stream decodes (so the refusal is the limit's doing).
func TestXZBombRefusedBeforeAllocating(t *testing.T) {
	noLeaks(t)
	for _, props := range []byte{22, 37} { // 8 MiB, 1.5 GiB
		in := xzBomb(props)
		for _, v := range variants(t) {
			if v.method != "xz" {
				continue
			}
			t.Run(fmt.Sprintf("%s/props=%d", v.name, props), func(t *testing.T) {
				var got []byte
				var err error
				peak := memtest.PeakHeap(func() {
					rc := v.with(bytes.NewReader(in), Options{MaxMemory: 16 << 20})
					got, err = io.ReadAll(rc)
					rc.Close()
				})
				if props == 22 {
					if err != nil || string(got) != "x" {
						t.Fatalf("the %d-byte stream with an 8 MiB dictionary: %q, %v", len(in), got, err)
					}
					return
				}
				if !errors.Is(err, ErrMemoryLimit) || !strings.Contains(err.Error(), "16 MiB") {
					t.Fatalf("got %v, want ErrMemoryLimit naming 16 MiB", err)
				}
				if peak > 8<<20 {
					t.Errorf("heap grew by %d MiB refusing a %d-byte stream", peak>>20, len(in))
				}
				t.Logf("%d-byte stream: %v", len(in), err)
			})
		}
	}
}

// TestMemoryCapBoundsEveryWindow: MaxMemory bounds the window of every format that has
// one: a stream declaring a window above it is refused with
// ErrMemoryLimit, one at or below it decodes.
func TestMemoryCapBoundsEveryWindow(t *testing.T) {
	noLeaks(t)
	data := payload(100000)
	// The zstd encoder shrinks the window to the content: it needs more
	// data than the largest window.
	zdata := payload(17 << 20)
	const limit = 8 << 20
	encode := map[string]func(t *testing.T, window int) []byte{
		"zstd": func(t *testing.T, window int) []byte {
			var buf bytes.Buffer
			w, err := zstd.NewWriter(&buf, zstd.WithWindowSize(window), zstd.WithSingleSegment(false), zstd.WithEncoderConcurrency(1))
			if err != nil {
				t.Fatal(err)
			}
			w.Write(zdata)
			w.Close()
			return buf.Bytes()
		},
		"br": func(t *testing.T, window int) []byte {
			lg := 0
			for 1<<lg < window {
				lg++
			}
			var buf bytes.Buffer
			w := brotli.NewWriterOptions(&buf, brotli.WriterOptions{Quality: 5, LGWin: lg})
			w.Write(data)
			w.Close()
			if bits, ok := brotliWindowBits(buf.Bytes()[0]); !ok || bits != uint(lg) {
				t.Fatalf("encoder wrote window bits %d, want %d", bits, lg)
			}
			return buf.Bytes()
		},
		"xz": func(t *testing.T, window int) []byte {
			nixtest.RequireTool(t, "xz") // makes the xz input
			cmd := exec.Command("xz", "-T1", fmt.Sprintf("--lzma2=preset=6,dict=%d", window), "-c")
			cmd.Stdin = bytes.NewReader(data)
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			return out
		},
	}
	for _, v := range variants(t) {
		enc, ok := encode[v.method]
		if !ok {
			continue
		}
		for _, window := range []int{4 << 20, limit, 16 << 20} {
			t.Run(fmt.Sprintf("%s/window=%dMiB", v.name, window>>20), func(t *testing.T) {
				in := enc(t, window)
				rc := v.with(bytes.NewReader(in), Options{MaxMemory: limit})
				got, err := io.ReadAll(rc)
				rc.Close()
				want := data
				if v.method == "zstd" {
					want = zdata
				}
				if window <= limit {
					if err != nil || !bytes.Equal(got, want) {
						t.Fatalf("window %d within the limit: %v", window, err)
					}
					return
				}
				if !errors.Is(err, ErrMemoryLimit) || errors.Is(err, ErrCorrupt) {
					t.Fatalf("window %d above the limit %d: got %v, want ErrMemoryLimit", window, limit, err)
				}
				if !strings.Contains(err.Error(), "8 MiB") {
					t.Errorf("%q does not name the limit", err)
				}
				t.Log(err)
			})
		}
	}
}

// TestBrotliWindowBitsMatchEncoder checks the WBITS decoding against the reference
// encoder's output for every window size it writes.
func TestBrotliWindowBitsMatchEncoder(t *testing.T) {
	for lg := 10; lg <= 24; lg++ {
		var buf bytes.Buffer
		// Quality 0 and 1 raise the window to 18 bits.
		w := brotli.NewWriterOptions(&buf, brotli.WriterOptions{Quality: 5, LGWin: lg})
		w.Write(payload(1000))
		w.Close()
		if bits, ok := brotliWindowBits(buf.Bytes()[0]); !ok || bits != uint(lg) {
			t.Errorf("lgwin %d: decoded %d, %v", lg, bits, ok)
		}
	}
	// 0x11 with the next bit clear is the large-window marker.
	if _, ok := brotliWindowBits(0x11); ok {
		t.Error("large-window marker taken for a window size")
	}
}

// TestNewContentReader maps HTTP Content-Encoding values to decoders:
// case and spaces do not matter, x-gzip is gzip, identity and "" pass
// the body through, anything else is ErrUnsupported.
func TestNewContentReader(t *testing.T) {
	noLeaks(t)
	data := payload(5000)
	bodies := map[string][]byte{
		"br":   compressData(t, "br", data),
		"zstd": compressData(t, "zstd", data),
		"gzip": compressData(t, "gzip", data),
		"none": data,
	}
	if _, err := exec.LookPath("xz"); err == nil {
		bodies["xz"] = compressData(t, "xz", data)
	}
	for _, tc := range []struct{ enc, body string }{
		{"br", "br"}, {"BR", "br"}, {" zstd ", "zstd"}, {"gzip", "gzip"}, {"x-gzip", "gzip"},
		{"Gzip", "gzip"}, {"xz", "xz"}, {"identity", "none"}, {"", "none"},
	} {
		body, ok := bodies[tc.body]
		if !ok {
			continue
		}
		rc, err := NewContentReader(bytes.NewReader(body), tc.enc, Options{})
		if err != nil {
			t.Fatalf("%q: %v", tc.enc, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%q: %v, %d bytes", tc.enc, err, len(got))
		}
	}
	for _, enc := range []string{"deflate", "compress", "bzip2", "lz4", "br, gzip", "gzip;q=1", "none"} {
		rc, err := NewContentReader(strings.NewReader("x"), enc, Options{})
		if rc != nil || !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "supported: br, zstd, xz, gzip, identity") {
			t.Errorf("%q: got %v, %v", enc, rc, err)
		}
	}
	// br is a transport encoding only, not a NAR compression method.
	if _, err := NewReaderOptions(strings.NewReader("x"), "br", Options{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("NewReaderOptions accepted br: %v", err)
	}
}

// TestGzipMembersConcatenated: the gzip decoder reads concatenated
// members as one stream (what gzip -d does, and what a bomb of repeated
// members relies on); the output cap covers all of them.
func TestGzipMembersConcatenated(t *testing.T) {
	var one bytes.Buffer
	w := gzip.NewWriter(&one)
	w.Write([]byte("abc"))
	w.Close()
	in := bytes.Repeat(one.Bytes(), 3)
	rc, _ := NewReaderOptions(bytes.NewReader(in), "gzip", Options{MaxOutput: 7})
	got, err := io.ReadAll(iotest.OneByteReader(rc))
	rc.Close()
	if string(got) != "abcabca" || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %q, %v", got, err)
	}
}
